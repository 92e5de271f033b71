"""Backends answer the tracker's :class:`FrameRequest` with a reply text in the model's format.

* ``openai`` — any OpenAI-compatible chat-completions server (vLLM serving Qwen2.5-VL / R1-Track):
  :class:`r1track.backends.openai.OpenAIBackend`.
* ``ncc`` — a classical **baseline** (normalised cross-correlation template matching on the same
  crops), so the whole pipeline runs with no GPU: :class:`r1track.backends.ncc.NCCBackend`.
* ``transformers`` — the checkpoint loaded in this process with Hugging Face transformers (GPU, ``mps`` or
  CPU; ``pip install "r1track[hf]"``): :class:`r1track.backends.hf.TransformersBackend`.
* ``vllm`` — the checkpoint loaded in this process with vLLM's offline engine, no server
  (``pip install "r1track[vllm]"``): :class:`r1track.backends.vllm_offline.VLLMBackend`.
* ``oracle`` — tests and benchmarks: the ground-truth box mapped into the crop, optionally noisy:
  :class:`r1track.backends.oracle.OracleBackend`.

Modules are imported on first use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from .base import KIND_GROUND, KIND_TRACK, Backend, BackendError, FrameRequest, Reply, RequestImage, Sampling, ServerRefused

__all__ = [
    "BACKENDS",
    "BackendSpec",
    "Backend",
    "BackendError",
    "FrameRequest",
    "KIND_GROUND",
    "KIND_TRACK",
    "Reply",
    "RequestImage",
    "Sampling",
    "ServerRefused",
    "backend_names",
    "backend_option_defaults",
    "get_backend_spec",
    "make_backend",
]

@dataclass(frozen=True)
class BackendSpec:
    """One backend: its ``name`` (what ``--backend`` and ``params.backend`` take), the class as
    ``module:class`` (imported on first use), and what it needs. ``needs_server``: talks to OpenAI-compatible
    servers (gets ``base_url`` and ``model``). ``needs_ground_truth``: built per sequence from its
    ground-truth boxes (``boxes_xywh_orig``), so only ``r1track eval`` on annotated data can use it.
    ``baseline``: not a model; reports name its runs "(baseline)". ``in_process``: loads the checkpoint
    ``--model`` names into this process (gets ``model`` and the engine options; one instance per process,
    batching the requests of every sequence in flight). ``grounding``: can initialise from a text."""

    name: str
    target: str
    summary: str
    needs_server: bool = False
    needs_ground_truth: bool = False
    baseline: bool = False
    in_process: bool = False
    grounding: bool = False


BACKENDS: dict[str, BackendSpec] = {
    spec.name: spec
    for spec in (
        BackendSpec("openai", "r1track.backends.openai:OpenAIBackend",
                    "an OpenAI-compatible server (vLLM serving an R1-Track checkpoint)", needs_server=True,
                    grounding=True),
        BackendSpec("transformers", "r1track.backends.hf:TransformersBackend",
                    "the --model checkpoint loaded in this process with transformers (GPU or CPU; pip install "
                    "'r1track[hf]')", in_process=True, grounding=True),
        BackendSpec("vllm", "r1track.backends.vllm_offline:VLLMBackend",
                    "the --model checkpoint loaded in this process with vLLM's offline engine, no server (pip "
                    "install 'r1track[vllm]')", in_process=True, grounding=True),
        BackendSpec("ncc", "r1track.backends.ncc:NCCBackend",
                    "classical baseline (normalised cross-correlation), no GPU, no model", baseline=True),
        BackendSpec("oracle", "r1track.backends.oracle:OracleBackend",
                    "the ground truth mapped into each crop (checks geometry; needs ground truth)",
                    needs_ground_truth=True),
    )
}
"""The only list of backend names: every command, setting and adapter takes its names from here."""


def backend_names(*, ground_truth: bool = True) -> list[str]:
    """Registered names, in registry order; ``ground_truth=False`` leaves out the backends that need
    ground-truth boxes (for tracking unannotated videos)."""
    return [n for n, spec in BACKENDS.items() if ground_truth or not spec.needs_ground_truth]


def get_backend_spec(name: str) -> BackendSpec:
    """The spec called ``name``; ValueError listing the known names otherwise."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}") from None


def _backend_class(name: str) -> type:
    module, cls = get_backend_spec(name).target.split(":")
    return getattr(importlib.import_module(module), cls)


def make_backend(name: str, **options: Any) -> Backend:
    """Build the backend called ``name`` with its keyword options (see each class). ValueError
    listing the known names otherwise."""
    return _backend_class(name)(**options)


def backend_option_defaults(name: str) -> dict[str, Any]:
    """The keyword options of backend ``name`` that have a default, with that default (read from its class's
    ``__init__``): what an option left out means (``r1track eval`` names a run folder after the options that
    differ from these)."""
    import inspect

    params = inspect.signature(_backend_class(name).__init__).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
