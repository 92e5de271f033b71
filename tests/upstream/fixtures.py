"""Session fixtures for the real-upstream tests, available to every test (imported by tests/conftest.py).

* ``upstream_venv`` -- the factory ``venvs.ensure_venv``: ``py = upstream_venv("vllm")``;
* ``tiny_sft_model`` / ``tiny_serve_model`` -- a tiny random Qwen2.5-VL (recipe variant A / B) built and
  self-checked once per session in the ``llamafactory`` / ``vllm`` venv: ``TinyModel(python, path, summary)``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from upstream import tiny_qwen25vl, venvs

__all__ = ["TinyModel", "upstream_venv", "tiny_sft_model", "tiny_serve_model"]


@dataclasses.dataclass(frozen=True)
class TinyModel:
    python: Path  # interpreter of the venv the model was built (and should be loaded) with
    path: Path  # the checkpoint folder
    summary: dict  # tiny_qwen25vl.py's JSON summary, including "check"


@pytest.fixture(scope="session")
def upstream_venv():
    """``upstream_venv(name, **kw) -> Path`` of the venv's python; builds on first use, cached across runs."""
    return venvs.ensure_venv


def _tiny(tmp_path_factory: pytest.TempPathFactory, venv: str, variant: str) -> TinyModel:
    python = venvs.ensure_venv(venv)
    out = tmp_path_factory.mktemp(f"tiny-{variant}") / "model"
    summary = tiny_qwen25vl.build_in_venv(python, out, variant, check=True)
    return TinyModel(python=python, path=out, summary=summary)


@pytest.fixture(scope="session")
def tiny_sft_model(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """Variant A (fp32, real 3B processor bounds) built in the llamafactory venv (transformers 5.6)."""
    return _tiny(tmp_path_factory, "llamafactory", "sft")


@pytest.fixture(scope="session")
def tiny_serve_model(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """Variant B (bf16, max_pixels 224^2) built in the vllm venv (transformers 5.19)."""
    return _tiny(tmp_path_factory, "vllm", "serve")
