"""Why a frame, sample or sequence is skipped: one vocabulary for the data checks (``r1track data build``), the
image-header checks and the fallback frames of ``r1track eval`` / ``r1track track``.

The meaning of each reason, and which ones skip a whole sequence, is in :mod:`r1track.data.checks`; the tracker's
frame statuses for the same problems (:class:`r1track.frame_outcome.Status`) carry the same names.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["Reason", "REASONS", "SEQUENCE_REASONS"]


class Reason(str, Enum):
    """Why a frame, sample or sequence is skipped (build) or a frame falls back (eval, track). The same
    name for the same problem in every dataset layout and every command."""

    FRAME_COUNT_MISMATCH = "frame_count_mismatch"
    MISSING_FRAME = "missing_frame"
    INVISIBLE = "invisible"
    ZERO_AREA_BOX = "zero_area_box"
    BOX_OUTSIDE_IMAGE = "box_outside_image"
    OVERSIZED_BOX = "oversized_box"
    UNREADABLE_FRAME = "unreadable_frame"
    IMAGE_TOO_LARGE = "image_too_large"
    NO_USABLE_FRAMES = "no_usable_frames"
    NO_IMAGE_SIZE = "no_image_size"
    DEGENERATE_BOX = "degenerate_box"  # a sample (not a frame): its box rounds to an empty box in its crop

    def __str__(self) -> str:
        return self.value


REASONS = tuple(r.value for r in Reason)

SEQUENCE_REASONS = (Reason.FRAME_COUNT_MISMATCH.value, Reason.NO_USABLE_FRAMES.value, Reason.NO_IMAGE_SIZE.value)
"""Reasons that skip a whole sequence (the others skip frames)."""
