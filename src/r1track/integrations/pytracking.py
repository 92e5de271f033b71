"""The PyTracking adapter: the tracker class and the parameter files of the plugin
(``plugins/pytracking/``, one-line re-exports of :func:`get_tracker_class` and :func:`preset_parameters`).
PyTracking is imported only when PyTracking itself asks for the tracker class or a parameter set.

PyTracking builds a new tracker object per sequence (in spawned worker processes with
``--threads``), calls ``initialize(image, info)`` with an RGB uint8 array and
``info['init_bbox'] = [x, y, w, h]``, then ``track(image, info)`` per frame, expecting
``{'target_bbox': [x, y, w, h]}``. It swallows exceptions (the sequence just gets no result files)
and truncates saved boxes to integers. So this adapter:

* builds the backend in ``initialize``, never at import or construction, and shares it within the
  process (one persistent HTTP client per server and process);
* parameter files are presets (:mod:`r1track.presets`): ``default``, ``v0``, ``think``, ``memory``,
  ``ncc``, each ``parameters()`` returning :func:`preset_parameters` of its name;
* reads r1track settings from the PyTracking parameter object (any :class:`TrackerParams` field by
  name, plus ``backend``, ``server_url``, ``model``, ``timeout_s``, ``retries``), with the
  environment (``R1TRACK_BASE_URL``, ``R1TRACK_MODEL``, ``R1TRACK_API_KEY``) overriding the
  parameter file;
* logs every fallback frame as a warning with the sequence name, frame and reason, counts them per
  sequence and per process (:data:`TOTALS`, :data:`RECORD`), and logs fatal errors with the sequence
  name before PyTracking swallows them;
* stops a sequence whose server gives no reply (:mod:`r1track.faults`; ``max_consecutive_faults`` and
  ``max_fault_seconds`` from the parameter file): ``track`` raises :class:`~r1track.faults.SequenceStopped`
  naming the server, so PyTracking writes no result file for it instead of one that repeats the last box;
* logs the per-process summary (requests, retries, faults by kind, fallbacks by reason, stopped
  sequences) when the process ends, in every worker: at a normal exit (``multiprocessing``'s
  finalizers, which its workers run too) and when ``Pool.terminate`` sends a worker ``SIGTERM``
  (a handler installed only in ``multiprocessing`` children whose ``SIGTERM`` is still the default);
* returns full-precision boxes (PyTracking's own writer truncates them; ``r1track eval`` does not).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import multiprocessing
import multiprocessing.util
import os
import signal
import sys
import threading
from collections import Counter
from typing import Any

from ..backends import Backend, BackendError, backend_names, get_backend_spec, make_backend
from ..backends.openai import ENV_BASE_URL, ENV_MODEL
from ..faults import FaultGuard, FaultPolicy, FaultRecord, SequenceStopped, format_summary
from ..tracker import FAMILY_DEFAULTED, FAULT_STATUSES, Status, Tracker, TrackerParams

ENV_BACKEND = "R1TRACK_BACKEND"
"""Overrides the parameter file's ``backend`` (``R1TRACK_BACKEND=vllm`` with ``R1TRACK_MODEL=<checkpoint>``: the
model in the PyTracking process, no server)."""

__all__ = [
    "ENV_BACKEND",
    "PyTrackingSession",
    "get_tracker_class",
    "preset_parameters",
    "tracker_params_from",
    "backend_from",
    "fault_policy_from",
    "sequence_name",
    "TOTALS",
    "RECORD",
    "summary",
]

log = logging.getLogger("r1track.pytracking")

TOTALS: Counter[str] = Counter()
"""Per process: ``sequences``, ``frames``, ``faults``, ``fatal``, ``stopped`` and each fallback status."""
RECORD = FaultRecord()
"""Per process: requests, attempts, retries, faults by kind, fallbacks by reason."""

_BACKENDS: dict[tuple, Backend] = {}
_BACKENDS_LOCK = threading.Lock()
_UNNAMED = itertools.count(1)
_SUMMARY_REGISTERED = False


def _get(params: Any, name: str, default: Any = None) -> Any:
    return getattr(params, name, default) if params is not None else default


def tracker_params_from(params: Any) -> TrackerParams:
    """A :class:`TrackerParams` from a PyTracking parameter object: every attribute named like a
    TrackerParams field is taken, the rest keep their defaults."""
    values = {f.name: getattr(params, f.name) for f in dataclasses.fields(TrackerParams) if hasattr(params, f.name)}
    return TrackerParams(**values)


def backend_from(params: Any) -> Backend:
    """The process's shared backend for these parameters: ``$R1TRACK_BACKEND`` or ``params.backend``, any registered backend
    that needs no ground truth (``openai`` default, ``ncc`` the classical baseline, ``transformers`` and
    ``vllm`` in process); for a server backend the URL and model come from ``R1TRACK_BASE_URL`` /
    ``R1TRACK_MODEL`` when set, else ``params.server_url`` / ``params.model`` (None: the server's first
    model); an in-process engine loads ``R1TRACK_MODEL`` or ``params.model`` (a checkpoint folder or hub id)
    with ``params.device``, ``dtype``, ``batch_size`` (and vLLM's ``max_model_len``, ``gpu_memory_utilization``,
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
        names = ("device", "dtype", "batch_size") if kind == "transformers" else (
            "dtype", "batch_size", "max_model_len", "gpu_memory_utilization", "tensor_parallel_size", "enforce_eager")
        for name in names:
            if _get(params, name) is not None:
                options[name] = _get(params, name)
        if kind == "vllm":
            options["max_images"] = 3 if _get(params, "memory") else 2
    else:
        options = {}
    key = (os.getpid(), kind, tuple(sorted(options.items())))
    with _BACKENDS_LOCK:
        backend = _BACKENDS.get(key)
        if backend is None:
            backend = _BACKENDS[key] = make_backend(kind, **options)
    return backend


def preset_parameters(name: str) -> Any:
    """A PyTracking parameter object (``pytracking.utils.TrackerParams``) holding the preset ``name``:
    every :class:`TrackerParams` field (those the model family fills -- crop size, pixel bounds -- as None
    where the preset keeps the family's values, so ``params.model_family = "qwen3-vl"`` alone switches them),
    ``backend``, ``server_url`` (``http://127.0.0.1:8000/v1``; the
    environment overrides it), ``model`` (None: the server's first model), ``timeout_s`` 120, ``retries`` 3,
    the dead-server limits ``max_consecutive_faults`` / ``max_fault_seconds`` (:class:`~r1track.faults.FaultPolicy`)
    and ``multiobj_mode = "parallel"``. ValueError on an unknown preset."""
    from pytracking.utils import TrackerParams as PyTrackingParams

    from ..presets import get_preset

    preset = get_preset(name)
    params = PyTrackingParams()
    family_values = {f.name: getattr(TrackerParams(model_family=preset.params.model_family), f.name)
                     for f in dataclasses.fields(TrackerParams) if f.name in FAMILY_DEFAULTED}
    for f in dataclasses.fields(TrackerParams):
        value = getattr(preset.params, f.name)
        # the model family's own values stay None, so setting params.model_family alone switches them too
        setattr(params, f.name, None if family_values.get(f.name, object()) == value else value)
    params.backend = preset.backend
    params.server_url = "http://127.0.0.1:8000/v1"
    params.model = None
    params.timeout_s = 120.0
    params.retries = 3
    policy = FaultPolicy()  # a server that gives no reply this long stops the sequence (it raises, no result file)
    params.max_consecutive_faults = policy.max_consecutive_faults
    params.max_fault_seconds = policy.max_fault_seconds
    params.multiobj_mode = "parallel"
    return params


def get_tracker_class() -> type:
    """PyTracking's entry point: the ``BaseTracker`` subclass, :class:`r1track.integrations.pytracking_tracker.R1Track`
    (a module of its own, imported here, so importing r1track never imports PyTracking; defined at module level,
    so PyTracking's ``--threads`` workers can unpickle it)."""
    from .pytracking_tracker import R1Track

    return R1Track


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
            self.tracker = Tracker(backend, tracker_params_from(self.params), name=self.name)
            self.guard = FaultGuard(fault_policy_from(self.params), getattr(backend, "base_url", backend.label))
            result = self.tracker.initialize(image, [float(v) for v in box])
        except Exception as exc:
            TOTALS["fatal"] += 1
            log.error("r1track: %s: initialisation failed: %s", self.name, exc)
            raise
        TOTALS["sequences"] += 1
        _register_summary()
        return {"target_bbox": [float(v) for v in result.box_xywh_orig]}

    def track(self, image: Any, info: dict | None = None) -> dict:
        """The next frame's box; raises :class:`SequenceStopped` when the server gave no reply for too
        long (PyTracking then writes no result for the sequence), and on fatal errors."""
        if self.tracker is None or self.guard is None:
            raise RuntimeError("r1track: track() before initialize()")
        try:
            result = self.tracker.track(image)
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
            log.error("r1track: %s STOPPED at frame %d, no result for this sequence: %s", self.name,
                      result.frame_index, exc)
            raise
        out = {"target_bbox": [float(v) for v in result.box_xywh_orig], "r1track_status": result.status}
        if self.tracker.params.visibility_aware:  # PyTracking saves it as {seq}_object_presence_scores.txt
            out["object_presence_score"] = result.object_presence_score
        return out

    @property
    def faults(self) -> int:
        return sum(n for s, n in self.counts.items() if s in FAULT_STATUSES)
