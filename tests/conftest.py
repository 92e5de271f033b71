"""Shared fixtures: paths to the real sequences in ../shared/data/realseq (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REALSEQ_DIR = Path(os.environ.get("R1TRACK_REALSEQ", REPO_ROOT.parent / "shared" / "data" / "realseq"))


@pytest.fixture(scope="session")
def realseq_dir() -> Path:
    """Folder of the six real annotated sequences (GOT-10k layout); skips the test when absent."""
    if not (REALSEQ_DIR / "list.txt").is_file():
        pytest.skip(f"real sequences not found at {REALSEQ_DIR}")
    return REALSEQ_DIR
