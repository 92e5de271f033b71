"""The tracker: follow one target frame by frame with a model behind a :class:`~r1track.backends.Backend`.

Framework-free; PyTracking, ``r1track eval`` and scripts all drive this class::

    tracker = Tracker(backend, TrackerParams())
    tracker.initialize(first_frame, box_xywh=(x, y, w, h))       # or text="the red car"
    for frame in frames[1:]:
        result = tracker.track(frame)                             # result.box_xywh_orig, result.status

Images may be RGB uint8 numpy arrays (H x W x 3), PIL images (opened lazily or loaded) or paths: the same
frame gives bit-identical crops in each form (full-resolution decoding, ``TrackerParams.decode = "exact"``, the
default; ``"fast"`` decodes JPEG files and lazy JPEG images at a reduced DCT scale when the crop needs less,
see :class:`r1track.crop.DecodeMode`).

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

The policies around the loop have modules of their own: where to search (:mod:`r1track.window`: the
template and search windows, widening, whole-frame re-detection), which images a request carries
(:mod:`r1track.memory`), when an answer is accepted (:mod:`r1track.answer_checks`), what a frame's outcome is
(:mod:`r1track.frame_outcome`) and every setting (:mod:`r1track.tracker_params`); the names are importable from
here too.

Failure policy (the reference reused the previous crop's box coordinates inside the new crop,
which misplaces the target whenever the crop moved): an unusable reply — no box, a box mostly
outside the crop, a degenerate box, an implausible scale change, a transport fault — keeps the last
accepted box *in original-frame pixels*; the next search crop is centred on it and widened by
``widen_step`` per consecutive failure up to ``max_search_factor``; the first good answer resets the
factor. Every fallback frame is counted by reason in :attr:`Tracker.counts`. That is the default window policy,
``last-box``; the others (``window_policy``, :mod:`r1track.window`) move or grow the window with a motion model
(:mod:`r1track.motion`) that the tracker tells every frame's outcome, and keep the widening.

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
import os
import time
from collections import Counter
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import Any, Callable, Generator, Iterable, Iterator, Sequence, Union

from PIL import Image

from .redact import get_logger
from .answer_checks import check_answer, grounding_box
from .backends.base import KIND_GROUND, KIND_TRACK, Backend, BackendError, FrameRequest, Reply, RequestImage
from .boxes import BoxXYWH, BoxXYXY, is_finite_box, xywh_to_xyxy, xyxy_to_xywh
from .crop import load_for_window, load_image, render_crop
from .frame_outcome import (  # noqa: F401 - PRESENCE_* are importable from here too
    FAULT_STATUSES,
    PRESENCE_ABSENT,
    PRESENCE_FALLBACK,
    PRESENCE_OK,
    SKIP_STATUSES,
    UNANSWERED_STATUSES,
    FrameTiming,
    InitResult,
    Status,
    TrackerInitError,
    TrackResult,
    frame_fault,
    presence_score,
)
from .images import ImageSource
from .memory import prompt_images, refreshed_memory
from .motion import MotionModel
from .tracker_params import FAMILY_DEFAULTED, TrackerParams
from .window import full_frame_window, motion_model, search_window, template_window

__all__ = [
    "Deadline",
    "TrackerParams",
    "FrameTiming",
    "TrackResult",
    "InitResult",
    "Tracker",
    "TrackerInitError",
    "Status",
    "FAULT_STATUSES",
    "SKIP_STATUSES",
    "UNANSWERED_STATUSES",
    "frame_fault",
    "presence_score",
    "full_frame_window",
    "FAMILY_DEFAULTED",
]

log = get_logger(__name__)


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
    motion: MotionModel | None = None  # the window policy's motion model (None for last-box)
    image_size: tuple[int, int] | None = None  # the last decoded frame's (width, height)
    search_factor: float = 0.0  # the factor of the pending request's window


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

Deadline = Union[float, Callable[[], "float | None"], None]
"""When a request must be answered: ``time.monotonic()`` seconds, a function giving them for each request (a
:meth:`r1track.faults.FaultGuard.deadline`, which moves with every reply), or None (no limit beyond the
backend's retries). Put on each request as :attr:`FrameRequest.deadline <r1track.backends.FrameRequest.deadline>`."""


def _at(deadline: Deadline) -> float | None:
    return deadline() if callable(deadline) else deadline


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
    def initialize(self, image: ImageSource, box_xywh: Sequence[float] | None = None, *, text: str | None = None,
                   deadline: Deadline = None) -> InitResult:
        """Start a sequence on ``image`` with the target box (xywh, original pixels) or, with
        ``text``, the box Qwen's grounding answer gives (one backend call, answered by ``deadline``). Raises
        :class:`TrackerInitError` on a bad box or an unusable grounding reply; a backend error
        propagates."""
        clock = _Clock()
        return self._run_sync(self._init_steps(image, box_xywh, text, clock, deadline), clock)

    async def initialize_async(
        self, image: ImageSource, box_xywh: Sequence[float] | None = None, *, text: str | None = None,
        executor: Executor | None = None, deadline: Deadline = None,
    ) -> InitResult:
        """:meth:`initialize` without blocking the event loop (decoding and cropping run in
        ``executor``, default: the loop's thread pool)."""
        clock = _Clock()
        return await self._run_async(self._init_steps(image, box_xywh, text, clock, deadline), clock, executor)

    def run(
        self, frames: Iterable[ImageSource], box_xywh: Sequence[float] | None = None, *, text: str | None = None,
        deadline: Deadline = None,
    ) -> Iterator[TrackResult]:
        """The frame loop: initialise on the first of ``frames`` (with ``box_xywh``, xywh original
        pixels, or ``text``) and yield its result (status :attr:`Status.INIT`, ``reply`` = the grounding
        reply or None), then track every further frame and yield its :class:`TrackResult`. Frames are
        pulled one at a time (a generator of decoded video frames works). A later frame that is None (a gap
        in the numbering) or a file that cannot be decoded keeps the last box (:meth:`skip_frame`, status in
        :data:`SKIP_STATUSES`). ValueError when ``frames`` is empty; initialisation and fatal backend errors
        raise as in :meth:`initialize` and :meth:`track`. ``deadline``: see :data:`Deadline` (a function is asked
        before each request)."""
        it = iter(frames)
        try:
            first = next(it)
        except StopIteration:
            raise ValueError(f"{self.name or 'sequence'}: no frames to track") from None
        init = self.initialize(first, box_xywh, text=text, deadline=deadline)
        st = self._require_state()
        yield TrackResult(
            frame_index=0, box_xywh_orig=init.box_xywh_orig, status=Status.INIT, detail="", reply=init.reply,
            box_xyxy_model=None, search_window_xyxy_orig=st.template_window_xyxy_orig,
            search_factor=self.params.template_factor, timing=init.timing, attempts=init.attempts,
            faults=dict(init.faults), search_crop_side=self.params.crop_size,
        )
        for frame in it:
            if frame is None:
                yield self.skip_frame(Status.MISSING_FRAME, f"frame {self.frame_index + 2}: no file with that number")
                continue
            try:
                yield self.track(frame, deadline=deadline)
            except ValueError as exc:  # an undecodable frame file: keep the last box and go on
                if self.pending or not isinstance(frame, (str, os.PathLike)):  # not the file's fault
                    raise
                yield self.skip_frame(*frame_fault(frame, exc))

    def _init_steps(self, image: ImageSource, box_xywh: Sequence[float] | None, text: str | None, clock: _Clock,
                    deadline: Deadline = None) -> _Steps:
        """Step core of initialisation (see :class:`_Work`, :class:`_Ask`)."""
        reply_text, attempts, faults = None, 0, {}
        if text is not None:
            request = yield _Work(self.build_grounding_request, (image, text))
            request.deadline = _at(deadline)
            reply = yield _Ask(request, keep_error=False)
            attempts, faults = reply.attempts, dict(reply.faults)
            try:
                box_xywh = self.apply_grounding_reply(request, reply)
            except TrackerInitError as exc:  # answered, without a usable box: the request still counts
                exc.attempts, exc.faults = attempts, faults
                raise
            reply_text = reply.text
        box = yield _Work(self._start, (image, box_xywh))
        return InitResult(box, reply_text, FrameTiming(clock.prepare_s, clock.request_s, 0.0), attempts, faults)

    def _track_steps(self, image: ImageSource, clock: _Clock, deadline: Deadline = None) -> _Steps:
        """Step core of one tracked frame."""
        request = yield _Work(self.build_request, (image,))
        request.deadline = _at(deadline)
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
        window = template_window(box, self.params)  # side checked by the family
        decoded = load_for_window(image, window, decode=self.params.decode)
        crop = render_crop(decoded, window)
        template = RequestImage(crop.image, "template")
        box_xyxy_model = crop.transform.xyxy_orig_to_crop(xywh_to_xyxy(box))
        self._state = _State(box, template, box_xyxy_model, template, box_xyxy_model, crop.transform.window_xyxy_orig())
        self._state.motion = motion_model(self.params.window_policy)
        self._state.image_size = decoded.orig_size
        if self._state.motion is not None:
            self._state.motion.start(box)
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
        if reply.empty_reason:
            raise TrackerInitError(f"{self.name or 'sequence'}: the grounding request got no text back: {reply.empty_reason}")
        return grounding_box(request, reply.text, self.name)

    # ------------------------------------------------------------------ tracking
    def track(self, image: ImageSource, *, deadline: Deadline = None) -> TrackResult:
        """Track the target into ``image`` (the next frame), the backend answering by ``deadline`` (see
        :data:`Deadline`; past it the frame is a ``backend-error`` fallback). Always returns a box; raises only
        on a fatal backend error (the server rejects every request) or a bad image."""
        clock = _Clock()
        return self._run_sync(self._track_steps(image, clock, deadline), clock)

    async def track_async(self, image: ImageSource, *, executor: Executor | None = None,
                          deadline: Deadline = None) -> TrackResult:
        """:meth:`track` for an event loop driving many trackers: decoding, cropping and encoding
        run in ``executor`` (default: the loop's thread pool), the request is awaited."""
        clock = _Clock()
        return await self._run_async(self._track_steps(image, clock, deadline), clock, executor)

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
        if st.motion is not None:
            st.motion.observe(None)
        self.counts[reason] += 1
        log.debug("%s frame %d: %s (%s)", self.name or "sequence", st.frame_index, reason, detail)
        return TrackResult(st.frame_index, st.box_xywh_orig, reason, detail, None, None, BoxXYXY(0, 0, 0, 0), factor,
                           FrameTiming(), attempts=0)

    def build_request(self, image: ImageSource, *, prepare: bool = True) -> FrameRequest:
        """Step 1 (reads the image, no network): decode ``image`` (as ``params.decode`` says), cut the
        search crop around the last box with the current (possibly widened) factor, and build the
        request; the backend's :meth:`~r1track.backends.Backend.prepare` (encoding) runs here too,
        unless ``prepare=False`` (the reply is already known, as when a run is replayed). Exactly one
        request may be pending per tracker: call :meth:`apply_reply` before the next."""
        st = self._require_state()
        if self._pending is not None:
            raise RuntimeError(f"{self.name or 'tracker'}: a request is pending; apply its reply first")
        p = self.params
        prediction = st.motion.predict() if st.motion is not None else None
        planned = search_window(image, st.box_xywh_orig, st.failures, p, prediction, st.image_size)
        decoded, redetect = planned.decoded, planned.redetect
        crop = render_crop(decoded, planned.window)
        search = RequestImage(crop.image, "search")
        prior = crop.transform.xyxy_orig_to_crop(xywh_to_xyxy(st.box_xywh_orig))
        images, boxes, version = prompt_images(p, st.template, st.template_box_xyxy_model, st.memory,
                                               st.memory_box_xyxy_model, search)
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
        st.search_factor, st.image_size = planned.factor, decoded.orig_size
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
        if reply.empty_reason:  # the server answered with no text at all: its fault, not the model's answer
            return self._finish(request, Status.NO_CONTENT, reply.empty_reason, None, None, t0, prepare_s, request_s,
                                reply.attempts, faults=reply.faults)
        status, detail, box_model, box_orig = check_answer(request, reply.text, self.params, self._require_state().box_xywh_orig)
        return self._finish(request, status, detail, reply.text, box_model, t0, prepare_s, request_s, reply.attempts,
                            box_orig, faults=reply.faults)

    def _finish(
        self, request: FrameRequest, status: Status, detail: str, reply: str | None, box_model: BoxXYXY | None,
        t0: float, prepare_s: float, request_s: float, attempts: int, box_orig: BoxXYXY | None = None,
        faults: dict[str, int] | None = None,
    ) -> TrackResult:
        st = self._require_state()
        p = self.params
        factor = st.search_factor  # the factor of this request's window
        st.frame_index = request.frame_index
        accepted = xyxy_to_xywh(box_orig) if status == Status.OK and box_orig is not None else None
        if st.motion is not None:
            st.motion.observe(accepted)
        if accepted is not None:
            st.box_xywh_orig = accepted
            st.failures = 0
            st.good_answers += 1
            self.redetections += int(request.redetect)
            memory = refreshed_memory(p, st.good_answers, request, box_model)  # type: ignore[arg-type]
            if memory is not None:
                st.memory, st.memory_box_xyxy_model = memory
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
            search_crop_side=request.search_transform.out_side if request.search_transform else 0,
        )

