"""Tracking result files, at full precision (never truncated to integers).

Layouts:

* ``got10k``: ``{dir}/{seq}/{seq}_001.txt`` (``x,y,w,h`` per frame, comma, frame 1 = the initial box) and
  ``{dir}/{seq}/{seq}_time.txt`` (seconds per frame) — the got10k toolkit's and the GOT-10k server's layout.
* ``pytracking``: ``{dir}/{seq}.txt`` (tab-separated) and ``{dir}/{seq}_time.txt`` — PyTracking's layout,
  readable by its analysis scripts.

With presence scores (visibility-aware trackers, :attr:`r1track.tracker.TrackResult.object_presence_score`)
each layout also holds ``{seq}_object_presence_scores.txt`` next to the times file (``{seq}/`` for got10k), one
score per frame: the name PyTracking's own result writer (``pytracking/evaluation/running.py``) gives the
``object_presence_score`` output. Trackers without presence scores write no such file.

Search windows (:func:`write_windows`, ``{dir}/{seq}.txt``): one line per frame, ``x1,y1,x2,y2,crop_side`` -- the
search window in original pixels and the side in crop pixels it was resized to --, ``nan`` x 5 where no crop was
sent (frame 1, a missing or unreadable frame); what the target-in-crop metric (:mod:`r1track.metrics`) reads.

Numbers are written with Python's shortest round-trip representation, so reading gives back exactly
the floats written. Every file is written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .data.sequences import DatasetError, read_boxes_file, read_text_file
from .fsutil import atomic_write_text

__all__ = ["LAYOUTS", "format_number", "result_paths", "presence_path", "write_result", "read_result", "read_presence",
           "has_result", "windows_path", "write_windows", "read_windows"]

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


def presence_path(result_dir: str | os.PathLike, seq: str, layout: str = "got10k") -> Path:
    """The presence-score file of ``seq`` in ``layout`` (next to its times file)."""
    time_path = result_paths(result_dir, seq, layout)[1]
    return time_path.with_name(f"{seq}_object_presence_scores.txt")


def write_result(
    result_dir: str | os.PathLike,
    seq: str,
    boxes_xywh_orig: np.ndarray,
    times_s: np.ndarray | None = None,
    *,
    layout: str = "got10k",
    presence: np.ndarray | None = None,
) -> tuple[Path, Path]:
    """Write one sequence's boxes (N, 4), per-frame times (N,) and, when given, presence scores (N,). The
    times and presence files are written first and the boxes file last, so a present boxes file means a
    complete result."""
    boxes = np.asarray(boxes_xywh_orig, dtype=np.float64).reshape(-1, 4)
    times = np.zeros(len(boxes)) if times_s is None else np.asarray(times_s, dtype=np.float64).ravel()
    if len(times) != len(boxes):
        raise ValueError(f"{seq}: {len(times)} times for {len(boxes)} boxes")
    box_path, time_path = result_paths(result_dir, seq, layout)
    sep = "," if layout == "got10k" else "\t"
    atomic_write_text(time_path, "".join(f"{format_number(t)}\n" for t in times))
    if presence is not None:
        scores = np.asarray(presence, dtype=np.float64).ravel()
        if len(scores) != len(boxes):
            raise ValueError(f"{seq}: {len(scores)} presence scores for {len(boxes)} boxes")
        atomic_write_text(presence_path(result_dir, seq, layout), "".join(f"{format_number(v)}\n" for v in scores))
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


def read_presence(result_dir: str | os.PathLike, seq: str, layout: str = "got10k") -> np.ndarray | None:
    """The sequence's presence scores (N,), or None when the tracker wrote none."""
    path = presence_path(result_dir, seq, layout)
    if not path.is_file():
        return None
    text = read_text_file(path, "presence scores")
    try:
        return np.array([float(x) for x in text.split()], dtype=np.float64)
    except ValueError as exc:
        raise DatasetError(f"{path}: expected one presence score per line ({exc})") from None


def windows_path(windows_dir: str | os.PathLike, seq: str) -> Path:
    """The search-window file of ``seq``."""
    return Path(windows_dir) / f"{seq}.txt"


def write_windows(windows_dir: str | os.PathLike, seq: str, windows: np.ndarray) -> Path:
    """Write one sequence's search windows, (N, 5) rows ``x1, y1, x2, y2, crop_side`` (NaN rows: no crop)."""
    rows = np.asarray(windows, dtype=np.float64).reshape(-1, 5)
    path = windows_path(windows_dir, seq)
    atomic_write_text(path, "".join(",".join(format_number(v) for v in row) + "\n" for row in rows))
    return path


def read_windows(windows_dir: str | os.PathLike, seq: str) -> np.ndarray | None:
    """The sequence's search windows (N, 5), or None when there is no window file (runs made before windows
    were recorded). DatasetError naming the file and line when a line is not five numbers."""
    path = windows_path(windows_dir, seq)
    if not path.is_file():
        return None
    rows = []
    for n, line in enumerate(read_text_file(path, "search windows").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = [float(v) for v in line.split(",")]
        except ValueError:
            row = []
        if len(row) != 5:
            raise DatasetError(f"{path}:{n}: expected x1,y1,x2,y2,crop_side, got {line.strip()[:80]!r}")
        rows.append(row)
    return np.array(rows, dtype=np.float64).reshape(-1, 5)
