"""pytest glue for the real-upstream tests in tests/upstream/.

Importing: this conftest puts ``tests/`` on ``sys.path`` (once, idempotently), so tests import the helpers as a
package -- ``from upstream import venvs, vllm_server, tiny_qwen25vl`` -- under any pytest import mode.
(``tests/upstream/__init__.py`` is empty and only makes ``upstream`` a regular package.) Test code elsewhere
in the repository gets the same by adding ``pythonpath = ["tests"]`` to pytest's configuration.

It registers the ``slow`` marker (until pyproject.toml does) and offers session fixtures:

* ``upstream_venv`` -- the factory ``venvs.ensure_venv``: ``py = upstream_venv("vllm")``;
* ``tiny_sft_model`` / ``tiny_serve_model`` -- a tiny random Qwen2.5-VL (recipe variant A / B) built and
  self-checked once per session in the ``llamafactory`` / ``vllm`` venv: ``TinyModel(python, path, summary)``.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

_TESTS_DIR = str(Path(__file__).resolve().parents[1])
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from upstream import tiny_qwen25vl, venvs  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: real-upstream tests in their own virtual environments")


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
