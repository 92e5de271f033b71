"""The progress bar every long loop shows (``tqdm``, a dependency), on stderr."""

from __future__ import annotations

import sys
from typing import Any, Iterable

__all__ = ["progress_bar"]


def progress_bar(
    total: int | None, desc: str, *, unit: str = "frame", enabled: bool = True, iterable: Iterable | None = None,
    **options: Any,
):
    """A ``tqdm`` bar writing to stderr: a context manager with ``.update(n)`` and ``.set_postfix(...)``, or,
    given ``iterable``, an iterable over it that counts each item. ``enabled=False`` gives the same
    object, silent."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr, dynamic_ncols=True,
                **options)
