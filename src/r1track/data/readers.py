"""Dataset readers: each yields :class:`~r1track.data.sequences.Sequence` objects.

* :func:`read_got10k` — GOT-10k ``train``/``val``/``test`` (``list.txt``, ``groundtruth.txt``,
  ``absence.label``, ``cover.label``, ``meta_info.ini``; visible = not absent and cover > 0).
* :func:`read_generic` — a folder of sequence folders, each with ``groundtruth.txt`` or
  ``groundtruth_rect.txt`` and frames in the folder itself or in ``img/``.

Readers raise :class:`~r1track.data.sequences.DatasetError` on malformed files (naming file and
line). They do not open frames; consumers check frame counts and readability.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import numpy as np

from .sequences import DatasetError, Sequence, list_frames, read_boxes_file, read_label_file

__all__ = ["read_got10k", "read_generic", "read_meta_info", "got10k_split_dir"]


def read_meta_info(path: str | Path) -> dict[str, str]:
    """GOT-10k ``meta_info.ini``: ``key: value`` lines after a ``[METAINFO]`` header."""
    meta: dict[str, str] = {}
    path = Path(path)
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("["):
            continue
        key, sep, value = line.partition(":")
        if sep:
            meta[key.strip()] = value.strip()
    return meta


def _resolution(meta: dict[str, str], path: Path) -> tuple[int, int] | None:
    raw = meta.get("resolution")
    if raw is None:
        return None
    nums = re.findall(r"\d+", raw)
    if len(nums) != 2:
        raise DatasetError(f"{path}: resolution must be '(W, H)', got {raw!r}")
    return int(nums[0]), int(nums[1])


def got10k_split_dir(root: str | Path, split: str) -> Path:
    """``root/split`` if it has a ``list.txt``, else ``root`` itself when it is the split folder."""
    root = Path(root)
    for cand in (root / split, root):
        if (cand / "list.txt").is_file():
            return cand
    raise DatasetError(f"{root}: no GOT-10k '{split}' split here (expected {root / split / 'list.txt'})")


def _read_list(path: Path) -> list[str]:
    names = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    if not names:
        raise DatasetError(f"{path}: empty sequence list")
    return names


def read_got10k(root: str | Path, split: str = "val", *, names: list[str] | None = None) -> Iterator[Sequence]:
    """Sequences of a GOT-10k split, in ``list.txt`` order (or only ``names``). A sequence folder
    listed but missing raises DatasetError."""
    split_dir = got10k_split_dir(root, split)
    for name in names or _read_list(split_dir / "list.txt"):
        folder = split_dir / name
        if not folder.is_dir():
            raise DatasetError(f"{split_dir / 'list.txt'}: sequence {name!r} listed but {folder} does not exist")
        frames = list_frames(folder, (".jpg", ".jpeg", ".png"))
        boxes = read_boxes_file(folder / "groundtruth.txt")
        n = len(boxes)
        visible = np.ones(n, dtype=bool)
        cover = None
        if (folder / "absence.label").is_file():
            visible &= read_label_file(folder / "absence.label", length=n) == 0
        if (folder / "cover.label").is_file():
            cover = read_label_file(folder / "cover.label", length=n)
            visible &= cover > 0
        meta = read_meta_info(folder / "meta_info.ini") if (folder / "meta_info.ini").is_file() else {}
        yield Sequence(
            name=name,
            frames=frames,
            boxes_xywh_orig=boxes,
            visible=visible,
            dataset=f"got10k-{split}",
            cover=cover,
            image_size=_resolution(meta, folder / "meta_info.ini"),
            meta=meta,
        )


GT_NAMES = ("groundtruth.txt", "groundtruth_rect.txt")


def read_generic(root: str | Path, *, names: list[str] | None = None) -> Iterator[Sequence]:
    """Sequences of a generic folder: every sub-folder with a ground-truth file (or those named in
    ``root/list.txt``, or ``names``), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    if names is None and (root / "list.txt").is_file():
        names = _read_list(root / "list.txt")
    if names is None:
        names = sorted(p.name for p in root.iterdir() if p.is_dir() and any((p / g).is_file() for g in GT_NAMES))
        if not names:
            raise DatasetError(f"{root}: no sequence folders with {' or '.join(GT_NAMES)}")
    for name in names:
        folder = root / name
        gt = next((folder / g for g in GT_NAMES if (folder / g).is_file()), None)
        if gt is None:
            raise DatasetError(f"{folder}: no {' or '.join(GT_NAMES)}")
        frame_dir = folder / "img" if (folder / "img").is_dir() else folder
        boxes = read_boxes_file(gt)
        visible = np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
        yield Sequence(name=name, frames=list_frames(frame_dir), boxes_xywh_orig=boxes, visible=visible, dataset="generic")
