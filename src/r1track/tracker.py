"""The tracker: follow one target frame by frame with a model behind a :class:`~r1track.backends.Backend`.

Framework-free; PyTracking, ``r1track eval`` and scripts all drive this class::

    tracker = Tracker(backend, TrackerParams())
    tracker.initialize(first_frame, box_xywh=(x, y, w, h))       # or text="the red car"
    for frame in frames[1:]:
        result = tracker.track(frame)                             # result.box_xywh_orig, result.status

Images may be RGB uint8 numpy arrays (H x W x 3), PIL images (opened lazily or loaded; lazily opened
JPEGs are decoded at reduced resolution when the crop needs less) or paths.

Each frame is two pure steps around one backend call, so one event loop can drive hundreds of
trackers (:meth:`Tracker.track_async`) and the sync path (:meth:`Tracker.track`) is the same code:

1. :meth:`Tracker.build_request` — decode, cut the search crop around the last box, build the
   request (template, (memory), search, prompt);
2. the backend answers (or raises :class:`~r1track.backends.BackendError`);
3. :meth:`Tracker.apply_reply` — parse, check, map back to the original frame, update the state.

Failure policy (the reference reused the previous crop's box coordinates inside the new crop,
which misplaces the target whenever the crop moved): an unusable reply — no box, a box mostly
outside the crop, a degenerate box, an implausible scale change, a transport fault — keeps the last
accepted box *in original-frame pixels*; the next search crop is centred on it and widened by
``widen_step`` per consecutive failure up to ``max_search_factor``; the first good answer resets the
factor. Every fallback frame is counted by reason in :attr:`Tracker.counts`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from typing import Sequence

from PIL import Image

from .backends.base import KIND_GROUND, KIND_TRACK, Backend, BackendError, FrameRequest, Reply, RequestImage, Sampling
from .boxes import BoxXYWH, BoxXYXY, area_xyxy, clip_xyxy, is_finite_box, xywh_to_xyxy, xyxy_to_xywh
from .crop import ImageSource, load_for_window, load_image, plan_window, render_crop
from .parse import parse_reply
from .prompts import DEFAULT_VERSION, answer_regex, get_prompt
from .qwen import MAX_PIXELS, MIN_PIXELS, check_crop_side, model_input_size

__all__ = [
    "TrackerParams",
    "FrameTiming",
    "TrackResult",
    "InitResult",
    "Tracker",
    "TrackerInitError",
    "STATUS_OK",
    "FAULT_STATUSES",
]

log = logging.getLogger(__name__)

STATUS_OK = "ok"
STATUS_NO_BOX = "no-box"  # the reply holds no readable box (garbage, empty, cut off)
STATUS_BAD_FORMAT = "bad-format"  # think mode with require_think_format: not <think>..</think><answer>..</answer>
STATUS_EMPTY_BOX = "empty-box"  # the box is thinner than min_box_px once clipped to the crop
STATUS_OUTSIDE_CROP = "outside-crop"  # less than min_inside_fraction of the box lies inside the crop
STATUS_OUTSIDE_IMAGE = "outside-image"  # the box lies in the crop's padding, off the image
STATUS_SCALE_JUMP = "scale-jump"  # the size changed by more than max_scale_change since the last accepted box
STATUS_BACKEND_ERROR = "backend-error"  # no reply: timeout, connection, 5xx, 429 after the backend's retries
FAULT_STATUSES = (
    STATUS_NO_BOX,
    STATUS_BAD_FORMAT,
    STATUS_EMPTY_BOX,
    STATUS_OUTSIDE_CROP,
    STATUS_OUTSIDE_IMAGE,
    STATUS_SCALE_JUMP,
    STATUS_BACKEND_ERROR,
)


@dataclass(frozen=True)
class TrackerParams:
    """Every setting of the tracker, with the reference R1-Track values as defaults.

    Prompt and model frame:

    * ``prompt_version`` = ``"r1track-v1"``: the R1-Track-100k prompt of the published 0503 checkpoints
      (``r1track prompts show`` lists all).
    * ``think`` = False: no-think mode (the published best checkpoint, R1-Track-GRPO-wo-Think-100k).
      True prepends R1-Track's think wrapper; the answer is read from ``<answer>``.
    * ``crop_size`` = 336: crop side in pixels; a multiple of 28 whose area lies in
      [``model_min_pixels``, ``model_max_pixels``] so the model sees the crop unresized.
    * ``model_min_pixels`` = 3136, ``model_max_pixels`` = 12845056: the served model's processor bounds
      (Qwen2.5-VL-3B defaults). Set them to the server's ``mm_processor_kwargs`` when those differ.
    * ``template_factor`` = 4.0, ``search_factor`` = 4.0: crop window side = ceil(sqrt(w*h) * factor)
      original pixels (reference values).

    Sampling:

    * ``temperature`` = 0.0 (greedy), ``top_p`` = 1.0, ``seed`` = None.
    * ``max_tokens`` = None: 48 without think (an answer is ~17 tokens), 1024 with think.
    * ``structured_output`` = False: with True and no think, the request carries vLLM's
      ``structured_outputs: {"regex": ...}`` forcing ``[x1,y1,x2,y2]`` (never the removed
      ``guided_regex``). Off by default because servers other than vLLM >= 0.12 may reject the field.

    Sanity checks (a failed check is a fallback frame, counted by reason):

    * ``min_inside_fraction`` = 0.5: at least this share of the answer's area inside the crop.
    * ``min_box_px`` = 1.0: the answer, clipped to the crop, is at least this wide and high (model px).
    * ``max_scale_change`` = 2.0: sqrt(area ratio) to the last accepted box within [1/x, x].
    * ``require_think_format`` = False: in think mode, also fail replies that are not exactly
      ``<think>...</think>...<answer>...</answer>`` (R1-Track's reward gate).

    Failure policy:

    * ``widen_step`` = 1.0: the search factor grows by this much per consecutive failure ...
    * ``max_search_factor`` = 8.0: ... up to this; back to ``search_factor`` on a good answer.

    Memory frame (3 images: template, last confident search crop, search):

    * ``memory`` = False; ``memory_prompt_version`` = ``"r1track-mem-v1"`` (a 3-image prompt; the
      server needs ``--limit-mm-per-prompt '{"image":3}'``); ``memory_update_every`` = 1: refresh the
      memory with every n-th good answer. Until the first good answer the template is the memory.

    Text initialisation (``initialize(image, text=...)``):

    * ``grounding_max_pixels`` = 1003520 (1280 * 28 * 28): the frame is resized to Qwen's model frame
      under this pixel budget (and ``model_max_pixels``) before it is sent.
    """

    prompt_version: str = DEFAULT_VERSION
    think: bool = False
    crop_size: int = 336
    model_min_pixels: int = MIN_PIXELS
    model_max_pixels: int = MAX_PIXELS
    template_factor: float = 4.0
    search_factor: float = 4.0
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    max_tokens: int | None = None
    structured_output: bool = False
    min_inside_fraction: float = 0.5
    min_box_px: float = 1.0
    max_scale_change: float = 2.0
    require_think_format: bool = False
    widen_step: float = 1.0
    max_search_factor: float = 8.0
    memory: bool = False
    memory_prompt_version: str = "r1track-mem-v1"
    memory_update_every: int = 1
    grounding_max_pixels: int = 1280 * 28 * 28

    def __post_init__(self) -> None:
        check_crop_side(self.crop_size, min_pixels=self.model_min_pixels, max_pixels=self.model_max_pixels)
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
    def effective_max_tokens(self) -> int:
        """``max_tokens``, or its default: 1024 with think, 48 without."""
        if self.max_tokens is not None:
            return self.max_tokens
        return 1024 if self.think else 48

    def sampling(self) -> Sampling:
        """The :class:`Sampling` every tracking request of these params carries."""
        regex = answer_regex(self.crop_size) if self.structured_output and not self.think else None
        return Sampling(self.temperature, self.top_p, self.effective_max_tokens, regex, self.seed)

    def search_factor_after(self, failures: int) -> float:
        """Search factor after ``failures`` consecutive failures (widened, capped)."""
        return min(self.search_factor + max(0, failures) * self.widen_step, self.max_search_factor)


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
    accepted box on a fallback frame). ``status``: ``"ok"`` or the fallback reason (one of
    :data:`FAULT_STATUSES`); ``detail`` says more (parser reason, backend error message).
    ``reply``: the raw reply text (None when the backend gave none). ``box_xyxy_model``: the
    answer as parsed, in the search crop's pixels (None if none). ``search_window_xyxy_orig``: the
    search crop's window in original pixels. ``search_factor``: the factor used for this frame.
    ``attempts``: HTTP attempts made. ``faults``: transport faults met by kind, retried ones included
    (from :attr:`Reply.faults <r1track.backends.Reply>` or the backend error).
    """

    frame_index: int
    box_xywh_orig: BoxXYWH
    status: str
    detail: str
    reply: str | None
    box_xyxy_model: BoxXYXY | None
    search_window_xyxy_orig: BoxXYXY
    search_factor: float
    timing: FrameTiming
    attempts: int = 1
    faults: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK


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
    frame_index: int = 0
    failures: int = 0
    good_answers: int = 0


def _timer() -> float:
    return time.perf_counter()


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
        """Number of tracked frames that fell back (any reason)."""
        return sum(n for status, n in self.counts.items() if status != STATUS_OK)

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
        if text is not None:
            t0 = _timer()
            request = self.build_grounding_request(image, text)
            t1 = _timer()
            reply = self.backend.complete(request)
            t2 = _timer()
            box = self.apply_grounding_reply(request, reply)
            return self._start(image, box, reply.text, FrameTiming(t1 - t0, t2 - t1, 0.0))
        t0 = _timer()
        return self._start(image, box_xywh, None, FrameTiming(0.0, 0.0, 0.0), t0)

    async def initialize_async(
        self, image: ImageSource, box_xywh: Sequence[float] | None = None, *, text: str | None = None,
        executor: Executor | None = None,
    ) -> InitResult:
        """:meth:`initialize` without blocking the event loop (decoding and cropping run in
        ``executor``, default: the loop's thread pool)."""
        loop = asyncio.get_running_loop()
        if text is not None:
            t0 = _timer()
            request = await loop.run_in_executor(executor, self.build_grounding_request, image, text)
            t1 = _timer()
            reply = await self.backend.complete_async(request)
            t2 = _timer()
            box = self.apply_grounding_reply(request, reply)
            timing = FrameTiming(t1 - t0, t2 - t1, 0.0)
            return await loop.run_in_executor(executor, self._start, image, box, reply.text, timing)
        return await loop.run_in_executor(executor, self._start, image, box_xywh, None, FrameTiming(), _timer())

    def _start(
        self, image: ImageSource, box_xywh: Sequence[float] | None, reply: str | None, timing: FrameTiming,
        t0: float | None = None,
    ) -> InitResult:
        if box_xywh is None:
            raise TrackerInitError("initialize() needs box_xywh or text")
        try:
            box = BoxXYWH(*(float(v) for v in box_xywh))
        except (TypeError, ValueError):
            raise TrackerInitError(f"initial box must be 4 numbers x,y,w,h, got {box_xywh!r}") from None
        if not is_finite_box(box) or box.w <= 0 or box.h <= 0:
            raise TrackerInitError(f"initial box must be finite with positive width and height, got {tuple(box)}")
        p = self.params
        window = plan_window(box, p.template_factor, p.crop_size)
        decoded = load_for_window(image, window)
        crop = render_crop(decoded, window)
        template = RequestImage(crop.image, "template")
        box_xyxy_model = crop.transform.xyxy_orig_to_crop(xywh_to_xyxy(box))
        self._state = _State(box, template, box_xyxy_model, template, box_xyxy_model)
        self._pending = None
        self.counts = Counter()
        if t0 is not None:
            timing = FrameTiming(_timer() - t0, 0.0, 0.0)
        return InitResult(box, reply, timing)

    def build_grounding_request(self, image: ImageSource, text: str) -> FrameRequest:
        """Pure step: the frame resized to Qwen's model frame (sides multiples of 28, at most
        ``grounding_max_pixels``) and the grounding prompt."""
        if not self.backend.supports_grounding:
            raise TrackerInitError(f"backend {self.backend.label} cannot initialise from text")
        p = self.params
        decoded = load_image(image)  # once per sequence: full resolution, then one exact resize
        orig_w, orig_h = decoded.orig_size
        budget = min(p.grounding_max_pixels, p.model_max_pixels)
        mw, mh = model_input_size(orig_w, orig_h, min_pixels=p.model_min_pixels, max_pixels=budget)
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
        )
        self.backend.prepare(request)
        return request

    def apply_grounding_reply(self, request: FrameRequest, reply: Reply) -> BoxXYWH:
        """Pure step: the grounding reply as a box in original pixels (clipped to the image);
        :class:`TrackerInitError` when it has none."""
        parsed = parse_reply(reply.text)
        if not parsed.ok:
            raise TrackerInitError(f"{self.name or 'sequence'}: grounding reply has no box ({parsed.reason}): {reply.text[:200]!r}")
        w, h = request.image_size
        box = clip_xyxy(request.model_to_orig_xyxy(parsed.box_xyxy_model), w, h)
        if area_xyxy(box) <= 0:
            raise TrackerInitError(f"{self.name or 'sequence'}: grounding box is empty or off the image: {reply.text[:200]!r}")
        return xyxy_to_xywh(box)

    # ------------------------------------------------------------------ tracking
    def track(self, image: ImageSource) -> TrackResult:
        """Track the target into ``image`` (the next frame). Always returns a box; raises only
        on a fatal backend error (the server rejects every request) or a bad image."""
        t0 = _timer()
        request = self.build_request(image)
        t1 = _timer()
        try:
            outcome: Reply | BackendError = self.backend.complete(request)
        except BackendError as exc:
            outcome = exc
        t2 = _timer()
        return self.apply_reply(request, outcome, prepare_s=t1 - t0, request_s=t2 - t1)

    async def track_async(self, image: ImageSource, *, executor: Executor | None = None) -> TrackResult:
        """:meth:`track` for an event loop driving many trackers: decoding, cropping and encoding
        run in ``executor`` (default: the loop's thread pool), the request is awaited."""
        loop = asyncio.get_running_loop()
        t0 = _timer()
        request = await loop.run_in_executor(executor, self.build_request, image)
        t1 = _timer()
        try:
            outcome: Reply | BackendError = await self.backend.complete_async(request)
        except BackendError as exc:
            outcome = exc
        t2 = _timer()
        return self.apply_reply(request, outcome, prepare_s=t1 - t0, request_s=t2 - t1)

    def build_request(self, image: ImageSource, *, prepare: bool = True) -> FrameRequest:
        """Pure step 1: decode ``image`` (reduced JPEG decode when the crop needs less), cut the
        search crop around the last box with the current (possibly widened) factor, and build the
        request; the backend's :meth:`~r1track.backends.Backend.prepare` (encoding) runs here too,
        unless ``prepare=False`` (the reply is already known, as when a run is replayed). Exactly one
        request may be pending per tracker: call :meth:`apply_reply` before the next."""
        st = self._require_state()
        if self._pending is not None:
            raise RuntimeError(f"{self.name or 'tracker'}: a request is pending; apply its reply first")
        p = self.params
        factor = p.search_factor_after(st.failures)
        window = plan_window(st.box_xywh_orig, factor, p.crop_size)
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
            boxes_xyxy_model=boxes,
            search_transform=crop.transform,
            prior_box_xyxy_model=prior,
        )
        if prepare:
            self.backend.prepare(request)
        self._pending = request
        return request

    def apply_reply(
        self, request: FrameRequest, reply: Reply | BackendError, *, prepare_s: float = 0.0, request_s: float = 0.0
    ) -> TrackResult:
        """Pure step 3: read the reply (or the backend's error), run the sanity checks, update the
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
            return self._finish(request, STATUS_BACKEND_ERROR, f"{reply.kind}: {reply}", None, None, t0,
                                prepare_s, request_s, reply.attempts, faults=reply.faults)
        status, detail, box_model, box_orig = self._check(request, reply.text)
        return self._finish(request, status, detail, reply.text, box_model, t0, prepare_s, request_s, reply.attempts,
                            box_orig, faults=reply.faults)

    def _check(self, request: FrameRequest, text: str) -> tuple[str, str, BoxXYXY | None, BoxXYXY | None]:
        """(status, detail, answer box in the crop, accepted box in the original frame)."""
        p = self.params
        parsed = parse_reply(text)
        if not parsed.ok:
            return STATUS_NO_BOX, parsed.reason, None, None
        box_model = parsed.box_xyxy_model
        if p.think and p.require_think_format and not parsed.think_format_ok:
            return STATUS_BAD_FORMAT, "not <think>..</think><answer>..</answer>", box_model, None
        mw, mh = request.model_size
        inside = clip_xyxy(box_model, mw, mh)
        if inside.x2 - inside.x1 < p.min_box_px or inside.y2 - inside.y1 < p.min_box_px:
            what = "outside the crop" if area_xyxy(box_model) > 0 and area_xyxy(inside) == 0 else "degenerate"
            status = STATUS_OUTSIDE_CROP if what == "outside the crop" else STATUS_EMPTY_BOX
            return status, f"box {tuple(box_model)} is {what}", box_model, None
        share = area_xyxy(inside) / area_xyxy(box_model)
        if share < p.min_inside_fraction:
            return STATUS_OUTSIDE_CROP, f"only {share:.0%} of the box is inside the crop", box_model, None
        img_w, img_h = request.image_size
        box_orig = clip_xyxy(request.model_to_orig_xyxy(inside), img_w, img_h)
        if area_xyxy(box_orig) <= 0:
            return STATUS_OUTSIDE_IMAGE, "box lies in the padding outside the image", box_model, None
        prev = self._require_state().box_xywh_orig
        ratio = math.sqrt(area_xyxy(box_orig) / (prev.w * prev.h))
        if not (1.0 / p.max_scale_change <= ratio <= p.max_scale_change):
            return STATUS_SCALE_JUMP, f"size changed x{ratio:.2f} (limit x{p.max_scale_change:g})", box_model, None
        return STATUS_OK, "", box_model, box_orig

    def _finish(
        self, request: FrameRequest, status: str, detail: str, reply: str | None, box_model: BoxXYXY | None,
        t0: float, prepare_s: float, request_s: float, attempts: int, box_orig: BoxXYXY | None = None,
        faults: dict[str, int] | None = None,
    ) -> TrackResult:
        st = self._require_state()
        p = self.params
        factor = p.search_factor_after(st.failures)
        st.frame_index = request.frame_index
        if status == STATUS_OK and box_orig is not None:
            st.box_xywh_orig = xyxy_to_xywh(box_orig)
            st.failures = 0
            st.good_answers += 1
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
        )
