"""What happened to one frame: its status, whether that is a fault, the presence score it reports, its result.

:class:`Status` names every outcome -- ``ok``, ``init``, each fallback reason (:data:`FAULT_STATUSES`: the frame
kept the last accepted box) and ``absent`` (the model answered that the target is not visible: an answer, not a
fault). Frames never sent to the backend (a missing or undecodable file) have the statuses of
:data:`SKIP_STATUSES`, named like :class:`r1track.reasons.Reason`'s for the same problems. Every count of faults
(:class:`r1track.tracker.Tracker`'s ``counts``, :class:`r1track.faults.FaultRecord`, run folders and summaries)
is kept by these statuses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import Enum

from .boxes import BoxXYWH, BoxXYXY
from .images import read_image_header
from .reasons import Reason

__all__ = [
    "Status",
    "FAULT_STATUSES",
    "SKIP_STATUSES",
    "UNANSWERED_STATUSES",
    "PRESENCE_OK",
    "PRESENCE_ABSENT",
    "PRESENCE_FALLBACK",
    "presence_score",
    "frame_fault",
    "FrameTiming",
    "TrackResult",
    "InitResult",
    "TrackerInitError",
]


class Status(str, Enum):
    """What happened to a frame: ``ok``, ``init`` (the first frame, box given or grounded) or a fallback
    reason (:data:`FAULT_STATUSES`). A ``str``: it compares equal to, formats and serialises as its value."""

    OK = "ok"
    INIT = "init"
    NO_BOX = "no-box"  # the reply holds no readable box (garbage, empty, cut off)
    BAD_FORMAT = "bad-format"  # think mode with require_think_format: not <think>..</think><answer>..</answer>
    EMPTY_BOX = "empty-box"  # the box is thinner than min_box_px once clipped to the crop
    OUTSIDE_CROP = "outside-crop"  # less than min_inside_fraction of the box lies inside the crop
    OUTSIDE_IMAGE = "outside-image"  # the box lies in the crop's padding, off the image
    SCALE_JUMP = "scale-jump"  # the size changed by more than max_scale_change since the last accepted box
    BACKEND_ERROR = "backend-error"  # no reply: timeout, connection, 5xx, 429 after the backend's retries
    NO_CONTENT = "no-content"  # the server answered without any text: null content, or no choice at all
    # Frames never sent (Tracker.skip_frame); the names are r1track.reasons.Reason's for the same problems
    MISSING_FRAME = "missing_frame"  # no file with this frame number (a gap in the numbering)
    UNREADABLE_FRAME = "unreadable_frame"  # the file cannot be decoded
    IMAGE_TOO_LARGE = "image_too_large"  # over the pixel limit, refused from the header before decoding
    # Not a fault: the model answered that the target is not visible (visibility-aware prompts)
    ABSENT = "absent"

    __str__ = str.__str__
    __format__ = str.__format__


FAULT_STATUSES = tuple(s for s in Status if s not in (Status.OK, Status.INIT, Status.ABSENT))
"""Every fallback reason: the frame kept the last accepted box (an absent answer keeps it too but is an answer,
not a fault)."""

PRESENCE_OK = 1.0
"""``object_presence_score`` of an accepted box (and of the first frame)."""
PRESENCE_ABSENT = 0.0
"""``object_presence_score`` of an absent answer."""
PRESENCE_FALLBACK = 0.5
"""``object_presence_score`` of a fallback frame: nothing new is known about the target."""


def presence_score(status: Status) -> float:
    """The ``object_presence_score`` a frame of ``status`` reports: 1.0 for an accepted box (and the first
    frame), 0.0 for an absent answer, 0.5 for a fallback frame (the box shown is the last accepted one,
    nothing was learnt about the target)."""
    if status in (Status.OK, Status.INIT):
        return PRESENCE_OK
    return PRESENCE_ABSENT if status == Status.ABSENT else PRESENCE_FALLBACK

SKIP_STATUSES = (Status.MISSING_FRAME, Status.UNREADABLE_FRAME, Status.IMAGE_TOO_LARGE)
"""Fallback reasons of frames that were never sent to the backend (no file, or a file that cannot be decoded)."""

UNANSWERED_STATUSES = (Status.BACKEND_ERROR, Status.NO_CONTENT)
"""Fallback reasons that point at the server, not at the model: no reply after the retries, or a reply without
any text (null content, no choice). :mod:`r1track.faults` stops a sequence on them; the other fallbacks are the
model's own answers."""


def frame_fault(frame: str | os.PathLike[str], exc: Exception) -> tuple[Status, str]:
    """(status, detail naming the file) for a frame file that could not be decoded: the reason is read
    from its header (:func:`r1track.images.read_image_header`), else ``unreadable_frame``."""
    _, reason, detail = read_image_header(frame)
    status = Status.IMAGE_TOO_LARGE if reason is Reason.IMAGE_TOO_LARGE else Status.UNREADABLE_FRAME
    return status, f"{frame}: {detail or exc}"


@dataclass(frozen=True)
class FrameTiming:
    """Seconds spent per step: ``prepare_s`` (decode, crop, encode), ``request_s`` (backend call,
    including queueing and retries), ``apply_s`` (parse, checks, state update)."""

    prepare_s: float = 0.0
    request_s: float = 0.0
    apply_s: float = 0.0

    @property
    def total_s(self) -> float:
        return self.prepare_s + self.request_s + self.apply_s


@dataclass(frozen=True)
class TrackResult:
    """Outcome of one frame.

    ``box_xywh_orig``: the tracker's box for this frame, original pixels, full precision (the last
    accepted box on a fallback frame). ``status``: :attr:`Status.OK`, :attr:`Status.INIT` (frame 0 of
    :meth:`Tracker.run <r1track.tracker.Tracker.run>`) or the fallback reason (one of :data:`FAULT_STATUSES`); ``detail`` says more (parser reason, backend error message).
    ``reply``: the raw reply text (None when the backend gave none). ``box_xyxy_model``: the
    answer as parsed, in the search crop's pixels (None if none). ``search_window_xyxy_orig``: the
    search crop's window in original pixels (the template's on the init frame). ``search_factor``: the factor used for this frame.
    ``search_crop_side``: the side in crop pixels the window was resized to (0 when no crop was sent: a missing
    or unreadable frame). ``attempts``: HTTP attempts made. ``faults``: transport faults met by kind, retried ones included
    (from :attr:`Reply.faults <r1track.backends.Reply>` or the backend error). ``object_presence_score``: 1.0
    accepted box, 0.0 absent answer, 0.5 fallback (:func:`presence_score`). ``redetect``: the search covered the
    whole frame (re-detection).
    """

    frame_index: int
    box_xywh_orig: BoxXYWH
    status: Status
    detail: str
    reply: str | None
    box_xyxy_model: BoxXYXY | None
    search_window_xyxy_orig: BoxXYXY
    search_factor: float
    timing: FrameTiming
    attempts: int = 1
    faults: dict[str, int] = field(default_factory=dict)
    redetect: bool = False
    search_crop_side: int = 0

    @property
    def object_presence_score(self) -> float:
        """PyTracking's confidence that the target is in the frame (see :func:`presence_score`)."""
        return presence_score(self.status)

    @property
    def ok(self) -> bool:
        return self.status == Status.OK

    @property
    def fault(self) -> bool:
        """True on a fallback frame (the last accepted box was kept)."""
        return self.status in FAULT_STATUSES


@dataclass(frozen=True)
class InitResult:
    """Outcome of :meth:`Tracker.initialize <r1track.tracker.Tracker.initialize>`: the initial box (given, or
    found from the text), the grounding reply (None for box initialisation) and timing; ``attempts`` and
    ``faults``: the grounding request's HTTP attempts and the faults met on the way (0 and none for a box)."""

    box_xywh_orig: BoxXYWH
    reply: str | None = None
    timing: FrameTiming = field(default_factory=FrameTiming)
    attempts: int = 0
    faults: dict[str, int] = field(default_factory=dict)


class TrackerInitError(ValueError):
    """Initialisation failed: bad initial box, or text grounding gave no usable box. ``attempts`` and ``faults``
    (by kind): those of the grounding request when one was made and answered without a usable box (0 and empty
    otherwise), so the caller can still count it."""

    def __init__(self, *args: object, attempts: int = 0, faults: dict[str, int] | None = None) -> None:
        super().__init__(*args)
        self.attempts = attempts
        self.faults = dict(faults or {})
