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
invisible            absent / fully occluded / out of view (dataset labels)  that frame
zero_area_box        box with a non-finite value or width/height <= 0        that frame
unreadable_frame     a frame that cannot be opened or decoded                that frame / sample
no_usable_frames     no frame is present, visible and has a box              the whole sequence
no_image_size        no frame of the sequence could be opened                the whole sequence
==================== ======================================================= =====================

Frame alignment: when there are as many frame files as ground-truth rows, row ``i`` is the
``i``-th frame in numeric order. Otherwise frames are matched by the last number in their file name
(GOT-10k and LaSOT count from 1, TrackingNet from 0); that works when every number falls inside the
ground-truth range and none repeats, and the rows without a file become ``missing_frame``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .sequences import Sequence, frame_number

__all__ = ["REASONS", "SEQUENCE_REASONS", "Issue", "CheckedSequence", "check_sequence", "align_frames", "image_size_of"]

REASONS = (
    "frame_count_mismatch",
    "missing_frame",
    "invisible",
    "zero_area_box",
    "unreadable_frame",
    "no_usable_frames",
    "no_image_size",
)

SEQUENCE_REASONS = ("frame_count_mismatch", "no_usable_frames", "no_image_size")
"""Reasons that skip a whole sequence (the others skip frames)."""


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


def image_size_of(path: Path) -> tuple[int, int] | None:
    """(W, H) from the image header, or None when the file cannot be opened."""
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, ValueError, SyntaxError):
        return None


def check_sequence(seq: Sequence) -> tuple[CheckedSequence | None, list[Issue]]:
    """Check one sequence; returns (checked sequence or None when it is skipped whole, issues).
    Never raises on data problems. The image size comes from the dataset's metadata when present,
    else from the header of the first usable frame (frames whose header cannot be read on the way
    are ``unreadable_frame``)."""
    where = str(seq.frames[0].parent) if seq.frames else seq.name
    n = len(seq.boxes_xywh_orig)
    issues: list[Issue] = []
    frames = align_frames(seq.frames, n)
    if frames is None:
        issues.append(Issue("frame_count_mismatch", where, f"{len(seq.frames)} frame files for {n} ground-truth rows", n))
        return None, issues
    present = np.array([f is not None for f in frames], dtype=bool)
    missing = np.flatnonzero(~present)
    if len(missing):
        first = missing[:5].tolist()
        issues.append(Issue("missing_frame", where, f"no file for ground-truth row(s) {first}{' ...' if len(missing) > 5 else ''}", len(missing)))
    visible = np.asarray(seq.visible, dtype=bool)
    if len(visible) != n:  # readers guarantee this; guard against hand-made Sequences
        visible = np.resize(visible, n)
    invisible = present & ~visible
    if invisible.any():
        issues.append(Issue("invisible", where, "absent, fully occluded or out of view", int(invisible.sum())))
    b = np.asarray(seq.boxes_xywh_orig, dtype=np.float64)
    good_box = np.isfinite(b).all(axis=1) & (b[:, 2] > 0) & (b[:, 3] > 0)
    bad_box = present & visible & ~good_box
    if bad_box.any():
        rows = np.flatnonzero(bad_box)
        issues.append(Issue("zero_area_box", where, f"ground-truth row(s) {(rows[:5] + 1).tolist()}{' ...' if len(rows) > 5 else ''} (1-based) have no area", len(rows)))
    usable = present & visible & good_box
    if not usable.any():
        issues.append(Issue("no_usable_frames", where, "no frame is present, visible and annotated with a box", 0))
        return None, issues
    size = tuple(seq.image_size) if seq.image_size else None
    if size is None:
        for i in np.flatnonzero(usable):
            size = image_size_of(frames[i])  # type: ignore[arg-type]
            if size is not None:
                break
            usable[i] = False
            issues.append(Issue("unreadable_frame", str(frames[i]), "cannot read the image header"))
    if size is None:
        issues.append(Issue("no_image_size", where, "no frame of the sequence could be opened", 0))
        return None, issues
    return CheckedSequence(seq, frames, usable, (int(size[0]), int(size[1])), issues), issues

