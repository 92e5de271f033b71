"""Checks a sequence before sampling: which frames are usable, and what is wrong with the rest.

Problems that are a fact about the data rather than a malformed file are *reported, skipped and
counted*, never raised:

==================== ======================================================= =====================
reason               what                                                    skipped
==================== ======================================================= =====================
frame_count_mismatch frame files and ground-truth rows disagree and cannot   the whole sequence
                     be aligned by frame number
missing_frame        a frame number inside the ground-truth range has no     that frame
                     file (frames aligned by the number in their name)
zero_area_box        box with a non-finite value or width/height <= 0        that frame
                     (whatever the visibility labels say, in every layout)
box_outside_image    the box does not overlap the image                      that frame
oversized_box        the box is more than 2x the image's width or height     that frame
invisible            absent / fully occluded / out of view (dataset labels)  that frame
unreadable_frame     a frame that cannot be opened or decoded                that frame / sample
image_too_large      a frame of more than :data:`MAX_FRAME_PIXELS` pixels    that frame / sample
                     (checked from the header, before any decoding)
no_usable_frames     no frame is present, visible and has a box              the whole sequence
no_image_size        no frame of the sequence could be opened                the whole sequence
==================== ======================================================= =====================

The box checks that need the image size (``box_outside_image``, ``oversized_box``) use the size of
the sequence (metadata, else the first readable frame's header); they run before any crop is cut,
so an absurd box (``0,0,1e12,1e12``) never reaches the decoder or the resampler.

Frame alignment: when there are as many frame files as ground-truth rows, row ``i`` is the
``i``-th frame in numeric order. Otherwise frames are matched by the last number in their file name
(GOT-10k and LaSOT count from 1, TrackingNet from 0); that works when every number falls inside the
ground-truth range and none repeats, and the rows without a file become ``missing_frame``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence as Seq

import numpy as np

from ..images import MAX_FRAME_PIXELS, image_size_of, read_image_header
from ..reasons import REASONS, SEQUENCE_REASONS, Reason
from .sequences import Sequence, frame_number

__all__ = [
    "MAX_FRAME_PIXELS",
    "MAX_BOX_TO_IMAGE",
    "Reason",
    "REASONS",
    "SEQUENCE_REASONS",
    "Issue",
    "CheckedSequence",
    "check_sequence",
    "align_frames",
    "frame_slots",
    "numbered_slots",
    "box_problem",
    "read_image_header",
    "image_size_of",
]

MAX_BOX_TO_IMAGE = 2.0
"""A box wider or taller than this many image widths or heights is ``oversized_box``: its crop
window would be mostly padding, and a side like 1e12 would make the crop itself explode."""


@dataclass(frozen=True)
class Issue:
    """One reported problem: ``reason`` (one of :data:`REASONS`), the file or folder it concerns,
    a human-readable ``detail`` and how many frames it covers."""

    reason: str
    path: str
    detail: str
    frames: int = 1


@dataclass
class CheckedSequence:
    """A sequence ready for sampling. ``frames[i]`` is the file of ground-truth row ``i`` (None when
    missing); ``usable[i]`` is True when that frame may be used (file present, visible, box with
    positive finite size); ``image_size`` = (W, H) of its frames."""

    seq: Sequence
    frames: list[Path | None]
    usable: np.ndarray
    image_size: tuple[int, int]
    issues: list[Issue] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.seq.dataset}/{self.seq.name}"


def align_frames(frames: list[Path], n_rows: int) -> list[Path | None] | None:
    """Frame file of every ground-truth row (None where missing), or None when the frames cannot be
    aligned with the rows (see the module docstring)."""
    if len(frames) == n_rows:
        return list(frames)
    numbers = []
    for f in frames:
        n = frame_number(f)
        if n is None:
            return None
        numbers.append(n)
    if not numbers or len(set(numbers)) != len(numbers):
        return None
    base = 0 if min(numbers) == 0 else 1
    if max(numbers) - base >= n_rows or min(numbers) < base:
        return None
    out: list[Path | None] = [None] * n_rows
    for f, k in zip(frames, numbers):
        out[k - base] = f
    return out


def frame_slots(seq: Sequence) -> list[Path | None] | None:
    """The file of every frame of ``seq`` in order, None where a frame is missing; None when the frame
    files and the ground truth cannot be aligned. With a ground-truth row per frame (more than one row)
    the slots are the rows (:func:`align_frames`); with only the first row (test splits) they run up to
    the highest frame number in the file names, so a gap in the numbering is a missing frame."""
    n = len(seq.boxes_xywh_orig)
    if n > 1:
        return align_frames(seq.frames, n)
    return numbered_slots(seq.frames)


def numbered_slots(frames: list[Path], *, from_lowest: bool = False) -> list[Path | None] | None:
    """``frames`` placed by the last number in their names, from 0 or 1 (datasets count from one of
    them; ``from_lowest``: from the lowest number present, for a clip cut from a longer video) up to the
    highest, None where a number has no file; the list itself when some name has no number; None when a
    number repeats."""
    numbers = [frame_number(f) for f in frames]
    if not numbers or any(k is None for k in numbers):
        return list(frames)
    low = min(numbers)  # type: ignore[type-var]
    if from_lowest and low > 1:
        if len(set(numbers)) != len(numbers):
            return None
        out: list[Path | None] = [None] * (max(numbers) - low + 1)  # type: ignore[operator]
        for f, k in zip(frames, numbers):
            out[k - low] = f  # type: ignore[operator]
        return out
    base = 0 if low == 0 else 1
    return align_frames(frames, max(numbers) - base + 1)  # type: ignore[operator]


def box_problem(box_xywh_orig: Seq[float], image_size: tuple[int, int] | None) -> Reason | None:
    """Why ``box_xywh_orig`` (original pixels) cannot start or train a crop, or None when it can:
    ``zero_area_box`` (non-finite, width or height <= 0), ``box_outside_image`` (no overlap with the
    ``image_size`` = (W, H) image), ``oversized_box`` (more than :data:`MAX_BOX_TO_IMAGE` image widths
    or heights). Without an image size only the first check runs."""
    try:
        x, y, w, h = (float(v) for v in box_xywh_orig)
    except (TypeError, ValueError):
        return Reason.ZERO_AREA_BOX
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        return Reason.ZERO_AREA_BOX
    if image_size is None:
        return None
    iw, ih = image_size
    if w > MAX_BOX_TO_IMAGE * iw or h > MAX_BOX_TO_IMAGE * ih:
        return Reason.OVERSIZED_BOX
    if x >= iw or y >= ih or x + w <= 0 or y + h <= 0:
        return Reason.BOX_OUTSIDE_IMAGE
    return None


def _rows(rows: np.ndarray) -> str:
    """The first 1-based ground-truth rows of a mask's hits, for a message."""
    return f"{(rows[:5] + 1).tolist()}{' ...' if len(rows) > 5 else ''}"


def check_sequence(seq: Sequence) -> tuple[CheckedSequence | None, list[Issue]]:
    """Check one sequence; returns (checked sequence or None when it is skipped whole, issues).
    Never raises on data problems. The image size comes from the dataset's metadata when present,
    else from the header of the first usable frame (frames whose header cannot be read on the way
    are ``unreadable_frame`` or ``image_too_large``). Each frame gets at most one reason, the first
    of: missing_frame, zero_area_box, invisible, unreadable_frame / image_too_large (header read on
    the way), box_outside_image / oversized_box."""
    where = str(seq.frames[0].parent) if seq.frames else seq.name
    n = len(seq.boxes_xywh_orig)
    issues: list[Issue] = []
    frames = align_frames(seq.frames, n)
    if frames is None:
        issues.append(Issue(Reason.FRAME_COUNT_MISMATCH.value, where, f"{len(seq.frames)} frame files for {n} ground-truth rows", n))
        return None, issues
    present = np.array([f is not None for f in frames], dtype=bool)
    missing = np.flatnonzero(~present)
    if len(missing):
        issues.append(Issue(Reason.MISSING_FRAME.value, where, f"no file for ground-truth row(s) {_rows(missing)} (1-based)", len(missing)))
    visible = np.asarray(seq.visible, dtype=bool)
    if len(visible) != n:  # readers guarantee this; guard against hand-made Sequences
        visible = np.resize(visible, n)
    b = np.asarray(seq.boxes_xywh_orig, dtype=np.float64).reshape(-1, 4)
    with np.errstate(invalid="ignore"):
        good_box = np.isfinite(b).all(axis=1) & (b[:, 2] > 0) & (b[:, 3] > 0)
    bad_box = present & ~good_box
    if bad_box.any():
        rows = np.flatnonzero(bad_box)
        issues.append(Issue(Reason.ZERO_AREA_BOX.value, where, f"ground-truth row(s) {_rows(rows)} (1-based) have no area or a non-finite value", len(rows)))
    invisible = present & good_box & ~visible
    if invisible.any():
        issues.append(Issue(Reason.INVISIBLE.value, where, "absent, fully occluded or out of view", int(invisible.sum())))
    usable = present & visible & good_box
    size = tuple(seq.image_size) if seq.image_size else None
    if size is not None and size[0] * size[1] > MAX_FRAME_PIXELS:
        issues.append(Issue(Reason.IMAGE_TOO_LARGE.value, where, f"metadata says {size[0]}x{size[1]} pixels, more than {MAX_FRAME_PIXELS}", int(usable.sum())))
        usable[:] = False
    if size is None:
        for i in np.flatnonzero(usable):
            size, reason, detail = read_image_header(frames[i])  # type: ignore[arg-type]
            if size is not None:
                break
            usable[i] = False
            issues.append(Issue(str(reason), str(frames[i]), detail))
    if size is not None and usable.any():
        iw, ih = size
        with np.errstate(invalid="ignore", over="ignore"):
            oversized = usable & ((b[:, 2] > MAX_BOX_TO_IMAGE * iw) | (b[:, 3] > MAX_BOX_TO_IMAGE * ih))
            outside = usable & ~oversized & ((b[:, 0] >= iw) | (b[:, 1] >= ih) | (b[:, 0] + b[:, 2] <= 0) | (b[:, 1] + b[:, 3] <= 0))
        for reason, mask, what in ((Reason.OVERSIZED_BOX, oversized, f"more than {MAX_BOX_TO_IMAGE:g}x the {iw}x{ih} image"),
                                   (Reason.BOX_OUTSIDE_IMAGE, outside, f"entirely outside the {iw}x{ih} image")):
            if mask.any():
                rows = np.flatnonzero(mask)
                issues.append(Issue(reason.value, where, f"ground-truth row(s) {_rows(rows)} (1-based): box {what}", len(rows)))
                usable &= ~mask
    if not usable.any():
        if size is None and (present & visible & good_box).any():
            issues.append(Issue(Reason.NO_IMAGE_SIZE.value, where, "no frame of the sequence could be opened", 0))
        else:
            issues.append(Issue(Reason.NO_USABLE_FRAMES.value, where, "no frame is present, visible, readable and annotated with a box on the image", 0))
        return None, issues
    return CheckedSequence(seq, frames, usable, (int(size[0]), int(size[1])), issues), issues  # type: ignore[index]
