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
  naming the server, so PyTracking writes no result file for it instead of one that repeats the last box. The
  time bound holds inside every request too (each carries the guard's deadline), so a server that accepts and
  never answers costs a sequence ``max_fault_seconds``, not retries x ``timeout_s``;
* asks each server's model listing (the model name, when ``model`` is None) once per process
  (:func:`~r1track.integrations.pytracking_session.model_lookup`): a server that stayed silent until the time
  bound is not asked again by the next sequences, which stop at once;
* logs the per-process summary (requests, retries, faults by kind, fallbacks by reason, stopped
  sequences) when the process ends, in every worker: at a normal exit (``multiprocessing``'s
  finalizers, which its workers run too) and when ``Pool.terminate`` sends a worker ``SIGTERM``
  (a handler installed only in ``multiprocessing`` children whose ``SIGTERM`` is still the default);
* returns full-precision boxes (PyTracking's own writer truncates them; ``r1track eval`` does not).

Modules: this one holds the entry points (:func:`get_tracker_class`, :func:`preset_parameters`); the session, the
shared backends and the counts are :mod:`r1track.integrations.pytracking_session` (its names importable from
here); the ``BaseTracker`` subclass is :mod:`r1track.integrations.pytracking_tracker`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..faults import FaultPolicy
from ..models import DEFAULT_FAMILY
from ..tracker import FAMILY_DEFAULTED, TrackerParams
from . import pytracking_session
from .pytracking_session import (  # noqa: F401 - the session's names are importable from here
    _BACKENDS,
    ENV_BACKEND,
    RECORD,
    TOTALS,
    PyTrackingSession,
    backend_from,
    fault_policy_from,
    log,
    sequence_name,
    summary,
    tracker_params_from,
)

__all__ = ["get_tracker_class", "preset_parameters", *pytracking_session.__all__]


def preset_parameters(name: str) -> Any:
    """A PyTracking parameter object (``pytracking.utils.TrackerParams``) holding the preset ``name``:
    every :class:`TrackerParams` field (those the model family fills -- crop size, pixel bounds -- as None
    where the preset keeps the family's values, so ``params.model_family = "qwen3-vl"`` alone switches them;
    ``model_family`` itself None, so the model tells it: :func:`tracker_params_from`),
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
    if preset.params.model_family == DEFAULT_FAMILY:
        params.model_family = None  # told by R1TRACK_MODEL / params.model, as on the command line (tracker_params_from)
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
