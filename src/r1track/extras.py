"""The optional extras of r1track -- ``pip install "r1track[EXTRA]"`` -- and what each feature behind them imports.

One table, :data:`EXTRAS`: per extra, the feature it brings and the Python modules that feature imports, each with
the distribution that installs it. ``pyproject.toml``'s ``[project.optional-dependencies]`` must list every one of
those distributions under the extra (a test reads both), and :func:`require` checks them before the feature starts,
so a missing one is reported by its own name (``torchvision is not installed``) rather than as the extra the user
may already have installed.

=========== ======================================================== ===========================================
extra       feature                                                  imports (distribution)
=========== ======================================================== ===========================================
``video``   video files in ``r1track track`` (read any, write MP4)   ``av`` (av)
``hf``      ``--backend transformers``: the checkpoint in process     ``torch``, ``torchvision`` (Qwen-VL image and
                                                                     video processors), ``transformers``
``vllm``    ``--backend vllm``: vLLM's offline engine in process      ``vllm``
=========== ======================================================== ===========================================

torchvision belongs to ``hf`` because transformers' Qwen-VL image processor imports it at module level
(transformers 5.6, ``models/qwen2_vl/image_processing_qwen2_vl.py``: ``from torchvision.transforms.v2 import
functional``), and the video processor the Qwen2.5-VL processor loads with it requires it too.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass

__all__ = ["Extra", "EXTRAS", "MissingPackage", "missing_modules", "require"]


@dataclass(frozen=True)
class Extra:
    """One extra: its ``name`` (``pip install "r1track[name]"``), the ``feature`` it brings, and ``modules``:
    (import name, distribution name) of everything the feature imports."""

    name: str
    feature: str
    modules: tuple[tuple[str, str], ...]

    @property
    def distributions(self) -> tuple[str, ...]:
        return tuple(dist for _, dist in self.modules)


EXTRAS: dict[str, Extra] = {
    e.name: e
    for e in (
        Extra("video", "reading and writing video files", (("av", "av"),)),
        Extra("hf", "the transformers backend", (("torch", "torch"), ("torchvision", "torchvision"),
                                                 ("transformers", "transformers"))),
        Extra("vllm", "the vllm backend", (("vllm", "vllm"),)),
    )
}
"""Every extra, by name (see the module docstring)."""


class MissingPackage(ImportError):
    """A package a feature needs is not installed; the message names it, the command that installs it and the
    extra that brings it."""


def missing_modules(extra: str) -> list[tuple[str, str]]:
    """(import name, distribution) of the modules of ``extra`` that cannot be found (nothing is imported)."""
    out = []
    for module, dist in EXTRAS[extra].modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out.append((module, dist))
    return out


def require(extra: str, feature: str | None = None) -> None:
    """Raise :class:`MissingPackage` naming every package of ``extra`` that is not installed (``feature``: how
    the message names what needs them; default the extra's own feature). An extra not in :data:`EXTRAS`
    (an engine defined outside r1track) has nothing to check."""
    if extra not in EXTRAS:
        return
    missing = missing_modules(extra)
    if not missing:
        return
    e = EXTRAS[extra]
    names = ", ".join(dist for _, dist in missing)
    verb = "is" if len(missing) == 1 else "are"
    raise MissingPackage(
        f"{feature or e.feature} needs {names}, which {verb} not installed in this Python ({sys.executable}): "
        f"pip install {' '.join(dist for _, dist in missing)} (the extra \"r1track[{e.name}]\" brings "
        f"{', '.join(e.distributions)})")
