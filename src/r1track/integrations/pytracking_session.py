"""The PyTracking adapter's work, without PyTracking: one :class:`PyTrackingSession` per tracker instance, and
the process's shared backends, counts and exit summary.

What it does and why is :mod:`r1track.integrations.pytracking`'s docstring (the entry points PyTracking calls live
there); the tracker class PyTracking instantiates, :class:`r1track.integrations.pytracking_tracker.R1Track`, is a
thin shell around a session. Every public name here is importable from :mod:`r1track.integrations.pytracking`.
"""

from __future__ import annotations

import dataclasses
import itertools
import multiprocessing
import multiprocessing.util
import os
import signal
import sys
import threading
import time
from collections import Counter
from typing import Any

from ..redact import get_logger
from ..backends import BACKENDS, Backend, BackendError, backend_names, get_backend_spec, make_backend
from ..backends.hf import TransformersOptions
from ..backends.model_lookup import Hints, ModelLookup, unknown_family_message
from ..backends.openai import DEFAULT_BASE_URL, ENV_BASE_URL, ENV_MODEL
from ..faults import FaultGuard, FaultPolicy, FaultRecord, RequestKind, SequenceStopped, format_summary
from ..tracker import FAULT_STATUSES, Status, Tracker, TrackerParams

ENV_BACKEND = "R1TRACK_BACKEND"
"""Overrides the parameter file's ``backend`` (``R1TRACK_BACKEND=vllm`` with ``R1TRACK_MODEL=<checkpoint>``: the
model in the PyTracking process, no server)."""
TRANSFORMERS_OPTIONS = tuple(f.name for f in dataclasses.fields(TransformersOptions))
"""The transformers engine's speed options, read from the parameter file when set (``params.vision_attention``,
``params.engine_inputs``, ``params.decode_cache``)."""

__all__ = [
    "ENV_BACKEND",
    "PyTrackingSession",
    "tracker_params_from",
    "backend_from",
    "fault_policy_from",
    "sequence_name",
    "TOTALS",
    "RECORD",
    "HINTS",
    "model_lookup",
    "summary",
]

log = get_logger("r1track.pytracking")

TOTALS: Counter[str] = Counter()
"""Per process: ``sequences``, ``frames``, ``faults``, ``fatal``, ``stopped`` and each fallback status."""
RECORD = FaultRecord()
"""Per process: requests (the model lookup and frames), attempts, retries, faults by kind, fallbacks by reason."""

HINTS = Hints(url="params.server_url (or R1TRACK_BASE_URL)",
              default="the parameter file's server_url, the default; R1TRACK_BASE_URL is not set",
              serverless="params.backend = 'ncc' (the classical baseline) or R1TRACK_BACKEND=ncc",
              family="params.model_family", model="params.model (or R1TRACK_MODEL)",
              time_limit="params.max_fault_seconds", choose="set")
"""How a PyTracking user changes what a message is about (the parameter file's attributes)."""

_LOOKUP: list = [0, None]  # [pid, ModelLookup]

_BACKENDS: dict[tuple, Backend] = {}
_BACKENDS_LOCK = threading.Lock()
_UNNAMED = itertools.count(1)
_SUMMARY_REGISTERED = False


def model_lookup() -> ModelLookup:
    """This process's :class:`~r1track.backends.model_lookup.ModelLookup`: each server's model listing is asked
    once per process (the first sequence that needs it asks; an answer or a failure is kept for every later
    one, so a server that does not answer costs one wait, not one per sequence). Its attempts and faults are
    counted in :data:`RECORD`. A new one in each worker process."""
    with _BACKENDS_LOCK:
        if _LOOKUP[0] != os.getpid() or _LOOKUP[1] is None:
            _LOOKUP[:] = [os.getpid(), ModelLookup(
                on_lookup=lambda url, attempts, faults: RECORD.add_request(RequestKind.LOOKUP, attempts, faults))]
        return _LOOKUP[1]


def _get(params: Any, name: str, default: Any = None) -> Any:
    return getattr(params, name, default) if params is not None else default


def tracker_params_from(params: Any, backend: Backend | None = None, *, deadline: float | None = None) -> TrackerParams:
    """A :class:`TrackerParams` from a PyTracking parameter object: every attribute named like a
    TrackerParams field is taken, the rest keep their defaults. A ``model_family`` left None (as the shipped
    parameter files leave it) is told by the model the way the command line tells it
    (:func:`r1track.models.resolve_family`): given the sequence's ``backend`` and a server backend whose model is
    not a registered checkpoint, the server's ``/v1/models`` listing (the path vLLM loaded, then the served name;
    asked once per process through :func:`model_lookup`, giving up at ``deadline``), else ``$R1TRACK_MODEL`` or
    ``params.model`` (a registered checkpoint, a LoRA adapter by its base model, a folder's config, the name). A
    server whose model nothing tells is refused (:class:`r1track.models.UnknownModelFamily`, naming
    ``params.model_family``): a guess would send it crops and read its answers in another model's coordinates.
    So is an in-process engine's checkpoint that does not tell. Without ``backend`` (reading a parameter file, no
    server asked) and for ``ncc`` the default is qwen2.5-vl. Set ``params.model_family`` to choose."""
    from ..models import DEFAULT_FAMILY, UnknownModelFamily, resolve_family
    from ..presets import find_checkpoint

    values = {f.name: getattr(params, f.name) for f in dataclasses.fields(TrackerParams) if hasattr(params, f.name)}
    if "model_family" in values and values["model_family"] is None:
        model = os.environ.get(ENV_MODEL) or _get(params, "model") or None
        spec = BACKENDS.get(backend.name) if backend is not None else None  # None: not a registered backend
        if spec is not None and spec.needs_server and not find_checkpoint(model):
            url = getattr(backend, "base_url", backend.label)
            listing = backend.model_listing(deadline)
            try:
                values["model_family"] = resolve_family(model=model, listing=listing).family.name
            except UnknownModelFamily:
                raise UnknownModelFamily(unknown_family_message(url, model, listing, HINTS)) from None
        else:  # an in-process engine answers too: its checkpoint must tell (as on the command line)
            engine = spec is not None and spec.in_process
            try:
                values["model_family"] = resolve_family(model=model, default=None if engine else DEFAULT_FAMILY,
                                                        choose=f"{HINTS.choose} {HINTS.family}").family.name
            except UnknownModelFamily as exc:
                raise UnknownModelFamily(f"{backend.name}: {exc}") from None
    return TrackerParams(**values)


def backend_from(params: Any) -> Backend:
    """The process's shared backend for these parameters: ``$R1TRACK_BACKEND`` or ``params.backend``, any registered backend
    that needs no ground truth (``openai`` default, ``ncc`` the classical baseline, ``transformers`` and
    ``vllm`` in process); for a server backend the URL and model come from ``R1TRACK_BASE_URL`` /
    ``R1TRACK_MODEL`` when set, else ``params.server_url`` / ``params.model`` (None: the server's first
    model); an in-process engine loads ``R1TRACK_MODEL`` or ``params.model`` (a checkpoint folder or hub id)
    with ``params.device``, ``dtype``, ``batch_size`` (transformers also :data:`TRANSFORMERS_OPTIONS`; vLLM's
    ``max_model_len``, ``gpu_memory_utilization``,
    ``tensor_parallel_size``, ``enforce_eager``) when set. PyTracking asks frame by frame, so an engine answers
    one request per call here; ``--threads N`` loads one engine per worker process."""
    kind = os.environ.get(ENV_BACKEND) or _get(params, "backend", "openai") or "openai"
    allowed = backend_names(ground_truth=False)
    if kind not in allowed:
        raise ValueError(f"r1track PyTracking plugin: backend must be one of {', '.join(allowed)}, got {kind!r}")
    spec = get_backend_spec(kind)
    if spec.needs_server:
        url = os.environ.get(ENV_BASE_URL) or _get(params, "server_url") or None
        model = os.environ.get(ENV_MODEL) or _get(params, "model") or None
        options = {"base_url": url, "model": model}
        for name in ("timeout_s", "connect_timeout_s", "retries", "backoff_s", "jpeg_quality"):
            if _get(params, name) is not None:
                options[name] = _get(params, name)
    elif spec.in_process:
        options = {"model": os.environ.get(ENV_MODEL) or _get(params, "model") or None}
        names = ("device", "dtype", "batch_size", *TRANSFORMERS_OPTIONS) if kind == "transformers" else (
            "dtype", "batch_size", "max_model_len", "gpu_memory_utilization", "tensor_parallel_size", "enforce_eager")
        for name in names:
            if _get(params, name) is not None:
                options[name] = _get(params, name)
        if kind == "vllm":
            options["max_images"] = 3 if _get(params, "memory") else 2
    else:
        options = {}
    key = (os.getpid(), kind, tuple(sorted(options.items())))
    lookup = model_lookup() if spec.needs_server else None
    with _BACKENDS_LOCK:
        backend = _BACKENDS.get(key)
        if backend is None:
            backend = _BACKENDS[key] = make_backend(kind, **options, **({"lookup": lookup} if lookup else {}))
    return backend


def sequence_name(info: dict | None) -> str:
    """The sequence's name: ``info['sequence_name']`` / ``info['seq_name']`` when given, else the
    ``seq.name`` of PyTracking's ``Tracker._track_sequence(tracker, seq, init_info)`` found on the
    call stack, else ``sequence-N``."""
    for key in ("sequence_name", "seq_name"):
        if info and isinstance(info.get(key), str):
            return info[key]
    frame = sys._getframe(1)
    for _ in range(12):
        if frame is None:
            break
        seq = frame.f_locals.get("seq")
        name = getattr(seq, "name", None)
        if isinstance(name, str) and name:
            return name
        frame = frame.f_back
    return f"sequence-{next(_UNNAMED)}"


def fault_policy_from(params: Any) -> FaultPolicy:
    """``max_consecutive_faults`` / ``max_fault_seconds`` of the parameter object (defaults otherwise)."""
    d = FaultPolicy()
    return FaultPolicy(_get(params, "max_consecutive_faults", None) or d.max_consecutive_faults,
                       _get(params, "max_fault_seconds", None) or d.max_fault_seconds)


def summary() -> str:
    """This process's summary: sequences, stopped ones and errors, then :func:`r1track.faults.format_summary`."""
    return (f"r1track (pid {os.getpid()}): {TOTALS['sequences']} sequence(s), {TOTALS['frames']} frame(s) tracked, "
            f"{TOTALS['stopped']} stopped for want of replies (no result files), {TOTALS['fatal']} other error(s)\n"
            + format_summary(RECORD))


_SUMMARY_STATE = 0  # 0: not logged, 1: being logged (at exit or on SIGTERM), 2: logged


def _log_summary() -> None:
    global _SUMMARY_STATE
    if TOTALS["sequences"] and _SUMMARY_STATE == 0:
        _SUMMARY_STATE = 1
        log.warning("%s", summary())
        _SUMMARY_STATE = 2


def _on_sigterm(signum: int, frame: Any) -> None:  # pragma: no cover - a Pool worker being terminated
    if _SUMMARY_STATE == 1:  # SIGTERM arrived while the exit-time summary was being written: the process is
        return  # already ending; let that write finish rather than kill it half-way
    _log_summary()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _register_summary() -> None:
    """Log the summary when this process ends (see the module docstring); once per process."""
    global _SUMMARY_REGISTERED
    if _SUMMARY_REGISTERED:
        return
    _SUMMARY_REGISTERED = True
    multiprocessing.util.Finalize(None, _log_summary, exitpriority=100)
    if multiprocessing.parent_process() is not None and threading.current_thread() is threading.main_thread():
        try:
            if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
                signal.signal(signal.SIGTERM, _on_sigterm)
        except (ValueError, OSError):  # pragma: no cover
            pass


def _no_server(backend: Backend) -> str:
    """The cause first, for a server backend: no reply from its URL (saying when it is the parameter file's
    default, how to give another or to run without a server)."""
    url = getattr(backend, "base_url", None)
    if url is None:
        return ""
    default = url == DEFAULT_BASE_URL and not os.environ.get(ENV_BASE_URL)
    origin = f" ({HINTS.default})" if default else ""
    return (f"no reply from the server at {url}{origin} (give another with {HINTS.url}, or run without a model "
            f"server: {HINTS.serverless}): ")


class PyTrackingSession:
    """One PyTracking tracker instance's state. ``params``: the PyTracking parameter object."""

    def __init__(self, params: Any) -> None:
        self.params = params
        self.name = ""
        self.tracker: Tracker | None = None
        self.guard: FaultGuard | None = None
        self.counts: Counter[str] = Counter()

    def initialize(self, image: Any, info: dict) -> dict:
        self.name = sequence_name(info)
        box = info["init_bbox"]
        if isinstance(box, dict):  # multi-object dict reached a single-object tracker
            raise ValueError(f"r1track: {self.name}: init_bbox is a per-object dict; use multiobj_mode = 'parallel'")
        try:
            backend = backend_from(self.params)
            self.guard = FaultGuard(fault_policy_from(self.params), getattr(backend, "base_url", backend.label))
            params = self._tracker_params(backend, self.guard)
            self.tracker = Tracker(backend, params, name=self.name)
            result = self.tracker.initialize(image, [float(v) for v in box])
        except SequenceStopped:
            raise
        except Exception as exc:
            TOTALS["fatal"] += 1
            log.error("r1track: %s: initialisation failed: %s", self.name, exc)
            raise
        TOTALS["sequences"] += 1
        _register_summary()
        return {"target_bbox": [float(v) for v in result.box_xywh_orig]}

    def _tracker_params(self, backend: Backend, guard: FaultGuard) -> TrackerParams:
        """:func:`tracker_params_from` with the sequence's backend. The model family may have to be asked of the
        server: a failed listing is asked again, as a frame without a reply would be, until the fault policy's
        bound (frames in a row, seconds) is reached; then the sequence stops. A definite answer (a refusal, no
        model listed) is an error at once, as for a frame."""
        failures = 0
        while True:
            try:
                return tracker_params_from(self.params, backend, deadline=guard.deadline())
            except BackendError as exc:
                if exc.fatal:
                    raise
                failures += 1
                if failures >= guard.policy.max_consecutive_faults or time.monotonic() >= guard.deadline():
                    self._stop_before_the_first_frame(backend, guard, exc)

    def _stop_before_the_first_frame(self, backend: Backend, guard: FaultGuard, exc: BackendError) -> None:
        """No reply to the model listing the family needed, within the time bound: the sequence stops as for
        frames without replies (counted as stopped, no result files); a silent server is asked once per process
        (:func:`model_lookup` keeps the silence), so the next sequences stop at once."""
        TOTALS["stopped"] += 1
        log.error("r1track: %s STOPPED before its first frame (the model family is asked of the server), no result "
                  "for this sequence: %s%s", self.name, _no_server(backend), exc)
        raise SequenceStopped(str(exc), where=getattr(backend, "base_url", backend.label), frames=0,
                              seconds=guard.policy.max_fault_seconds) from None

    def track(self, image: Any, info: dict | None = None) -> dict:
        """The next frame's box; raises :class:`SequenceStopped` when the server gave no reply for too
        long (PyTracking then writes no result for the sequence), and on fatal errors."""
        if self.tracker is None or self.guard is None:
            raise RuntimeError("r1track: track() before initialize()")
        try:
            result = self.tracker.track(image, deadline=self.guard.deadline)  # the time bound holds in flight too
        except BackendError as exc:  # fatal: the server rejects the requests themselves
            TOTALS["fatal"] += 1
            log.error("r1track: %s frame %d: %s", self.name, self.tracker.frame_index + 1, exc)
            raise
        except Exception as exc:
            TOTALS["fatal"] += 1
            log.error("r1track: %s frame %d: %s: %s", self.name, self.tracker.frame_index + 1, type(exc).__name__, exc)
            raise
        TOTALS["frames"] += 1
        RECORD.add_frame(result)
        self.counts[result.status] += 1
        if result.status == Status.ABSENT:
            TOTALS[result.status] += 1
        elif result.status != Status.OK:
            TOTALS["faults"] += 1
            TOTALS[result.status] += 1
            log.warning("r1track: %s frame %d: %s (%s); kept the last box [fallback %d in this sequence]",
                        self.name, result.frame_index, result.status, result.detail, self.faults)
        try:
            self.guard.observe(result)
        except SequenceStopped as exc:
            TOTALS["stopped"] += 1
            log.error("r1track: %s STOPPED at frame %d, no result for this sequence: %s%s", self.name,
                      result.frame_index, _no_server(self.tracker.backend), exc)
            raise
        out = {"target_bbox": [float(v) for v in result.box_xywh_orig], "r1track_status": result.status}
        if self.tracker.params.visibility_aware:  # PyTracking saves it as {seq}_object_presence_scores.txt
            out["object_presence_score"] = result.object_presence_score
        return out

    @property
    def faults(self) -> int:
        return sum(n for s, n in self.counts.items() if s in FAULT_STATUSES)
