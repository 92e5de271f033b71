"""Shared fixtures: the real sequences in ../shared/data/realseq (skipped when absent), and the real-upstream
fixtures of ``tests/upstream/fixtures.py`` (virtual environments, tiny Qwen2.5-VL checkpoints).

``tests/`` is on ``sys.path`` (pytest ``pythonpath`` setting), so tests import the upstream helpers as
``from upstream import venvs, vllm_server, tiny_qwen25vl``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from budget import FAST_MAX_EXAMPLES, HEAVY_MAX_EXAMPLES
from upstream import venvs
from upstream.fixtures import TinyModel, terminal_say, tiny_serve_model, tiny_sft_model, upstream_venv  # noqa: F401  (fixtures)

settings.register_profile("fast", max_examples=FAST_MAX_EXAMPLES, deadline=None)
settings.register_profile("heavy", max_examples=HEAVY_MAX_EXAMPLES, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))  # --hypothesis-profile=NAME overrides this

REPO_ROOT = Path(__file__).resolve().parents[1]
REALSEQ_DIR = Path(os.environ.get("R1TRACK_REALSEQ", REPO_ROOT.parent / "shared" / "data" / "realseq"))


@pytest.fixture(scope="session")
def realseq_dir() -> Path:
    """Folder of the six real annotated sequences (GOT-10k layout); skips the test when absent."""
    if not (REALSEQ_DIR / "list.txt").is_file():
        pytest.skip(f"real sequences not found at {REALSEQ_DIR}")
    return REALSEQ_DIR


LARGE_TARGET_SCALE = 2.5
"""How much :func:`large_target_seq` enlarges its real sequence."""


@pytest.fixture(scope="session")
def large_target_seq(realseq_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A real sequence whose target is large: the first 30 frames (60 under the heavy profile) of DaSiamRPN__bag
    (a 146 x 132 px bag in 480 x 360) enlarged 2.5x (bicubic, JPEG quality 90) into an OTB-style folder (frames +
    groundtruth.txt) under the session's temporary folder, so the default search window (~1390 px) exceeds twice
    the default crop side: the case where a reduced JPEG decode changes the pixels (there, the ncc baseline's
    boxes from paths and from arrays part at frame 23). Returns the :class:`~r1track.data.sequences.Sequence`
    (read back from that folder). Never written into the repository."""
    import numpy as np
    from PIL import Image

    from budget import frame_budget
    from r1track.data.readers import read_generic

    seq = next(read_generic(realseq_dir, names=["DaSiamRPN__bag"]))
    n = frame_budget(30) or 60
    folder = tmp_path_factory.mktemp("large-target") / "bag_x2.5"
    folder.mkdir()
    for i, path in enumerate(seq.frames[:n]):
        img = Image.open(path).convert("RGB")
        size = (round(img.size[0] * LARGE_TARGET_SCALE), round(img.size[1] * LARGE_TARGET_SCALE))
        img.resize(size, Image.Resampling.BICUBIC).save(folder / f"{i + 1:08d}.jpg", quality=90)
    np.savetxt(folder / "groundtruth.txt", seq.boxes_xywh_orig[:n] * LARGE_TARGET_SCALE, fmt="%.4f", delimiter=",")
    return next(read_generic(folder))


FAST_SUITE_WORKERS = 2
"""Processes for ``pytest -m "not slow"`` (pytest-xdist): the fast suite uses both cores of the development
machine. Any run that may include slow tests stays in one process, so the venv-build progress lines reach the
terminal and session fixtures (tiny models) are built once."""


def pytest_configure(config: pytest.Config) -> None:
    """Building a test environment takes minutes: say so on the terminal, past pytest's output capture.
    ``pytest -m "not slow"`` runs on :data:`FAST_SUITE_WORKERS` processes unless ``-n``/``--dist``/``--tx``,
    ``--pdb`` or ``--collect-only`` say otherwise (``-n 0``: one process)."""
    venvs.set_reporter(terminal_say(config))
    _parallel_fast_suite(config)


def _parallel_fast_suite(config: pytest.Config) -> None:
    # Runs before pytest-xdist's own pytest_configure (trylast), which starts the workers from these options.
    if hasattr(config, "workerinput") or not config.pluginmanager.hasplugin("xdist"):
        return
    if (config.option.markexpr or "").replace(" ", "") != "notslow" or (os.cpu_count() or 1) < 2:
        return
    if (config.getoption("numprocesses", None) is not None or config.getoption("dist", "no") != "no"
            or config.getoption("tx", None) or config.getoption("usepdb", False) or config.getoption("collectonly", False)):
        return
    config.option.dist = "load"
    config.option.tx = ["popen"] * FAST_SUITE_WORKERS
