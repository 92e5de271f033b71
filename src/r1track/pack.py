"""Server submissions: zip tracking results the way the GOT-10k and TrackingNet servers expect.

* GOT-10k (test): ``{seq}/{seq}_001.txt`` (comma, x,y,w,h per frame) and ``{seq}/{seq}_time.txt`` per
  sequence; a deterministic tracker submits run ``_001`` only.
* TrackingNet (test): ``{seq}.txt`` (comma, x,y,w,h per frame) per sequence, flat.

Zips are deterministic (sorted names, fixed timestamps) and written atomically. Given the dataset
split, every sequence must be present with one box per frame; otherwise nothing is written and the
error lists what is wrong.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .fsutil import atomic_write_bytes
from .results import LAYOUTS, format_number, read_result, result_paths

__all__ = ["PackError", "PackReport", "detect_layout", "result_sequences", "pack_results"]

_EPOCH = (1980, 1, 1, 0, 0, 0)


class PackError(ValueError):
    """Results are incomplete or inconsistent with the dataset; the message lists the problems."""


@dataclass
class PackReport:
    path: Path
    sequences: int
    frames: int


def detect_layout(result_dir: Path) -> str:
    """``got10k`` if the folder has ``{seq}/{seq}_001.txt`` files, ``pytracking`` if ``{seq}.txt`` files."""
    if any(p.is_dir() and (p / f"{p.name}_001.txt").is_file() for p in result_dir.iterdir()):
        return "got10k"
    if any(p.suffix == ".txt" and not p.stem.endswith("_time") for p in result_dir.iterdir()):
        return "pytracking"
    raise PackError(f"{result_dir}: no tracking results found (expected {{seq}}/{{seq}}_001.txt or {{seq}}.txt)")


def result_sequences(result_dir: Path, layout: str) -> list[str]:
    if layout == "got10k":
        return sorted(p.name for p in result_dir.iterdir() if p.is_dir() and (p / f"{p.name}_001.txt").is_file())
    return sorted(
        p.stem for p in result_dir.iterdir()
        if p.suffix == ".txt" and not p.stem.endswith(("_time", "_object_presence_scores"))
    )


def pack_results(
    server: str,
    result_dir: str | os.PathLike,
    out_zip: str | os.PathLike,
    *,
    layout: str = "auto",
    expected: dict[str, int] | None = None,
) -> PackReport:
    """Zip the results in ``result_dir`` for ``server`` (``got10k`` or ``trackingnet``). ``expected``
    maps every sequence of the split to its frame count (from the dataset); without it all result
    sequences found are packed unchecked."""
    if server not in ("got10k", "trackingnet"):
        raise PackError(f"unknown server {server!r}; use got10k or trackingnet")
    result_dir = Path(result_dir)
    if not result_dir.is_dir():
        raise PackError(f"{result_dir}: results folder not found")
    layout = detect_layout(result_dir) if layout == "auto" else layout
    if layout not in LAYOUTS:
        raise PackError(f"unknown layout {layout!r}")
    names = sorted(expected) if expected is not None else result_sequences(result_dir, layout)
    if not names:
        raise PackError(f"{result_dir}: no sequences to pack")
    problems: list[str] = []
    files: list[tuple[str, bytes]] = []
    frames = 0
    for name in names:
        if not result_paths(result_dir, name, layout)[0].is_file():
            problems.append(f"{name}: no result")
            continue
        box_path = result_paths(result_dir, name, layout)[0]
        try:
            boxes, times = read_result(result_dir, name, layout)
        except ValueError as exc:  # DatasetError: a malformed line, named with file and line
            problems.append(f"{name}: {exc}")
            continue
        if expected is not None and len(boxes) != expected[name]:
            problems.append(f"{name}: {box_path} has {len(boxes)} boxes for {expected[name]} frames")
            continue
        if times is not None and len(times) != len(boxes):
            problems.append(f"{name}: {result_paths(result_dir, name, layout)[1]} has {len(times)} times for {len(boxes)} boxes")
            continue
        frames += len(boxes)
        text = "".join(",".join(format_number(v) for v in row) + "\n" for row in boxes).encode()
        if server == "got10k":
            files.append((f"{name}/{name}_001.txt", text))
            if times is not None:
                files.append((f"{name}/{name}_time.txt", "".join(f"{format_number(t)}\n" for t in times).encode()))
        else:
            files.append((f"{name}.txt", text))
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise PackError(f"not packing {result_dir}: {len(problems)} problem(s):\n  {shown}")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, data in sorted(files):
            info = zipfile.ZipInfo(arcname, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    out = Path(out_zip)
    atomic_write_bytes(out, buf.getvalue())
    return PackReport(out, len(names), frames)
