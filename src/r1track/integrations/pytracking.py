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
  sequence and per process (:data:`TOTALS`), and logs fatal errors with the sequence name before
  PyTracking swallows them;
* returns full-precision boxes (PyTracking's own writer truncates them; ``r1track eval`` does not).
"""

from __future__ import annotations

import atexit
import dataclasses
import itertools
import logging
import os
import sys
import threading
from collections import Counter
from typing import Any

from ..backends import Backend, BackendError, backend_names, get_backend_spec, make_backend
from ..backends.openai import ENV_BASE_URL, ENV_MODEL
from ..tracker import FAMILY_DEFAULTED, FAULT_STATUSES, Status, Tracker, TrackerParams

__all__ = [
    "PyTrackingSession",
    "get_tracker_class",
    "preset_parameters",
    "tracker_params_from",
    "backend_from",
    "sequence_name",
    "TOTALS",
]

log = logging.getLogger("r1track.pytracking")

TOTALS: Counter[str] = Counter()
"""Per process: ``sequences``, ``frames``, ``faults``, ``fatal`` and each fallback status."""

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
    """The process's shared backend for these parameters: ``params.backend``, any registered backend
    that needs no ground truth (``openai`` default, ``ncc`` the classical baseline); for a server backend
    the URL and model come from ``R1TRACK_BASE_URL`` / ``R1TRACK_MODEL`` when set, else
    ``params.server_url`` / ``params.model`` (None: the server's first model)."""
    kind = _get(params, "backend", "openai") or "openai"
    allowed = backend_names(ground_truth=False)
    if kind not in allowed:
        raise ValueError(f"r1track PyTracking plugin: backend must be one of {', '.join(allowed)}, got {kind!r}")
    if get_backend_spec(kind).needs_server:
        url = os.environ.get(ENV_BASE_URL) or _get(params, "server_url") or None
        model = os.environ.get(ENV_MODEL) or _get(params, "model") or None
        options = {"base_url": url, "model": model}
        for name in ("timeout_s", "connect_timeout_s", "retries", "backoff_s", "jpeg_quality"):
            if _get(params, name) is not None:
                options[name] = _get(params, name)
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
    environment overrides it), ``model`` (None: the server's first model), ``timeout_s`` 120, ``retries`` 3
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


def _log_summary() -> None:  # pragma: no cover - runs at interpreter exit
    if TOTALS["sequences"]:
        log.warning(
            "r1track: %d sequence(s), %d frame(s) tracked, %d fallback frame(s) %s, %d fatal error(s)",
            TOTALS["sequences"], TOTALS["frames"], TOTALS["faults"],
            dict((k, v) for k, v in TOTALS.items() if k not in ("sequences", "frames", "faults", "fatal")),
            TOTALS["fatal"],
        )


class PyTrackingSession:
    """One PyTracking tracker instance's state. ``params``: the PyTracking parameter object."""

    def __init__(self, params: Any) -> None:
        self.params = params
        self.name = ""
        self.tracker: Tracker | None = None
        self.counts: Counter[str] = Counter()

    def initialize(self, image: Any, info: dict) -> dict:
        global _SUMMARY_REGISTERED
        self.name = sequence_name(info)
        box = info["init_bbox"]
        if isinstance(box, dict):  # multi-object dict reached a single-object tracker
            raise ValueError(f"r1track: {self.name}: init_bbox is a per-object dict; use multiobj_mode = 'parallel'")
        try:
            self.tracker = Tracker(backend_from(self.params), tracker_params_from(self.params), name=self.name)
            result = self.tracker.initialize(image, [float(v) for v in box])
        except Exception as exc:
            TOTALS["fatal"] += 1
            log.error("r1track: %s: initialisation failed: %s", self.name, exc)
            raise
        TOTALS["sequences"] += 1
        if not _SUMMARY_REGISTERED:
            _SUMMARY_REGISTERED = True
            atexit.register(_log_summary)
        return {"target_bbox": [float(v) for v in result.box_xywh_orig]}

    def track(self, image: Any, info: dict | None = None) -> dict:
        if self.tracker is None:
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
        self.counts[result.status] += 1
        if result.status == Status.ABSENT:
            TOTALS[result.status] += 1
        elif result.status != Status.OK:
            TOTALS["faults"] += 1
            TOTALS[result.status] += 1
            log.warning("r1track: %s frame %d: %s (%s); kept the last box [fallback %d in this sequence]",
                        self.name, result.frame_index, result.status, result.detail, self.faults)
        out = {"target_bbox": [float(v) for v in result.box_xywh_orig], "r1track_status": result.status}
        if self.tracker.params.visibility_aware:  # PyTracking saves it as {seq}_object_presence_scores.txt
            out["object_presence_score"] = result.object_presence_score
        return out

    @property
    def faults(self) -> int:
        return sum(n for s, n in self.counts.items() if s in FAULT_STATUSES)
