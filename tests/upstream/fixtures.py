"""Session fixtures for the real-upstream tests, available to every test (imported by tests/conftest.py).

* ``upstream_venv`` -- the factory ``venvs.ensure_venv``: ``py = upstream_venv("vllm")``;
* ``tiny_sft_model`` / ``tiny_serve_model`` -- a tiny random Qwen2.5-VL (recipe variant A / B) built and
  self-checked once per session in the ``llamafactory`` / ``vllm`` venv: ``TinyModel(python, path, summary)``.

Building a venv takes minutes: what ``venvs.ensure_venv`` prints (building, waiting for another build's lock,
ready) goes straight to the terminal, past pytest's output capture.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from upstream import tiny_qwen25vl, venvs

__all__ = ["TinyModel", "upstream_venv", "tiny_sft_model", "tiny_serve_model"]


@dataclasses.dataclass(frozen=True)
class TinyModel:
    python: Path  # interpreter of the venv the model was built (and should be loaded) with
    path: Path  # the checkpoint folder
    summary: dict  # tiny_qwen25vl.py's JSON summary, including "check"


def _ensure_visibly(config: pytest.Config, name: str, **kw: Any) -> Path:
    """``venvs.ensure_venv`` with its progress messages shown even while pytest captures output."""
    capman = config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
        return venvs.ensure_venv(name, **kw)


@pytest.fixture(scope="session")
def upstream_venv(pytestconfig: pytest.Config):
    """``upstream_venv(name, **kw) -> Path`` of the venv's python; builds on first use, cached across runs."""
    return lambda name, **kw: _ensure_visibly(pytestconfig, name, **kw)


def _tiny(tmp_path_factory: pytest.TempPathFactory, config: pytest.Config, venv: str, variant: str) -> TinyModel:
    python = _ensure_visibly(config, venv)
    out = tmp_path_factory.mktemp(f"tiny-{variant}") / "model"
    summary = tiny_qwen25vl.build_in_venv(python, out, variant, check=True)
    return TinyModel(python=python, path=out, summary=summary)


@pytest.fixture(scope="session")
def tiny_sft_model(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> TinyModel:
    """Variant A (fp32, real 3B processor bounds) built in the llamafactory venv (transformers 5.6)."""
    return _tiny(tmp_path_factory, pytestconfig, "llamafactory", "sft")


@pytest.fixture(scope="session")
def tiny_serve_model(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> TinyModel:
    """Variant B (bf16, max_pixels 224^2) built in the vllm venv (transformers 5.19)."""
    return _tiny(tmp_path_factory, pytestconfig, "vllm", "serve")
