"""The real annotated sequences the benchmarks run on: ``$R1TRACK_REALSEQ``, default ``../shared/data/realseq``
(six short sequences, GOT-10k layout, every frame visible; never part of the repository)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from r1track.data.readers import read_dataset

REALSEQ = Path(os.environ.get("R1TRACK_REALSEQ", Path(__file__).resolve().parents[2] / "shared" / "data" / "realseq"))


def real_sequences(wanted: bool = True) -> list:
    """The real sequences, or [] (saying why on stderr) when they are not there; [] when not ``wanted``."""
    if not wanted:
        return []
    if not (REALSEQ / "list.txt").is_file():
        print(f"real sequences not found at {REALSEQ} (set R1TRACK_REALSEQ): synthetic only", file=sys.stderr)
        return []
    return list(read_dataset("got10k", REALSEQ))
