"""The tracker: follow one target frame by frame with a model behind a :class:`~r1track.backends.Backend`.

Framework-free; PyTracking, ``r1track eval`` and scripts all drive this class::

    tracker = Tracker(backend, TrackerParams())
    tracker.initialize(first_frame, box_xywh=(x, y, w, h))       # or text="the red car"
    for frame in frames[1:]:
        result = tracker.track(frame)                             # result.box_xywh_orig, result.status

Images may be RGB uint8 numpy arrays (H x W x 3), PIL images (opened lazily or loaded; lazily opened
JPEGs are decoded at reduced resolution when the crop needs less) or paths.

Or let the tracker drive the loop: ``for result in tracker.run(frames, box_xywh=(x, y, w, h))`` yields
the first frame's :class:`TrackResult` (status :attr:`Status.INIT`) and then one per frame.

Each frame is two steps around one backend call, so one event loop can drive hundreds of trackers
(:meth:`Tracker.track_async`) and the sync path (:meth:`Tracker.track`) is the same code:

1. :meth:`Tracker.build_request` -- decode, cut the search crop around the last box, build and encode
   the request (template, (memory), search, prompt); reads the image, never the network;
2. the backend answers (or raises :class:`~r1track.backends.BackendError`);
3. :meth:`Tracker.apply_reply` -- parse, check, map back to the original frame, update the state;
   no I/O at all.

Both paths run one step core (``Tracker._track_steps``, a generator yielding "work" and "ask" steps) through
one driver (``Tracker._drive``); the sync path gives it work run in place and the blocking backend call, the
async path an executor and the awaitable call.

Failure policy (the reference reused the previous crop's box coordinates inside the new crop,
which misplaces the target whenever the crop moved): an unusable reply — no box, a box mostly
outside the crop, a degenerate box, an implausible scale change, a transport fault — keeps the last
accepted box *in original-frame pixels*; the next search crop is centred on it and widened by
``widen_step`` per consecutive failure up to ``max_search_factor``; the first good answer resets the
factor. Every fallback frame is counted by reason in :attr:`Tracker.counts`.

Visibility (prompts with an absent answer, e.g. ``r1track-vis-v1``): a reply ``[]`` says the target is not
in the search crop. The frame gets status :attr:`Status.ABSENT` -- counted in :attr:`Tracker.counts` but not a
fault (:data:`FAULT_STATUSES` leaves it out) --, keeps the last box and widens the next search as a fallback
does. Every result carries ``object_presence_score`` (PyTracking's key): 1.0 for an accepted box (and the
first frame), 0.0 for an absent answer, 0.5 for a fallback frame (the box shown is the last accepted one,
nothing was learnt about the target). With ``redetect_after`` = N > 0, once N consecutive frames were absent
or failed, each next search is a **re-detection**: one square crop covering the whole frame (side = the
frame's longer side, centred, the rest letterboxed black, resized to ``redetect_crop_size``), asked with the
same prompt and template; its answer passes the same checks (inside the crop, not in the padding, plausible
size) and, once accepted, tracking returns to local search. ``result.redetect`` marks those frames and
:attr:`Tracker.redetections` counts the accepted ones.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import time
from collections import Counter
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Callable, Generator, Iterable, Iterator, Sequence

from PIL import Image

from .backends.base import KIND_GROUND, KIND_TRACK, Backend, BackendError, FrameRequest, Reply, RequestImage, Sampling
from .boxes import BoxXYWH, BoxXYXY, area_xyxy, clip_xyxy, is_finite_box, xywh_to_xyxy, xyxy_to_xywh
from .crop import CropWindow, ImageSource, load_for_window, load_image, plan_window, render_crop
from .models import DEFAULT_FAMILY, FAMILIES, ModelFamily, get_family
from .parse import parse_reply
from .prompts import DEFAULT_THINK_LAYOUT, DEFAULT_VERSION, check_think_layout, get_prompt

__all__ = [
    "TrackerParams",
    "FrameTiming",
    "TrackResult",
    "InitResult",
    "Tracker",
    "TrackerInitError",
    "Status",
    "FAULT_STATUSES",
    "SKIP_STATUSES",
    "frame_fault",
    "presence_score",
    "full_frame_window",
    "FAMILY_DEFAULTED",
]

log = logging.getLogger(__name__)



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
    # Frames never sent (Tracker.skip_frame); the names are r1track.data.checks.Reason's for the same problems
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
    """The ``object_presence_score`` a frame of ``status`` reports (see the module docstring)."""
    if status in (Status.OK, Status.INIT):
        return PRESENCE_OK
    return PRESENCE_ABSENT if status == Status.ABSENT else PRESENCE_FALLBACK

SKIP_STATUSES = (Status.MISSING_FRAME, Status.UNREADABLE_FRAME, Status.IMAGE_TOO_LARGE)
"""Fallback reasons of frames that were never sent to the backend (no file, or a file that cannot be decoded)."""


def frame_fault(frame: str | os.PathLike[str], exc: Exception) -> tuple[Status, str]:
    """(status, detail naming the file) for a frame file that could not be decoded: the reason is read
    from its header (:func:`r1track.data.checks.read_image_header`), else ``unreadable_frame``."""
    from .data.checks import Reason, read_image_header

    _, reason, detail = read_image_header(frame)
    status = Status.IMAGE_TOO_LARGE if reason is Reason.IMAGE_TOO_LARGE else Status.UNREADABLE_FRAME
    return status, f"{frame}: {detail or exc}"


def _setting(default: Any, help: str) -> Any:
    """A :class:`TrackerParams` field with its help text (the one place it is written)."""
    return field(default=default, metadata={"help": help})


FAMILY_DEFAULTED = ("crop_size", "model_min_pixels", "model_max_pixels", "grounding_max_pixels", "redetect_crop_size")
"""The :class:`TrackerParams` fields a model family fills when they are left None."""


def _family_defaults(family: ModelFamily) -> tuple[tuple[str, int], ...]:
    """(field, the family's value) for each of :data:`FAMILY_DEFAULTED`."""
    values = (family.default_crop_side, family.min_pixels, family.max_pixels, family.grounding_max_pixels,
              max(family.data_crop_sides))
    return tuple(zip(FAMILY_DEFAULTED, values))


@dataclass(frozen=True)
class TrackerParams:
    """Every setting of the tracker, with the reference R1-Track values as defaults.

    Each field carries its help text (``dataclasses.fields(TrackerParams)[i].metadata["help"]``): the
    list below, the ``r1track eval`` / ``r1track track`` flags and their ``--help`` are generated from it.
    Named combinations for the published checkpoints live in :mod:`r1track.presets`.

    ``model_family`` (:mod:`r1track.models`) fills the settings left None -- ``crop_size``,
    ``model_min_pixels``, ``model_max_pixels``, ``grounding_max_pixels`` -- with the family's values, decides
    the crop-side rule and writes/reads every box in the family's coordinates. :meth:`replace` with a new family
    and none of those four takes the new family's values.
    """

    # Prompt and model frame
    prompt_version: str = _setting(DEFAULT_VERSION, "prompt version ('r1track prompts show' lists all); r1track-v1 is "
                                   "the R1-Track-100k prompt, r1track-v0 the R1-Track-5k one")
    think: bool = _setting(False, "think mode: R1-Track's think wrapper, the answer read from <answer>")
    think_layout: str = _setting(DEFAULT_THINK_LAYOUT, "think mode: 'images-first' (images, think instruction, task) "
                                 "or 'instruction-first' (instruction, images, task: the layout R1-Track's think GRPO "
                                 "run trained R1-Track-GRPO-5k with; see r1track.prompts.ThinkLayout)")
    # The base model's family: fills the None defaults below (r1track.models).
    model_family: str = _setting(DEFAULT_FAMILY, "the served model's family: " + ", ".join(FAMILIES) + " (crop rule, "
                                 "box coordinates -- pixels or Qwen3's 0-1000 grid --, regex and the defaults below); "
                                 "commands with a server infer it from /v1/models (root) or the model name and refuse "
                                 "an unknown model")
    crop_size: int | None = _setting(None, "crop side in px: a multiple of the family's factor (28 for qwen2.5-vl, "
                                     "default 336; 32 for qwen3, default 384) whose area lies in [model_min_pixels, "
                                     "model_max_pixels], so the model sees the crop unresized")
    model_min_pixels: int | None = _setting(None, "the served processor's min_pixels (default: the family's, "
                                            "3136 for qwen2.5-vl, 65536 for qwen3)")
    model_max_pixels: int | None = _setting(None, "the served processor's max_pixels (default: the family's); set "
                                            "both to the server's mm_processor_kwargs when those differ")
    template_factor: float = _setting(4.0, "template crop window side = ceil(sqrt(w*h) * factor) original px")
    search_factor: float = _setting(4.0, "search crop window side = ceil(sqrt(w*h) * factor) original px")
    # Sampling
    temperature: float = _setting(0.0, "sampling temperature (0: greedy)")
    top_p: float = _setting(1.0, "nucleus sampling top_p")
    seed: int | None = _setting(None, "sampling seed sent to the server (None: none sent)")
    max_tokens: int | None = _setting(None, "max reply tokens (None: 48 without think, 1024 with think)")
    structured_output: bool = _setting(False, "no-think only: send vLLM's structured_outputs regex forcing "
                                       "[x1,y1,x2,y2] (vLLM >= 0.12; other servers may reject the field)")
    # Sanity checks (a failed check is a fallback frame, counted by reason)
    min_inside_fraction: float = _setting(0.5, "at least this share of the answer's area must lie inside the crop")
    min_box_px: float = _setting(1.0, "the answer clipped to the crop must be at least this wide and high (model px)")
    max_scale_change: float = _setting(2.0, "sqrt(area ratio) to the last accepted box must lie in [1/x, x]")
    require_think_format: bool = _setting(False, "think mode: also fail replies not exactly "
                                          "<think>..</think><answer>..</answer> (R1-Track's reward gate)")
    # Failure policy
    widen_step: float = _setting(1.0, "the search factor grows by this per consecutive failure ...")
    max_search_factor: float = _setting(8.0, "... up to this; back to search_factor on a good answer")
    redetect_after: int = _setting(0, "after this many consecutive absent or failed frames, search the whole frame "
                                   "(one square letterboxed crop) until the target is found again; 0: never")
    redetect_crop_size: int | None = _setting(None, "crop side of a re-detection search (default: the family's "
                                              "largest training crop side, 504 for qwen2.5-vl, 512 for qwen3; crop_size when that "
                                              "exceeds model_max_pixels)")
    # Memory frame (3 images: template, last confident search crop, search)
    memory: bool = _setting(False, "3 images per request: template, last confident crop, search (the server "
                            "needs --limit-mm-per-prompt '{\"image\":3}')")
    memory_prompt_version: str = _setting("r1track-mem-v1", "the 3-image prompt used with memory")
    memory_update_every: int = _setting(1, "refresh the memory with every n-th good answer (until the first, the "
                                        "template is the memory)")
    # Text initialisation (initialize(image, text=...))
    grounding_max_pixels: int | None = _setting(None, "the first frame is resized to the model frame under this "
                                                "pixel budget (and model_max_pixels) for text grounding (default: "
                                                "1280 visual tokens of the family)")

    def __post_init__(self) -> None:
        family = get_family(self.model_family)
        object.__setattr__(self, "model_family", family.name)
        redetect_side_given = self.redetect_crop_size is not None
        for name, default in _family_defaults(family):
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)
        family.check_crop_side(self.crop_size, min_pixels=self.model_min_pixels, max_pixels=self.model_max_pixels)
        if not redetect_side_given and self.redetect_crop_size ** 2 > self.model_max_pixels:
            # the family's default re-detection side does not fit a smaller processor bound: use the crop side
            object.__setattr__(self, "redetect_crop_size", self.crop_size)
        if redetect_side_given or self.redetect_after:
            family.check_crop_side(self.redetect_crop_size, min_pixels=self.model_min_pixels,
                                   max_pixels=self.model_max_pixels)
        if isinstance(self.redetect_after, bool) or not isinstance(self.redetect_after, int) or self.redetect_after < 0:
            raise ValueError(f"redetect_after must be an integer >= 0, got {self.redetect_after!r}")
        check_think_layout(self.think_layout)
        if get_prompt(self.prompt_version).n_images != 2:
            raise ValueError(f"prompt_version {self.prompt_version!r} is not a 2-image (template, search) prompt")
        if self.memory and get_prompt(self.memory_prompt_version).n_images != 3:
            raise ValueError(f"memory_prompt_version {self.memory_prompt_version!r} is not a 3-image prompt")
        for name in ("template_factor", "search_factor", "max_search_factor", "max_scale_change"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")
        if self.max_search_factor < self.search_factor:
            raise ValueError(f"max_search_factor {self.max_search_factor} < search_factor {self.search_factor}")
        if self.max_scale_change < 1:
            raise ValueError(f"max_scale_change must be >= 1, got {self.max_scale_change}")
        if not (self.widen_step >= 0 and math.isfinite(self.widen_step)):
            raise ValueError(f"widen_step must be >= 0, got {self.widen_step}")
        if not 0 <= self.min_inside_fraction <= 1:
            raise ValueError(f"min_inside_fraction must be in [0, 1], got {self.min_inside_fraction}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.memory_update_every < 1:
            raise ValueError(f"memory_update_every must be >= 1, got {self.memory_update_every}")
        if self.grounding_max_pixels < self.model_min_pixels:
            raise ValueError(f"grounding_max_pixels {self.grounding_max_pixels} < model_min_pixels {self.model_min_pixels}")

    @property
    def family(self) -> ModelFamily:
        """The :class:`~r1track.models.ModelFamily` of ``model_family``."""
        return get_family(self.model_family)

    def replace(self, **changes: Any) -> "TrackerParams":
        """A copy with ``changes`` (validated). A different ``model_family`` without ``crop_size``,
        ``model_min_pixels``, ``model_max_pixels`` or ``grounding_max_pixels`` takes the new family's values for
        the ones not given."""
        if "model_family" in changes and get_family(changes["model_family"]).name != self.model_family:
            for name, _ in _family_defaults(self.family):
                changes.setdefault(name, None)
        return replace(self, **changes)

    @property
    def effective_max_tokens(self) -> int:
        """``max_tokens``, or its default: 1024 with think, 48 without."""
        if self.max_tokens is not None:
            return self.max_tokens
        return 1024 if self.think else 48

    def sampling(self) -> Sampling:
        """The :class:`Sampling` every tracking request of these params carries."""
        regex = None
        if self.structured_output and not self.think:
            side = max(self.crop_size, self.redetect_crop_size if self.redetect_after else 0)
            regex = self.family.answer_regex(side, absent=self.visibility_aware)
        return Sampling(self.temperature, self.top_p, self.effective_max_tokens, regex, self.seed)

    @property
    def visibility_aware(self) -> bool:
        """Whether the tracking prompt offers the absent answer (then results carry presence scores)."""
        return get_prompt(self.memory_prompt_version if self.memory else self.prompt_version).absent

    def search_factor_after(self, failures: int) -> float:
        """Search factor after ``failures`` consecutive failures (widened, capped)."""
        return min(self.search_factor + max(0, failures) * self.widen_step, self.max_search_factor)


def _document_fields(cls: type) -> None:
    defaults = cls()
    lines = [f"    * ``{f.name}`` = ``{getattr(defaults, f.name)!r}``: {f.metadata.get('help', '')}" for f in dataclasses.fields(cls)]
    cls.__doc__ = (cls.__doc__ or "") + "\n    Fields:\n\n" + "\n".join(lines) + "\n"


_document_fields(TrackerParams)


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
    :meth:`Tracker.run`) or the fallback reason (one of :data:`FAULT_STATUSES`); ``detail`` says more (parser reason, backend error message).
    ``reply``: the raw reply text (None when the backend gave none). ``box_xyxy_model``: the
    answer as parsed, in the search crop's pixels (None if none). ``search_window_xyxy_orig``: the
    search crop's window in original pixels (the template's on the init frame). ``search_factor``: the factor used for this frame.
    ``attempts``: HTTP attempts made. ``faults``: transport faults met by kind, retried ones included
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
    """Outcome of :meth:`Tracker.initialize`: the initial box (given, or found from the text), the
    grounding reply (None for box initialisation) and timing."""

    box_xywh_orig: BoxXYWH
    reply: str | None = None
    timing: FrameTiming = field(default_factory=FrameTiming)


class TrackerInitError(ValueError):
    """Initialisation failed: bad initial box, or text grounding gave no usable box."""


@dataclass
class _State:
    box_xywh_orig: BoxXYWH
    template: RequestImage
    template_box_xyxy_model: BoxXYXY
    memory: RequestImage
    memory_box_xyxy_model: BoxXYXY
    template_window_xyxy_orig: BoxXYXY
    frame_index: int = 0
    failures: int = 0
    good_answers: int = 0


def _timer() -> float:
    return time.perf_counter()


@dataclass
class _Clock:
    """Seconds the drivers spent on work steps (``prepare_s``) and on backend calls (``request_s``)."""

    prepare_s: float = 0.0
    request_s: float = 0.0


@dataclass(frozen=True)
class _Work:
    """A step core asks its driver to run ``fn(*args)`` (decoding, cropping, encoding: an executor's job
    in the async driver)."""

    fn: Callable[..., Any]
    args: tuple


@dataclass(frozen=True)
class _Ask:
    """A step core asks its driver for the backend's answer to ``request``. ``keep_error``: a
    :class:`BackendError` is sent back as the answer (tracking: a fallback frame) instead of raised."""

    request: FrameRequest
    keep_error: bool


_Steps = Generator["_Work | _Ask", Any, Any]


class Tracker:
    """One target in one sequence. See the module docstring for the frame loop and failure policy.

    ``backend``: any :class:`~r1track.backends.Backend`; it may be shared by many trackers (one
    HTTP client, many sequences). ``params``: :class:`TrackerParams`. ``name``: the sequence name,
    used in log messages and carried in requests.
    """

    def __init__(self, backend: Backend, params: TrackerParams | None = None, *, name: str = "") -> None:
        self.backend = backend
        self.params = params if params is not None else TrackerParams()
        self.name = name
        self.counts: Counter[str] = Counter()
        self.redetections = 0
        """Re-detections accepted (the target found again by a whole-frame search)."""
        self._sampling = self.params.sampling()
        self._state: _State | None = None
        self._pending: FrameRequest | None = None

    # ------------------------------------------------------------------ state
    @property
    def initialized(self) -> bool:
        return self._state is not None

    @property
    def box_xywh_orig(self) -> BoxXYWH:
        """The current (last accepted) box in original pixels."""
        return self._require_state().box_xywh_orig

    @property
    def frame_index(self) -> int:
        """Index of the last frame handled (0 after initialisation)."""
        return self._require_state().frame_index

    @property
    def consecutive_failures(self) -> int:
        return self._require_state().failures

    @property
    def faults(self) -> int:
        """Number of tracked frames that fell back (any reason; absent answers are not faults)."""
        return sum(n for status, n in self.counts.items() if status in FAULT_STATUSES)

    def _require_state(self) -> _State:
        if self._state is None:
            raise RuntimeError("tracker is not initialised: call initialize() first")
        return self._state

    # ------------------------------------------------------------------ initialisation
    def initialize(self, image: ImageSource, box_xywh: Sequence[float] | None = None, *, text: str | None = None) -> InitResult:
        """Start a sequence on ``image`` with the target box (xywh, original pixels) or, with
        ``text``, the box Qwen's grounding answer gives (one backend call). Raises
        :class:`TrackerInitError` on a bad box or an unusable grounding reply; a backend error
        propagates."""
        clock = _Clock()
        return self._run_sync(self._init_steps(image, box_xywh, text, clock), clock)

    async def initialize_async(
        self, image: ImageSource, box_xywh: Sequence[float] | None = None, *, text: str | None = None,
        executor: Executor | None = None,
    ) -> InitResult:
        """:meth:`initialize` without blocking the event loop (decoding and cropping run in
        ``executor``, default: the loop's thread pool)."""
        clock = _Clock()
        return await self._run_async(self._init_steps(image, box_xywh, text, clock), clock, executor)

    def run(
        self, frames: Iterable[ImageSource], box_xywh: Sequence[float] | None = None, *, text: str | None = None
    ) -> Iterator[TrackResult]:
        """The frame loop: initialise on the first of ``frames`` (with ``box_xywh``, xywh original
        pixels, or ``text``) and yield its result (status :attr:`Status.INIT`, ``reply`` = the grounding
        reply or None), then track every further frame and yield its :class:`TrackResult`. Frames are
        pulled one at a time (a generator of decoded video frames works). A later frame that is None (a gap
        in the numbering) or a file that cannot be decoded keeps the last box (:meth:`skip_frame`, status in
        :data:`SKIP_STATUSES`). ValueError when ``frames`` is empty; initialisation and fatal backend errors
        raise as in :meth:`initialize` and :meth:`track`."""
        it = iter(frames)
        try:
            first = next(it)
        except StopIteration:
            raise ValueError(f"{self.name or 'sequence'}: no frames to track") from None
        init = self.initialize(first, box_xywh, text=text)
        st = self._require_state()
        yield TrackResult(
            frame_index=0, box_xywh_orig=init.box_xywh_orig, status=Status.INIT, detail="", reply=init.reply,
            box_xyxy_model=None, search_window_xyxy_orig=st.template_window_xyxy_orig,
            search_factor=self.params.template_factor, timing=init.timing, attempts=0 if text is None else 1,
        )
        for frame in it:
            if frame is None:
                yield self.skip_frame(Status.MISSING_FRAME, f"frame {self.frame_index + 2}: no file with that number")
                continue
            try:
                yield self.track(frame)
            except ValueError as exc:  # an undecodable frame file: keep the last box and go on
                if self.pending or not isinstance(frame, (str, os.PathLike)):  # not the file's fault
                    raise
                yield self.skip_frame(*frame_fault(frame, exc))

    def _init_steps(self, image: ImageSource, box_xywh: Sequence[float] | None, text: str | None, clock: _Clock) -> _Steps:
        """Step core of initialisation (see :class:`_Work`, :class:`_Ask`)."""
        reply_text = None
        if text is not None:
            request = yield _Work(self.build_grounding_request, (image, text))
            reply = yield _Ask(request, keep_error=False)
            box_xywh = self.apply_grounding_reply(request, reply)
            reply_text = reply.text
        box = yield _Work(self._start, (image, box_xywh))
        return InitResult(box, reply_text, FrameTiming(clock.prepare_s, clock.request_s, 0.0))

    def _track_steps(self, image: ImageSource, clock: _Clock) -> _Steps:
        """Step core of one tracked frame."""
        request = yield _Work(self.build_request, (image,))
        outcome = yield _Ask(request, keep_error=True)
        return self.apply_reply(request, outcome, prepare_s=clock.prepare_s, request_s=clock.request_s)

    def _run_sync(self, steps: _Steps, clock: _Clock) -> Any:
        """Sync path: the driver with work run in place and the backend's blocking call; nothing in it
        suspends, so the coroutine finishes on its first step."""

        async def work(fn: Callable[..., Any], *args: Any) -> Any:
            return fn(*args)

        async def ask(request: FrameRequest) -> Reply:
            return self.backend.complete(request)

        coro = self._drive(steps, clock, work, ask)
        try:
            coro.send(None)
        except StopIteration as stop:
            return stop.value
        coro.close()
        raise RuntimeError("the sync tracker path suspended")  # pragma: no cover - work and ask never await

    async def _run_async(self, steps: _Steps, clock: _Clock, executor: Executor | None) -> Any:
        """Async path: the driver with work in ``executor`` and the backend's awaitable call."""
        loop = asyncio.get_running_loop()

        def work(fn: Callable[..., Any], *args: Any) -> Any:
            return loop.run_in_executor(executor, fn, *args)

        return await self._drive(steps, clock, work, self.backend.complete_async)

    @staticmethod
    async def _drive(steps: _Steps, clock: _Clock, work: Callable[..., Any], ask: Callable[[FrameRequest], Any]) -> Any:
        """The one driver of a step core: ``await work(fn, *args)`` for a :class:`_Work` step, ``await
        ask(request)`` for an :class:`_Ask` step (a :class:`BackendError` is sent back as the answer when the
        step keeps errors), each timed on ``clock``; returns the core's result."""
        value: Any = None
        while True:
            try:
                step = steps.send(value)
            except StopIteration as stop:
                return stop.value
            t0 = _timer()
            if isinstance(step, _Work):
                value = await work(step.fn, *step.args)
                clock.prepare_s += _timer() - t0
                continue
            try:
                value = await ask(step.request)
            except BackendError as exc:
                if not step.keep_error:
                    raise
                value = exc
            clock.request_s += _timer() - t0

    def _start(self, image: ImageSource, box_xywh: Sequence[float] | None) -> BoxXYWH:
        """Check the initial box, cut the template crop, reset the state; returns the box."""
        if box_xywh is None:
            raise TrackerInitError("initialize() needs box_xywh or text")
        try:
            box = BoxXYWH(*(float(v) for v in box_xywh))
        except (TypeError, ValueError):
            raise TrackerInitError(f"initial box must be 4 numbers x,y,w,h, got {box_xywh!r}") from None
        if not is_finite_box(box) or box.w <= 0 or box.h <= 0:
            raise TrackerInitError(f"initial box must be finite with positive width and height, got {tuple(box)}")
        p = self.params
        window = plan_window(box, p.template_factor, p.crop_size, check_side=False)  # side checked by the family
        decoded = load_for_window(image, window)
        crop = render_crop(decoded, window)
        template = RequestImage(crop.image, "template")
        box_xyxy_model = crop.transform.xyxy_orig_to_crop(xywh_to_xyxy(box))
        self._state = _State(box, template, box_xyxy_model, template, box_xyxy_model, crop.transform.window_xyxy_orig())
        self._pending = None
        self.counts = Counter()
        self.redetections = 0
        return box

    def build_grounding_request(self, image: ImageSource, text: str) -> FrameRequest:
        """Grounding step 1 (reads the image, no network): the frame resized to Qwen's model frame (sides multiples of 28, at most
        ``grounding_max_pixels``) and the grounding prompt."""
        if not self.backend.supports_grounding:
            raise TrackerInitError(f"backend {self.backend.label} cannot initialise from text")
        p = self.params
        decoded = load_image(image)  # once per sequence: full resolution, then one exact resize
        orig_w, orig_h = decoded.orig_size
        budget = min(p.grounding_max_pixels, p.model_max_pixels)
        mw, mh = p.family.model_input_size(orig_w, orig_h, min_pixels=p.model_min_pixels, max_pixels=budget)
        img = decoded.image
        if img.size != (mw, mh):
            img = img.resize((mw, mh), Image.Resampling.BICUBIC)
        request = FrameRequest(
            kind=KIND_GROUND,
            images=(RequestImage(img, "frame"),),
            sampling=replace(self._sampling, regex=None, max_tokens=max(self._sampling.max_tokens, 128)),
            frame_index=0,
            image_size=(orig_w, orig_h),
            sequence=self.name,
            grounding_text=text,
            model_scale=(mw / orig_w, mh / orig_h),
            family=p.family,
        )
        self.backend.prepare(request)
        return request

    def apply_grounding_reply(self, request: FrameRequest, reply: Reply) -> BoxXYWH:
        """Grounding step 2 (no I/O): the grounding reply as a box in original pixels (clipped to the image);
        :class:`TrackerInitError` when it has none."""
        parsed = parse_reply(reply.text)
        if not parsed.ok:
            raise TrackerInitError(f"{self.name or 'sequence'}: grounding reply has no box ({parsed.reason}): {reply.text[:200]!r}")
        w, h = request.image_size
        box_model = request.family.decode_xyxy(parsed.box_xyxy_model, request.model_size)
        box = clip_xyxy(request.model_to_orig_xyxy(box_model), w, h)
        if area_xyxy(box) <= 0:
            raise TrackerInitError(f"{self.name or 'sequence'}: grounding box is empty or off the image: {reply.text[:200]!r}")
        return xyxy_to_xywh(box)

    # ------------------------------------------------------------------ tracking
    def track(self, image: ImageSource) -> TrackResult:
        """Track the target into ``image`` (the next frame). Always returns a box; raises only
        on a fatal backend error (the server rejects every request) or a bad image."""
        clock = _Clock()
        return self._run_sync(self._track_steps(image, clock), clock)

    async def track_async(self, image: ImageSource, *, executor: Executor | None = None) -> TrackResult:
        """:meth:`track` for an event loop driving many trackers: decoding, cropping and encoding
        run in ``executor`` (default: the loop's thread pool), the request is awaited."""
        clock = _Clock()
        return await self._run_async(self._track_steps(image, clock), clock, executor)

    @property
    def pending(self) -> bool:
        """Whether a request built by :meth:`build_request` still waits for :meth:`apply_reply`."""
        return self._pending is not None

    def skip_frame(self, reason: Status, detail: str = "") -> TrackResult:
        """A frame that cannot be tracked for a data reason (``reason`` in :data:`SKIP_STATUSES`: a missing
        or undecodable file): no request is made, the last accepted box is kept as this frame's box and the
        frame is counted under ``reason`` in :attr:`counts`, like any fallback; the next search crop widens
        as after a failed answer."""
        reason = Status(reason)
        if reason not in SKIP_STATUSES:
            raise ValueError(f"skip_frame: {reason!r} is not a skip reason ({', '.join(SKIP_STATUSES)})")
        st = self._require_state()
        if self._pending is not None:
            raise RuntimeError(f"{self.name or 'tracker'}: a request is pending; apply its reply first")
        factor = self.params.search_factor_after(st.failures)
        st.frame_index += 1
        st.failures += 1
        self.counts[reason] += 1
        log.debug("%s frame %d: %s (%s)", self.name or "sequence", st.frame_index, reason, detail)
        return TrackResult(st.frame_index, st.box_xywh_orig, reason, detail, None, None, BoxXYXY(0, 0, 0, 0), factor,
                           FrameTiming(), attempts=0)

    def build_request(self, image: ImageSource, *, prepare: bool = True) -> FrameRequest:
        """Step 1 (reads the image, no network): decode ``image`` (reduced JPEG decode when the crop needs less), cut the
        search crop around the last box with the current (possibly widened) factor, and build the
        request; the backend's :meth:`~r1track.backends.Backend.prepare` (encoding) runs here too,
        unless ``prepare=False`` (the reply is already known, as when a run is replayed). Exactly one
        request may be pending per tracker: call :meth:`apply_reply` before the next."""
        st = self._require_state()
        if self._pending is not None:
            raise RuntimeError(f"{self.name or 'tracker'}: a request is pending; apply its reply first")
        p = self.params
        factor = p.search_factor_after(st.failures)
        redetect = 0 < p.redetect_after <= st.failures
        if redetect:  # the whole frame: one square, letterboxed crop
            decoded = load_image(image)
            window = full_frame_window(decoded.orig_size, p.redetect_crop_size)
        else:
            window = plan_window(st.box_xywh_orig, factor, p.crop_size, check_side=False)  # checked in TrackerParams
            decoded = load_for_window(image, window)
        crop = render_crop(decoded, window)
        search = RequestImage(crop.image, "search")
        prior = crop.transform.xyxy_orig_to_crop(xywh_to_xyxy(st.box_xywh_orig))
        if p.memory:
            images = (st.template, st.memory, search)
            boxes = (st.template_box_xyxy_model, st.memory_box_xyxy_model)
            version = p.memory_prompt_version
        else:
            images = (st.template, search)
            boxes = (st.template_box_xyxy_model,)
            version = p.prompt_version
        request = FrameRequest(
            kind=KIND_TRACK,
            images=images,
            sampling=self._sampling,
            frame_index=st.frame_index + 1,
            image_size=decoded.orig_size,
            sequence=self.name,
            prompt_version=version,
            think=p.think,
            think_layout=p.think_layout,
            boxes_xyxy_model=boxes,
            search_transform=crop.transform,
            prior_box_xyxy_model=prior,
            family=p.family,
            redetect=redetect,
        )
        if prepare:
            self.backend.prepare(request)
        self._pending = request
        return request

    def apply_reply(
        self, request: FrameRequest, reply: Reply | BackendError, *, prepare_s: float = 0.0, request_s: float = 0.0
    ) -> TrackResult:
        """Step 3 (no I/O): read the reply (or the backend's error), run the sanity checks, update the
        state and return the frame's result. A fatal :class:`BackendError` is re-raised (after the
        request is released, so the tracker stays usable)."""
        self._require_state()
        if request is not self._pending:
            raise RuntimeError(f"{self.name or 'tracker'}: reply for a request that is not pending")
        self._pending = None
        t0 = _timer()
        if isinstance(reply, BackendError):
            if reply.fatal:
                raise reply
            return self._finish(request, Status.BACKEND_ERROR, f"{reply.kind}: {reply}", None, None, t0,
                                prepare_s, request_s, reply.attempts, faults=reply.faults)
        status, detail, box_model, box_orig = self._check(request, reply.text)
        return self._finish(request, status, detail, reply.text, box_model, t0, prepare_s, request_s, reply.attempts,
                            box_orig, faults=reply.faults)

    def _check(self, request: FrameRequest, text: str) -> tuple[Status, str, BoxXYXY | None, BoxXYXY | None]:
        """(status, detail, answer box in the crop, accepted box in the original frame)."""
        p = self.params
        parsed = parse_reply(text)
        if parsed.absent:
            return Status.ABSENT, "the model answered that the target is not visible", None, None
        if not parsed.ok:
            return Status.NO_BOX, parsed.reason, None, None
        box_model = request.family.decode_xyxy(parsed.box_xyxy_model, request.model_size)  # answer -> crop pixels
        if p.think and p.require_think_format and not parsed.think_format_ok:
            return Status.BAD_FORMAT, "not <think>..</think><answer>..</answer>", box_model, None
        mw, mh = request.model_size
        inside = clip_xyxy(box_model, mw, mh)
        if inside.x2 - inside.x1 < p.min_box_px or inside.y2 - inside.y1 < p.min_box_px:
            what = "outside the crop" if area_xyxy(box_model) > 0 and area_xyxy(inside) == 0 else "degenerate"
            status = Status.OUTSIDE_CROP if what == "outside the crop" else Status.EMPTY_BOX
            return status, f"box {tuple(box_model)} is {what}", box_model, None
        share = area_xyxy(inside) / area_xyxy(box_model)
        if share < p.min_inside_fraction:
            return Status.OUTSIDE_CROP, f"only {share:.0%} of the box is inside the crop", box_model, None
        img_w, img_h = request.image_size
        box_orig = clip_xyxy(request.model_to_orig_xyxy(inside), img_w, img_h)
        if area_xyxy(box_orig) <= 0:
            return Status.OUTSIDE_IMAGE, "box lies in the padding outside the image", box_model, None
        prev = self._require_state().box_xywh_orig
        ratio = math.sqrt(area_xyxy(box_orig) / (prev.w * prev.h))
        if not (1.0 / p.max_scale_change <= ratio <= p.max_scale_change):
            return Status.SCALE_JUMP, f"size changed x{ratio:.2f} (limit x{p.max_scale_change:g})", box_model, None
        return Status.OK, "", box_model, box_orig

    def _finish(
        self, request: FrameRequest, status: Status, detail: str, reply: str | None, box_model: BoxXYXY | None,
        t0: float, prepare_s: float, request_s: float, attempts: int, box_orig: BoxXYXY | None = None,
        faults: dict[str, int] | None = None,
    ) -> TrackResult:
        st = self._require_state()
        p = self.params
        factor = p.search_factor_after(st.failures)
        st.frame_index = request.frame_index
        if status == Status.OK and box_orig is not None:
            st.box_xywh_orig = xyxy_to_xywh(box_orig)
            st.failures = 0
            st.good_answers += 1
            self.redetections += int(request.redetect)
            if p.memory and st.good_answers % p.memory_update_every == 0:
                search = request.images[-1]
                st.memory = RequestImage(search.image, "memory", search.cache)  # same pixels, same cached encodings
                w, h = request.model_size
                st.memory_box_xyxy_model = clip_xyxy(box_model, w, h)  # type: ignore[arg-type]
        else:
            st.failures += 1
            log.debug("%s frame %d: %s (%s)", self.name or "sequence", request.frame_index, status, detail)
        self.counts[status] += 1
        window = request.search_transform.window_xyxy_orig() if request.search_transform else BoxXYXY(0, 0, 0, 0)
        return TrackResult(
            frame_index=request.frame_index,
            box_xywh_orig=st.box_xywh_orig,
            status=status,
            detail=detail,
            reply=reply,
            box_xyxy_model=box_model,
            search_window_xyxy_orig=window,
            search_factor=factor,
            timing=FrameTiming(prepare_s, request_s, _timer() - t0),
            attempts=attempts,
            faults=dict(faults or {}),
            redetect=request.redetect,
        )


def full_frame_window(image_size: tuple[int, int], out_side: int) -> CropWindow:
    """The re-detection window: a square of the frame's longer side covering the whole ``image_size`` (width,
    height; original pixels), centred, so the shorter side is letterboxed with black on both ends; resized to
    ``out_side``."""
    w, h = (int(v) for v in image_size)
    side = max(w, h, 1)
    return CropWindow(x0=(w - side) // 2, y0=(h - side) // 2, side=side, out_side=out_side)
