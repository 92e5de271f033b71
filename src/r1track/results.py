"""Tracking result files, at full precision (never truncated to integers).

Layouts:

* ``got10k``: ``{dir}/{seq}/{seq}_001.txt`` (``x,y,w,h`` per frame, comma, frame 1 = the initial box) and
  ``{dir}/{seq}/{seq}_time.txt`` (seconds per frame) — the got10k toolkit's and the GOT-10k server's layout.
* ``pytracking``: ``{dir}/{seq}.txt`` (tab-separated) and ``{dir}/{seq}_time.txt`` — PyTracking's layout,
  readable by its analysis scripts.

Numbers are written with Python's shortest round-trip representation, so reading gives back exactly
the floats written. Every file is written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .data.sequences import DatasetError, read_boxes_file, read_text_file
from .fsutil import atomic_write_text

__all__ = ["LAYOUTS", "format_number", "result_paths", "write_result", "read_result", "has_result"]

LAYOUTS = ("got10k", "pytracking")


def format_number(v: float) -> str:
    """Shortest text that reads back as the same float (``12.0`` -> ``12``, NaN -> ``nan``)."""
    v = float(v)
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def result_paths(result_dir: str | os.PathLike, seq: str, layout: str = "got10k", run: int = 1) -> tuple[Path, Path]:
    """(boxes file, times file) of ``seq`` in ``layout``."""
    d = Path(result_dir)
    if layout == "got10k":
        return d / seq / f"{seq}_{run:03d}.txt", d / seq / f"{seq}_time.txt"
    if layout == "pytracking":
        return d / f"{seq}.txt", d / f"{seq}_time.txt"
    raise ValueError(f"unknown result layout {layout!r}; known: {', '.join(LAYOUTS)}")


def write_result(
    result_dir: str | os.PathLike,
    seq: str,
    boxes_xywh_orig: np.ndarray,
    times_s: np.ndarray | None = None,
    *,
    layout: str = "got10k",
) -> tuple[Path, Path]:
    """Write one sequence's boxes (N, 4) and per-frame times (N,). The times file is written first and
    the boxes file last, so a present boxes file means a complete result."""
    boxes = np.asarray(boxes_xywh_orig, dtype=np.float64).reshape(-1, 4)
    times = np.zeros(len(boxes)) if times_s is None else np.asarray(times_s, dtype=np.float64).ravel()
    if len(times) != len(boxes):
        raise ValueError(f"{seq}: {len(times)} times for {len(boxes)} boxes")
    box_path, time_path = result_paths(result_dir, seq, layout)
    sep = "," if layout == "got10k" else "\t"
    atomic_write_text(time_path, "".join(f"{format_number(t)}\n" for t in times))
    atomic_write_text(box_path, "".join(sep.join(format_number(v) for v in row) + "\n" for row in boxes))
    return box_path, time_path


def has_result(result_dir: str | os.PathLike, seq: str, layout: str = "got10k") -> bool:
    """True when the sequence's boxes file exists (it is written last, atomically)."""
    return result_paths(result_dir, seq, layout)[0].is_file()


def read_result(result_dir: str | os.PathLike, seq: str, layout: str = "got10k") -> tuple[np.ndarray, np.ndarray | None]:
    """(boxes (N, 4), times (N,) or None when there is no times file)."""
    box_path, time_path = result_paths(result_dir, seq, layout)
    boxes = read_boxes_file(box_path)
    times = None
    if time_path.is_file():
        text = read_text_file(time_path, "times")
        try:
            times = np.array([float(x) for x in text.split()], dtype=np.float64)
        except ValueError as exc:
            raise DatasetError(f"{time_path}: expected one number of seconds per line ({exc})") from None
    return boxes, times
