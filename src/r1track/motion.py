"""Motion models of the search-window policies: where the target will be in the next frame, and how sure that is.

The tracker's window policy (:mod:`r1track.window`) asks a motion model for a :class:`MotionPrediction` before
each frame and tells it each frame's outcome afterwards. Coordinates are original pixels, the target's *centre*
(``cx``, ``cy``) and *size* ``s = sqrt(w * h)``; time is counted in frames (the tracker's frame steps: with a
frame skip, one step spans several camera frames). A model never sees pixels, never changes the tracker's
boxes and never raises on odd input: a non-finite or empty box is treated as "nothing seen" and every
prediction is finite.

Calls, one per frame, in order: :meth:`start` with the initial box, then for each tracked frame
:meth:`predict` (for the window) and :meth:`observe` with the accepted box, or None when the frame kept the
last box (a fallback, an absent answer, a missing or unreadable frame). :meth:`predict` gives None only when
the model was started without a usable box (the window then stays on the last box).

Two models:

* :class:`VelocityModel` (policies ``constant-velocity`` and ``adaptive``): the centre's velocity, smoothed
  exponentially. An accepted box ``gap`` frames after the previous one gives the measured velocity
  ``(c - c_prev) / gap``; the estimate is ``v = SMOOTHING * measured + (1 - SMOOTHING) * v`` (the first
  measurement after a start or a reset is taken as it is). For ``constant-velocity``, a measurement further than
  :data:`VELOCITY_JUMP` target sizes per frame from the estimate (a jump to a distractor, a sudden turn) resets
  ``v`` to zero instead.
  Prediction for the next frame: the last accepted centre plus ``v`` times the frames since it; expected
  displacement per axis ``|v| * frames since``. For ``constant-velocity`` a frame without an
  accepted box sets ``v`` to zero: the next window is centred on the last box again, as ``last-box`` does, until
  two accepted boxes measure the motion anew.
* :class:`KalmanModel` (policies ``kalman`` and ``kalman-adaptive``): a linear Kalman filter, described in
  its docstring: constant velocity in centre and log-size, noise proportional to the target's size, a gate
  that resets the filter on an implausible observation (a jump to a distractor, a re-detection far away).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

__all__ = [
    "MotionPrediction",
    "MotionModel",
    "VelocityModel",
    "KalmanModel",
    "SMOOTHING",
    "VELOCITY_JUMP",
    "KALMAN_MEASUREMENT_STD",
    "KALMAN_ACCELERATION_STD",
    "KALMAN_INITIAL_VELOCITY_STD",
    "KALMAN_LOG_SIZE_STD",
    "KALMAN_LOG_SIZE_ACCELERATION_STD",
    "KALMAN_INITIAL_LOG_SIZE_RATE_STD",
    "KALMAN_SPREAD_SIGMAS",
    "KALMAN_GATE",
]

SMOOTHING = 0.5
"""Weight of the newest measured velocity in :class:`VelocityModel`'s estimate."""
VELOCITY_JUMP = 1.0
"""A measured velocity further than this x the target's size (per frame step, per axis) from the estimate resets
:class:`VelocityModel`'s estimate to zero: a jump to a distractor (or a sudden turn) teaches no velocity."""


@dataclass(frozen=True)
class MotionPrediction:
    """Where the target should be in the next frame: centre (``cx``, ``cy``) and size ``size`` (``sqrt(w*h)``),
    original pixels; ``spread``: how far (original pixels, per axis) the target may be from that centre -- the
    expected displacement since the last accepted box (:class:`VelocityModel`), or the larger of
    :data:`KALMAN_SPREAD_SIGMAS` standard deviations of the predicted centre and the predicted speed
    (:class:`KalmanModel`). All finite, ``size`` > 0, ``spread`` >= 0."""

    cx: float
    cy: float
    size: float
    spread: float


class MotionModel(Protocol):
    """What the window policy needs of a motion model (see the module docstring for the call order)."""

    def start(self, box_xywh_orig: Sequence[float]) -> None: ...

    def observe(self, box_xywh_orig: Sequence[float] | None) -> None: ...

    def predict(self) -> MotionPrediction | None: ...


def _centre_size(box_xywh_orig: Sequence[float] | None) -> tuple[float, float, float] | None:
    """(cx, cy, sqrt(w*h)) of a usable box (finite, positive size, finite centre), else None."""
    if box_xywh_orig is None:
        return None
    try:
        x, y, w, h = (float(v) for v in box_xywh_orig)
    except (TypeError, ValueError):
        return None
    cx, cy, s = x + 0.5 * w, y + 0.5 * h, math.sqrt(w * h) if w > 0 and h > 0 else 0.0
    if not (math.isfinite(cx) and math.isfinite(cy) and math.isfinite(s) and s > 0):
        return None
    return cx, cy, s


class VelocityModel:
    """Smoothed centre velocity (see the module docstring). ``reset_on_miss``: a frame without an accepted box
    sets the velocity to zero; ``reset_on_jump``: so does an outlying measurement (:data:`VELOCITY_JUMP`). Both
    on for ``constant-velocity``, which moves the window; both off for ``adaptive``, which only reads the expected
    displacement to size the window (a sudden turn or a miss is then a reason to look wider, not narrower)."""

    def __init__(self, *, reset_on_miss: bool = True, reset_on_jump: bool = True, smoothing: float = SMOOTHING) -> None:
        if not 0 < smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1], got {smoothing}")
        self.reset_on_miss = reset_on_miss
        self.reset_on_jump = reset_on_jump
        self.smoothing = smoothing
        self._last: tuple[float, float, float] | None = None
        self._v = (0.0, 0.0)
        self._measured = False  # v holds a measurement since the last start or reset
        self._since = 0  # frames since the last accepted box

    def start(self, box_xywh_orig: Sequence[float]) -> None:
        self._last = _centre_size(box_xywh_orig)
        self._v, self._measured, self._since = (0.0, 0.0), False, 0

    def observe(self, box_xywh_orig: Sequence[float] | None) -> None:
        self._since += 1
        seen = _centre_size(box_xywh_orig)
        if seen is None:
            if self.reset_on_miss:
                self._v, self._measured = (0.0, 0.0), False
            return
        if self._last is not None:
            gap = self._since
            mx, my = (seen[0] - self._last[0]) / gap, (seen[1] - self._last[1]) / gap
            jump = VELOCITY_JUMP * seen[2]
            if self.reset_on_jump and self._measured and (abs(mx - self._v[0]) > jump or abs(my - self._v[1]) > jump):
                self._v, self._measured = (0.0, 0.0), False  # an outlier: measure anew from this box on
            elif math.isfinite(mx) and math.isfinite(my):
                if self._measured:
                    a = self.smoothing
                    mx, my = a * mx + (1 - a) * self._v[0], a * my + (1 - a) * self._v[1]
                self._v, self._measured = (mx, my), True
        self._last, self._since = seen, 0

    @property
    def velocity(self) -> tuple[float, float]:
        """The smoothed velocity (original pixels per frame)."""
        return self._v

    def predict(self) -> MotionPrediction | None:
        if self._last is None:
            return None
        cx, cy, s = self._last
        k = self._since + 1  # frames from the last accepted box to the one to search
        dx, dy = self._v[0] * k, self._v[1] * k
        return MotionPrediction(cx + dx, cy + dy, s, max(abs(dx), abs(dy)))


# Kalman filter noise, in units of the target's size s (original pixels) per frame step.
KALMAN_MEASUREMENT_STD = 0.05
"""Standard deviation of an accepted box's centre, x ``s`` (the model's answers are a few pixels off)."""
KALMAN_ACCELERATION_STD = 0.25
"""Standard deviation of the centre's change of velocity per frame step, x ``s`` (white-noise acceleration)."""
KALMAN_INITIAL_VELOCITY_STD = 1.0
"""Standard deviation of the unknown velocity at the start or after a reset, x ``s`` per frame step."""
KALMAN_LOG_SIZE_STD = 0.05
"""Standard deviation of an accepted box's log-size (about 5 % of the size)."""
KALMAN_LOG_SIZE_ACCELERATION_STD = 0.01
"""Standard deviation of the log-size's change of rate per frame step."""
KALMAN_INITIAL_LOG_SIZE_RATE_STD = 0.02
"""Standard deviation of the unknown log-size rate at the start or after a reset."""
KALMAN_SPREAD_SIGMAS = 2.0
""":meth:`KalmanModel.predict`'s ``spread``: this many standard deviations of the predicted centre."""
KALMAN_GATE = 16.27
"""Reset when an observation's squared Mahalanobis distance to the prediction exceeds this (the chi-square
99.9 % point for 3 degrees of freedom)."""


class KalmanModel:
    """A small linear Kalman filter on the target's centre and size.

    * **State** ``x = (cx, cy, log s, vx, vy, vlog s)``: the centre (original pixels), the log of the size
      ``s = sqrt(w*h)`` (a log keeps the size positive whatever the filter does) and their rates per frame step.
    * **Transition** (one frame step, constant velocity): ``cx += vx``, ``cy += vy``, ``log s += vlog s``; rates
      unchanged. ``F = [[I3, I3], [0, I3]]``.
    * **Process noise**: white-noise acceleration per axis, ``Q_axis = q * [[1/4, 1/2], [1/2, 1]]`` (position,
      rate), with ``q = (KALMAN_ACCELERATION_STD * s)^2`` for the centre -- motion scales with the target's size
      -- and ``q = KALMAN_LOG_SIZE_ACCELERATION_STD^2`` for the log-size; ``s`` is the filter's current size.
    * **Measurement**: an accepted box gives ``z = (cx, cy, log s)`` (``H = [I3, 0]``) with noise
      ``R = diag((KALMAN_MEASUREMENT_STD * s)^2 x 2, KALMAN_LOG_SIZE_STD^2)``, ``s`` the box's size. The
      update uses Joseph's form, which keeps the covariance symmetric and positive.
    * **Frames without an accepted box** (fallbacks, absent answers, missing frames): prediction only, so the
      centre follows the last velocity and the uncertainty grows.
    * **Reset rules**: :meth:`start` and every reset put the state at the box with zero rates and covariance
      ``diag((KALMAN_MEASUREMENT_STD s)^2 x 2, KALMAN_LOG_SIZE_STD^2, (KALMAN_INITIAL_VELOCITY_STD s)^2 x 2,
      KALMAN_INITIAL_LOG_SIZE_RATE_STD^2)``. An observation whose squared Mahalanobis distance to the prediction
      exceeds :data:`KALMAN_GATE` resets the filter there (a jump to a distractor or a re-detection far away
      teaches no velocity), and so does any non-finite result (none is expected; the filter stays finite
      whatever it is fed).

    :meth:`predict` gives the predicted centre and size for the next frame and ``spread`` = the larger of
    :data:`KALMAN_SPREAD_SIGMAS` x the larger standard deviation of the predicted centre (x or y) and the
    predicted speed (the larger of ``|vx|``, ``|vy|``): the filter's noise is Gaussian, a target's turns are not,
    and a sudden turn puts the target off the prediction by about its speed.
    """

    def __init__(self) -> None:
        self._x: np.ndarray | None = None
        self._p = np.zeros((6, 6))
        self.resets = 0
        """Resets by the gate or a non-finite result since :meth:`start`."""

    @staticmethod
    def _f() -> np.ndarray:
        f = np.eye(6)
        f[0, 3] = f[1, 4] = f[2, 5] = 1.0
        return f

    def _reset(self, cx: float, cy: float, s: float) -> None:
        self._x = np.array([cx, cy, math.log(s), 0.0, 0.0, 0.0])
        p, v = KALMAN_MEASUREMENT_STD * s, KALMAN_INITIAL_VELOCITY_STD * s
        self._p = np.diag([p * p, p * p, KALMAN_LOG_SIZE_STD ** 2, v * v, v * v, KALMAN_INITIAL_LOG_SIZE_RATE_STD ** 2])

    def start(self, box_xywh_orig: Sequence[float]) -> None:
        seen = _centre_size(box_xywh_orig)
        self._x = None
        self.resets = 0
        if seen is not None:
            self._reset(*seen)

    def _predicted(self) -> tuple[np.ndarray, np.ndarray]:
        """The state and covariance one frame step ahead."""
        assert self._x is not None
        f = self._f()
        s = math.exp(min(self._x[2], 700.0))
        q = np.zeros((6, 6))
        for pos, rate, std in ((0, 3, KALMAN_ACCELERATION_STD * s), (1, 4, KALMAN_ACCELERATION_STD * s),
                               (2, 5, KALMAN_LOG_SIZE_ACCELERATION_STD)):
            var = std * std
            q[pos, pos], q[pos, rate], q[rate, pos], q[rate, rate] = var / 4, var / 2, var / 2, var
        return f @ self._x, f @ self._p @ f.T + q

    def observe(self, box_xywh_orig: Sequence[float] | None) -> None:
        with np.errstate(all="ignore"):  # overflow on absurd boxes ends in the finiteness checks below
            self._observe(_centre_size(box_xywh_orig))

    def _observe(self, seen: tuple[float, float, float] | None) -> None:
        if self._x is None:  # started without a usable box: the first usable one starts it
            if seen is not None:
                self._reset(*seen)
            return
        x, p = self._predicted()
        if seen is not None:
            cx, cy, s = seen
            z = np.array([cx, cy, math.log(s)])
            h = np.hstack([np.eye(3), np.zeros((3, 3))])
            r = np.diag([(KALMAN_MEASUREMENT_STD * s) ** 2] * 2 + [KALMAN_LOG_SIZE_STD ** 2])
            y = z - h @ x
            sm = h @ p @ h.T + r
            try:
                d2 = float(y @ np.linalg.solve(sm, y))
            except np.linalg.LinAlgError:
                d2 = math.inf
            if not (d2 <= KALMAN_GATE):  # also NaN: an implausible observation starts the filter anew there
                self.resets += 1
                self._reset(cx, cy, s)
                return
            k = np.linalg.solve(sm, h @ p).T  # P H^T S^-1 (S and P symmetric)
            ikh = np.eye(6) - k @ h
            x = x + k @ y
            p = ikh @ p @ ikh.T + k @ r @ k.T
        if np.isfinite(x).all() and np.isfinite(p).all():
            self._x, self._p = x, p
        elif seen is not None:
            self.resets += 1
            self._reset(*seen)
        # else: keep the last finite state (cannot happen with finite inputs; a guard, not a rule)

    def predict(self) -> MotionPrediction | None:
        if self._x is None:
            return None
        with np.errstate(all="ignore"):
            x, p = self._predicted()
        size = math.exp(min(float(x[2]), 700.0))
        spread = max(KALMAN_SPREAD_SIGMAS * math.sqrt(max(float(p[0, 0]), float(p[1, 1]), 0.0)),
                     abs(float(x[3])), abs(float(x[4])))
        if not (math.isfinite(x[0]) and math.isfinite(x[1]) and math.isfinite(size) and size > 0 and math.isfinite(spread)):
            cx, cy, ls = (float(v) for v in self._x[:3])
            return MotionPrediction(cx, cy, math.exp(min(ls, 700.0)), 0.0)
        return MotionPrediction(float(x[0]), float(x[1]), size, spread)

    @property
    def state(self) -> np.ndarray | None:
        """A copy of the state ``(cx, cy, log s, vx, vy, vlog s)`` (None before a usable start)."""
        return None if self._x is None else self._x.copy()
