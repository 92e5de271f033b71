"""Backends answer the tracker's :class:`FrameRequest` with a reply text in the model's format.

* ``openai`` — any OpenAI-compatible chat-completions server (vLLM serving Qwen2.5-VL / R1-Track):
  :class:`r1track.backends.openai.OpenAIBackend`.
* ``ncc`` — a classical **baseline** (normalised cross-correlation template matching on the same
  crops), so the whole pipeline runs with no GPU: :class:`r1track.backends.ncc.NCCBackend`.
* ``oracle`` — tests and benchmarks: the ground-truth box mapped into the crop, optionally noisy:
  :class:`r1track.backends.oracle.OracleBackend`.

Modules are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import KIND_GROUND, KIND_TRACK, Backend, BackendError, FrameRequest, Reply, RequestImage, Sampling

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "FrameRequest",
    "KIND_GROUND",
    "KIND_TRACK",
    "Reply",
    "RequestImage",
    "Sampling",
    "make_backend",
]

BACKENDS: dict[str, str] = {
    "openai": "r1track.backends.openai:OpenAIBackend",
    "ncc": "r1track.backends.ncc:NCCBackend",
    "oracle": "r1track.backends.oracle:OracleBackend",
}
"""Backend name -> ``module:class``."""


def make_backend(name: str, **options: Any) -> Backend:
    """Build the backend called ``name`` with its keyword options (see each class). ValueError
    listing the known names otherwise."""
    try:
        target = BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(sorted(BACKENDS))}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)(**options)
