"""Dataset readers: each yields :class:`~r1track.data.sequences.Sequence` objects.

* :func:`read_got10k` — GOT-10k ``train``/``val``/``test`` (``list.txt``, ``groundtruth.txt``,
  ``absence.label``, ``cover.label``, ``meta_info.ini``; visible = not absent and cover > 0).
* :func:`read_lasot` — LaSOT (``<class>/<class>-<n>/img/``, ``groundtruth.txt``,
  ``full_occlusion.txt``, ``out_of_view.txt``, ``nlp.txt``; visible = neither fully occluded nor
  out of view).
* :func:`read_trackingnet` — TrackingNet chunks (``TRAIN_<k>/anno/<seq>.txt`` and
  ``TRAIN_<k>/frames/<seq>/0.jpg, 1.jpg, ...``: 0-based, not zero-padded, sorted numerically).
* :func:`read_generic` — a folder of sequence folders, each with ``groundtruth.txt`` or
  ``groundtruth_rect.txt`` and frames in the folder itself or in ``img/``.
* :func:`read_dataset` / :func:`detect_kind` — one entry point for all of the above.

Before reading, every reader checks that the folder has its layout's signature and no more specific
layout's (:func:`r1track.data.layouts.check_layout`): a GOT-10k split given as LaSOT or generic is refused
with :class:`~r1track.data.layouts.LayoutMismatch` naming the layout to use. Every reader honours whatever
visibility labels a sequence folder holds (:func:`~r1track.data.sequences.read_visibility`: GOT-10k's
``absence.label`` / ``cover.label``, LaSOT's ``full_occlusion.txt`` / ``out_of_view.txt``), so no layout flag
can turn an absent or fully covered target into a visible one.

Readers raise :class:`~r1track.data.sequences.DatasetError` on malformed files (naming file and
line). They do not open frames; consumers check frame counts and readability.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import numpy as np

from .layouts import GT_NAMES, Layout, LayoutMismatch, check_layout, detect_kind
from .sequences import DatasetError, Sequence, list_frames, read_boxes_file, read_text_file, read_visibility

__all__ = [
    "DATASET_KINDS",
    "read_got10k",
    "read_lasot",
    "read_trackingnet",
    "read_generic",
    "read_dataset",
    "detect_kind",
    "LayoutMismatch",
    "read_meta_info",
    "got10k_split_dir",
]


def read_meta_info(path: str | Path) -> dict[str, str]:
    """GOT-10k ``meta_info.ini``: ``key: value`` lines after a ``[METAINFO]`` header. Only the resolution
    is used, so bytes that are not UTF-8 (a latin-1 description) are replaced, not an error."""
    meta: dict[str, str] = {}
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read metadata: {exc.strerror or exc}") from exc
    for line in text.splitlines():
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
    names = [ln.strip() for ln in read_text_file(path, "sequence list").splitlines() if ln.strip()]
    if not names:
        raise DatasetError(f"{path}: empty sequence list")
    return names


def read_got10k(root: str | Path, split: str = "val", *, names: list[str] | None = None) -> Iterator[Sequence]:
    """Sequences of a GOT-10k split, in ``list.txt`` order (or only ``names``). A sequence folder
    listed but missing raises DatasetError; a folder with another layout's signature, LayoutMismatch."""
    check_layout(root, Layout.GOT10K)
    split_dir = got10k_split_dir(root, split)
    for name in names or _read_list(split_dir / "list.txt"):
        folder = split_dir / name
        if not folder.is_dir():
            where = f"{split_dir / 'list.txt'}: sequence {name!r} listed but" if names is None else f"sequence {name!r}:"
            raise DatasetError(f"{where} {folder} does not exist")
        frames = list_frames(folder, (".jpg", ".jpeg", ".png"))
        boxes = read_boxes_file(folder / "groundtruth.txt")
        vis = read_visibility(folder, len(boxes))
        meta = read_meta_info(folder / "meta_info.ini") if (folder / "meta_info.ini").is_file() else {}
        yield Sequence(
            name=name,
            frames=frames,
            boxes_xywh_orig=boxes,
            visible=vis.visible,
            dataset=f"got10k-{split}",
            cover=vis.cover,
            image_size=_resolution(meta, folder / "meta_info.ini"),
            meta=meta,
            labels=vis.files,
        )


def read_generic(root: str | Path, *, names: list[str] | None = None) -> Iterator[Sequence]:
    """Sequences of a generic folder: every sub-folder with a ground-truth file (or those named in
    ``root/list.txt``, or ``names``), sorted by name. ``root`` may also be one sequence folder (it holds
    the ground-truth file itself): that sequence alone. ``visible``: from the folder's visibility labels
    when it has any (a GOT-10k or LaSOT sequence folder), else every frame with a finite, positive-size box."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    if names is None and any((root / g).is_file() for g in GT_NAMES):
        root = root.resolve()  # a single sequence folder: the dataset of that one sequence
        root, names = root.parent, [root.name]
    else:
        check_layout(root, Layout.GENERIC)
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
        vis = read_visibility(folder, len(boxes))
        if vis.files:
            visible = vis.visible
        else:
            with np.errstate(invalid="ignore"):
                visible = np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
        yield Sequence(name=name, frames=list_frames(frame_dir), boxes_xywh_orig=boxes, visible=visible,
                       dataset="generic", cover=vis.cover, labels=vis.files)


def _natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers numerically (``airplane-2`` before ``airplane-10``)."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


LASOT_TEST_SPLIT = Path(__file__).with_name("splits") / "lasot_test.txt"
"""The 280 sequences of LaSOT's test set (protocol II), shipped with r1track: ``split_file="test"``."""


def _read_names_file(path: Path) -> list[str]:
    """One name per line; blank lines and ``#`` comments ignored."""
    text = read_text_file(path, "sequence list")
    names = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not names:
        raise DatasetError(f"{path}: empty sequence list")
    return names


def _lasot_folder(root: Path, name: str) -> Path:
    """``root/<class>/<name>`` (standard layout) or ``root/<name>`` (flattened)."""
    cls = name.rsplit("-", 1)[0]
    for cand in (root / cls / name, root / name):
        if (cand / "groundtruth.txt").is_file():
            return cand
    raise DatasetError(f"{root}: LaSOT sequence {name!r} not found (expected {root / cls / name / 'groundtruth.txt'})")


def read_lasot(root: str | Path, *, names: list[str] | None = None, split_file: str | Path | None = None) -> Iterator[Sequence]:
    """Sequences of LaSOT: every ``<class>/<class>-<n>`` folder under ``root`` (sorted by class, then
    number), or those named in ``names`` / ``split_file`` (one name per line, e.g. ``testing_set.txt``;
    ``"test"`` = the 280-sequence test set shipped with r1track).
    ``visible`` = not ``full_occlusion`` and not ``out_of_view``; ``text`` = ``nlp.txt``. Label files
    whose length differs from the ground truth raise DatasetError naming the file."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    check_layout(root, Layout.LASOT)
    bundled = names is None and split_file is not None and str(split_file) == "test"
    if names is None and split_file is not None:
        names = _read_names_file(LASOT_TEST_SPLIT if bundled else Path(split_file))
    if names is None:
        found = []
        for p in root.iterdir():
            if not p.is_dir():
                continue
            if (p / "groundtruth.txt").is_file():
                found.append(p.name)  # flattened layout
            else:
                found.extend(q.name for q in p.iterdir() if q.is_dir() and (q / "groundtruth.txt").is_file())
        names = sorted(set(found), key=_natural_key)
        if not names:
            raise DatasetError(f"{root}: no LaSOT sequences (<class>/<class>-<n>/groundtruth.txt)")
    for name in names:
        try:
            folder = _lasot_folder(root, name)
        except DatasetError as exc:
            if bundled:
                raise DatasetError(f"{exc}; the names come from LaSOT's 280-sequence test split (split 'test', "
                                   "the default of 'r1track eval'): split 'all' reads every sequence present") from None
            raise
        boxes = read_boxes_file(folder / "groundtruth.txt")
        vis = read_visibility(folder, len(boxes))
        text = None
        if (folder / "nlp.txt").is_file():
            text = " ".join((folder / "nlp.txt").read_text(errors="replace").split()) or None
        frame_dir = folder / "img" if (folder / "img").is_dir() else folder
        yield Sequence(
            name=name,
            frames=list_frames(frame_dir, (".jpg", ".jpeg", ".png")),
            boxes_xywh_orig=boxes,
            visible=vis.visible,
            dataset="lasot",
            cover=vis.cover,
            text=text,
            labels=vis.files,
        )


def _trackingnet_chunks(root: Path, chunks: list[str] | None) -> list[Path]:
    if (root / "anno").is_dir() and (root / "frames").is_dir():
        return [root]  # root is one chunk
    if chunks is None:
        chunks = sorted(
            (p.name for p in root.iterdir() if p.is_dir() and (p / "anno").is_dir() and p.name.upper().startswith("TRAIN")),
            key=_natural_key,
        )
        if not chunks:
            raise DatasetError(f"{root}: no TrackingNet chunks (TRAIN_<k>/anno and TRAIN_<k>/frames)")
    dirs = []
    for c in chunks:
        d = root / c
        if not ((d / "anno").is_dir() and (d / "frames").is_dir()):
            raise DatasetError(f"{d}: not a TrackingNet chunk (needs anno/ and frames/)")
        dirs.append(d)
    return dirs


def read_trackingnet(root: str | Path, *, chunks: list[str] | None = None, names: list[str] | None = None) -> Iterator[Sequence]:
    """Sequences of TrackingNet: ``root`` is the dataset root (all ``TRAIN_*`` chunks, or the
    ``chunks`` named, e.g. ``["TEST"]``) or a single chunk folder. Each ``anno/<seq>.txt`` gives the
    boxes; frames are ``frames/<seq>/<i>.jpg`` with 0-based, unpadded ``i`` (sorted numerically).
    TrackingNet has no visibility labels: every annotated frame counts as visible (zero-area boxes
    are the builder's business)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    check_layout(root, Layout.TRACKINGNET)
    for chunk in _trackingnet_chunks(root, chunks):
        seq_names = names
        if seq_names is None:
            seq_names = sorted((p.stem for p in (chunk / "anno").glob("*.txt")), key=_natural_key)
        for name in seq_names:
            anno = chunk / "anno" / f"{name}.txt"
            if not anno.is_file():
                if names is not None:
                    continue  # a requested name lives in another chunk
                raise DatasetError(f"{anno}: annotation file not found")
            boxes = read_boxes_file(anno)
            yield Sequence(
                name=name,
                frames=list_frames(chunk / "frames" / name, (".jpg", ".jpeg", ".png")),
                boxes_xywh_orig=boxes,
                visible=np.ones(len(boxes), dtype=bool),
                dataset=f"trackingnet-{chunk.name}",
            )


DATASET_KINDS = ("got10k", "lasot", "trackingnet", "generic")


def read_dataset(kind: str, root: str | Path, *, split: str | None = None, names: list[str] | None = None) -> Iterator[Sequence]:
    """Sequences of ``root`` read as ``kind`` (one of :data:`DATASET_KINDS`, or ``"auto"``).
    ``split``: GOT-10k split (default: ``root`` itself when it holds ``list.txt``, else ``train``),
    TrackingNet chunk (e.g. ``TRAIN_3`` or ``TEST``; default all ``TRAIN_*``), LaSOT split file
    (a path, or ``test`` for the bundled 280-sequence test set); ignored for generic folders.
    ``names``: read only these sequences (the others' files are never opened, so a malformed file of
    an excluded sequence does not matter)."""
    if kind == "auto":
        kind = detect_kind(root)
    if kind == "got10k":
        if split is None:
            split = Path(root).name if (Path(root) / "list.txt").is_file() else "train"
        return read_got10k(root, split, names=names)
    if kind == "lasot":
        return read_lasot(root, names=names, split_file=None if names else split)
    if kind == "trackingnet":
        return read_trackingnet(root, chunks=[split] if split else None, names=names)
    if kind == "generic":
        return read_generic(root, names=names)
    raise DatasetError(f"unknown dataset kind {kind!r}; known: auto, {', '.join(DATASET_KINDS)}")
