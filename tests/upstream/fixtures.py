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
import functools
import sys
from pathlib import Path

import pytest

from upstream import tiny_qwen25vl, venvs

__all__ = ["TinyModel", "terminal_say", "upstream_venv", "tiny_sft_model", "tiny_serve_model"]


@dataclasses.dataclass(frozen=True)
class TinyModel:
    python: Path  # interpreter of the venv the model was built (and should be loaded) with
    path: Path  # the checkpoint folder
    summary: dict  # tiny_qwen25vl.py's JSON summary, including "check"


def terminal_say(config: pytest.Config):
    """``say(message)`` that prints a line on the terminal even while pytest captures output (a venv build
    takes minutes; without it a test session would print nothing meanwhile)."""
    def say(message: str) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capture = config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            print(message, file=sys.stderr, flush=True)
            return
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            reporter.write_line(message)

    return say


@pytest.fixture(scope="session")
def upstream_venv(pytestconfig: pytest.Config):
    """``upstream_venv(name, **kw) -> Path`` of the venv's python; builds on first use (announcing each
    step on the terminal), cached across runs."""
    return functools.partial(venvs.ensure_venv, say=terminal_say(pytestconfig))


def _tiny(tmp_path_factory: pytest.TempPathFactory, venv: str, variant: str, config: pytest.Config) -> TinyModel:
    python = venvs.ensure_venv(venv, say=terminal_say(config))
    out = tmp_path_factory.mktemp(f"tiny-{variant}") / "model"
    summary = tiny_qwen25vl.build_in_venv(python, out, variant, check=True)
    return TinyModel(python=python, path=out, summary=summary)


@pytest.fixture(scope="session")
def tiny_sft_model(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> TinyModel:
    """Variant A (fp32, real 3B processor bounds) built in the llamafactory venv (transformers 5.6)."""
    return _tiny(tmp_path_factory, "llamafactory", "sft", pytestconfig)


@pytest.fixture(scope="session")
def tiny_serve_model(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> TinyModel:
    """Variant B (bf16, max_pixels 224^2) built in the vllm venv (transformers 5.19)."""
    return _tiny(tmp_path_factory, "vllm", "serve", pytestconfig)
