"""The progress bar every long loop shows (``tqdm``, a dependency), on stderr."""

from __future__ import annotations

import sys
from typing import Any, Iterable

__all__ = ["progress_bar"]


class _SilentBar:
    """What :func:`progress_bar` gives when disabled: the same calls, doing nothing. Not a disabled ``tqdm``: every
    ``tqdm`` takes tqdm's class-wide lock, which is a ``multiprocessing`` lock (a named semaphore). A process
    stopped from outside (the ``r1track eval --workers`` parent terminates its workers on Ctrl-C) never releases
    it, and Python's resource tracker then warns about leaked semaphores when the run ends."""

    def __init__(self, iterable: Iterable | None = None) -> None:
        self._iterable = iterable

    def __iter__(self):
        return iter(self._iterable if self._iterable is not None else ())

    def __enter__(self) -> "_SilentBar":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: float = 1) -> None:
        return None

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        return None

    def close(self) -> None:
        return None


def progress_bar(
    total: int | None, desc: str, *, unit: str = "frame", enabled: bool = True, iterable: Iterable | None = None,
    **options: Any,
):
    """A ``tqdm`` bar writing to stderr: a context manager with ``.update(n)``, ``.set_postfix(...)`` and
    ``.close()``, or, given ``iterable``, an iterable over it that counts each item. ``enabled=False`` gives an
    object with the same calls that shows nothing and creates no ``tqdm`` (see :class:`_SilentBar`)."""
    if not enabled:
        return _SilentBar(iterable)
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, **options)
