"""The search-window policy: which part of the next frame the tracker crops and sends.

The window is a square of the original frame (:class:`r1track.crop.CropWindow`), resized to the model's crop
side. This module decides its place and size; :mod:`r1track.crop` cuts it and :mod:`r1track.tracker` runs the
frame loop around it.

* **Template**: centred on the initial box, side ``ceil(sqrt(w*h) * template_factor)`` original pixels.
* **Local search** (every frame while the target is followed): with the default policy ``last-box``
  (R1-Track's), centred on the last accepted box, side ``ceil(sqrt(w*h) * factor)``; the factor is
  ``search_factor``, widened by ``widen_step`` per consecutive failed, absent or skipped frame up to
  ``max_search_factor`` (:func:`widened_search_factor`), and back to ``search_factor`` with the first good answer.
  The other policies (:class:`WindowPolicy`, setting ``window_policy``) move the centre or grow the factor with a
  motion model (:mod:`r1track.motion`); see :func:`local_window`.
* **Re-detection** (``redetect_after`` = N > 0, after N consecutive failed or absent frames): the whole frame,
  one square of its longer side, centred, the shorter side letterboxed black (:func:`full_frame_window`),
  resized to ``redetect_crop_size``; until an answer is accepted again.

The defaults of the two factors (:data:`TEMPLATE_FACTOR`, :data:`SEARCH_FACTOR`, R1-Track's) live here because
the training-data builder (:mod:`r1track.data.profiles`) cuts its crops with the same factors, so training crops
look exactly like the ones the tracker sends. The settings come from any object with the fields of
:class:`WindowSettings` (:class:`r1track.tracker_params.TrackerParams` is one).

**Window policies** (:class:`WindowPolicy`). Every policy keeps the crop side (``crop_size``) and the prompt: only
the place and size of the window in the original frame change, so any checkpoint can use any policy.

* ``last-box``: the rule above (the default; byte-identical to r1track before the policies existed).
* ``constant-velocity``: centred on the last box's centre plus the smoothed velocity times the frames since that
  box (:class:`r1track.motion.VelocityModel`); a frame without an accepted box resets the velocity to zero.
* ``kalman``: centred on a Kalman filter's predicted centre, the window side from its predicted size
  (:class:`r1track.motion.KalmanModel`; it predicts through frames without an accepted box).
* ``adaptive``: centred on the last box like ``last-box``; the factor grows with the target's smoothed speed so
  that the window's half side gains the expected displacement ``spread = |v| * frames`` beyond
  :data:`ADAPTIVE_SLACK` target sizes: ``search_factor + 2 * max(0, spread - ADAPTIVE_SLACK * s) / s``, at most
  ``max_search_factor``; it shrinks back as the target slows down.
* ``kalman-adaptive``: the Kalman filter's centre, and the factor grown the same way by the filter's
  uncertainty: ``spread`` = the larger of 2 standard deviations of the predicted centre and the predicted speed
  (a sudden turn puts the target off the prediction by about its speed).

In every policy the failure widening stays (the factor is at least :func:`widened_search_factor`'s); the
predicted centre is kept inside the image (the last frame's size) and at most :data:`MAX_SHIFT` half-sides away
from the last box's centre per axis (so the last box's centre is always inside the window); after more than
:data:`MAX_COAST` frames in a row without an accepted box the window goes back to the last box's centre; the
predicted size stays within :data:`SIZE_RANGE` of the last box's. Whole-frame re-detection is the same for all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Protocol, Sequence

from .crop import CropWindow, DecodedImage, centred_window, load_for_window, load_image, plan_window
from .images import ImageSource
from .motion import KalmanModel, MotionModel, MotionPrediction, VelocityModel

__all__ = [
    "TEMPLATE_FACTOR",
    "SEARCH_FACTOR",
    "MAX_SHIFT",
    "MAX_COAST",
    "ADAPTIVE_SLACK",
    "SIZE_RANGE",
    "WindowPolicy",
    "WINDOW_POLICIES",
    "check_window_policy",
    "motion_model",
    "local_window",
    "WindowSettings",
    "SearchWindow",
    "widened_search_factor",
    "redetecting",
    "template_window",
    "search_window",
    "full_frame_window",
]

TEMPLATE_FACTOR = 4.0
"""Default template window factor (R1-Track's ``template_area_factor``)."""
SEARCH_FACTOR = 4.0
"""Default search window factor (R1-Track's ``search_area_factor``)."""


MAX_SHIFT = 0.5
"""A motion policy moves the window's centre at most this share of the window's half side away from the last
box's centre, per axis: the last box's centre stays well inside the window whatever the motion model says."""
MAX_COAST = 1
"""A motion policy follows its prediction through at most this many frames in a row without an accepted box (a
single miss); after more, the window goes back to the last box (widened as usual), since the prediction has
drifted on an old velocity."""
ADAPTIVE_SLACK = 0.25
"""The adaptive policies grow the window's half side by the motion model's ``spread`` less this x the target's
size: a slow target is searched with the ``search_factor`` window, which has room for it, and keeps its size in
the crop (``benchmarks/window_policies.py`` measured 0, 0.25 and 0.5: 0.25 keeps most of the gain on fast targets
and most of the view on slow ones)."""
SIZE_RANGE = 2.0
"""A predicted size is kept within [1/x, x] of the last box's size."""


class WindowPolicy(str, Enum):
    """Where the local search window goes (see the module docstring). A ``str``: it compares equal to its value."""

    LAST_BOX = "last-box"
    CONSTANT_VELOCITY = "constant-velocity"
    KALMAN = "kalman"
    ADAPTIVE = "adaptive"
    KALMAN_ADAPTIVE = "kalman-adaptive"

    __str__ = str.__str__
    __format__ = str.__format__


WINDOW_POLICIES = tuple(p.value for p in WindowPolicy)
"""The policy names, the default first."""


def check_window_policy(name: str) -> WindowPolicy:
    """The :class:`WindowPolicy` called ``name``; ValueError naming the known ones otherwise."""
    try:
        return WindowPolicy(name)
    except ValueError:
        raise ValueError(f"unknown window_policy {name!r}; known: {', '.join(WINDOW_POLICIES)}") from None


def motion_model(policy: str) -> MotionModel | None:
    """A fresh motion model for ``policy`` (None for ``last-box``, which needs none)."""
    p = check_window_policy(policy)
    if p is WindowPolicy.LAST_BOX:
        return None
    if p in (WindowPolicy.KALMAN, WindowPolicy.KALMAN_ADAPTIVE):
        return KalmanModel()
    moves = p is WindowPolicy.CONSTANT_VELOCITY
    return VelocityModel(reset_on_miss=moves, reset_on_jump=moves)


class WindowSettings(Protocol):
    """The settings the window policy reads (fields of :class:`~r1track.tracker_params.TrackerParams`)."""

    window_policy: str
    template_factor: float
    search_factor: float
    widen_step: float
    max_search_factor: float
    crop_size: int
    redetect_after: int
    redetect_crop_size: int
    decode: str


@dataclass(frozen=True)
class SearchWindow:
    """The next frame's search: its ``window`` (original pixels, and the crop side), the frame ``decoded`` as
    the window needs it, the ``factor`` used and whether it is a whole-frame ``redetect``."""

    window: CropWindow
    decoded: DecodedImage
    factor: float
    redetect: bool


def widened_search_factor(search_factor: float, widen_step: float, max_search_factor: float, failures: int) -> float:
    """Search factor after ``failures`` consecutive failures (widened, capped)."""
    return min(search_factor + max(0, failures) * widen_step, max_search_factor)


def redetecting(redetect_after: int, failures: int) -> bool:
    """Whether the next search covers the whole frame: ``redetect_after`` > 0 consecutive failures reached."""
    return 0 < redetect_after <= failures


def template_window(box_xywh_orig: Sequence[float], settings: WindowSettings) -> CropWindow:
    """The template's window around the initial box (xywh, original pixels); the crop side is not checked
    here (the model family checks it when the settings are made)."""
    return plan_window(box_xywh_orig, settings.template_factor, settings.crop_size, check_side=False)


def local_window(box_xywh_orig: Sequence[float], failures: int, settings: WindowSettings,
                 prediction: MotionPrediction | None = None,
                 image_size: tuple[int, int] | None = None) -> tuple[CropWindow, float]:
    """(window, factor) of a local search after ``failures`` consecutive failures, the last accepted box being
    ``box_xywh_orig`` (xywh, original pixels) and ``prediction`` the motion model's (None, or the policy
    ``last-box``: centred on the last box, the factor widened by failures). ``image_size`` (width, height; the
    last frame's): a predicted centre is kept inside it. See the module docstring for the policies. ValueError
    for an unusable last box (as :func:`r1track.crop.plan_window`)."""
    factor = widened_search_factor(settings.search_factor, settings.widen_step, settings.max_search_factor, failures)
    policy = check_window_policy(getattr(settings, "window_policy", WindowPolicy.LAST_BOX))
    if policy is WindowPolicy.LAST_BOX or prediction is None:
        return plan_window(box_xywh_orig, factor, settings.crop_size, check_side=False), factor  # side checked in TrackerParams
    x, y, w, h = (float(v) for v in box_xywh_orig)
    if not (w > 0 and h > 0 and all(math.isfinite(v) for v in (x, y, w, h))):
        return plan_window(box_xywh_orig, factor, settings.crop_size, check_side=False), factor  # raises its error
    last_cx, last_cy, last_s = x + 0.5 * w, y + 0.5 * h, math.sqrt(w * h)
    # the adaptive policy keeps the last box's centre; the others follow the prediction until MAX_COAST frames
    # in a row had no accepted box
    moves = policy is not WindowPolicy.ADAPTIVE and failures <= MAX_COAST
    size = last_s
    if policy in (WindowPolicy.KALMAN, WindowPolicy.KALMAN_ADAPTIVE):
        size = min(max(prediction.size, last_s / SIZE_RANGE), last_s * SIZE_RANGE)
    if policy in (WindowPolicy.ADAPTIVE, WindowPolicy.KALMAN_ADAPTIVE):
        grown = settings.search_factor + 2.0 * max(0.0, prediction.spread - ADAPTIVE_SLACK * size) / size
        factor = min(max(factor, grown), settings.max_search_factor)
    side_f = size * factor
    cx, cy = last_cx, last_cy
    if moves:
        px, py = prediction.cx, prediction.cy
        if image_size is not None:
            px, py = min(max(px, 0.0), float(image_size[0])), min(max(py, 0.0), float(image_size[1]))
        limit = MAX_SHIFT * 0.5 * side_f
        cx = last_cx + min(max(px - last_cx, -limit), limit)
        cy = last_cy + min(max(py - last_cy, -limit), limit)
    if not all(math.isfinite(v) for v in (cx, cy, side_f)) or side_f <= 0:  # a guard: the motion models stay finite
        return plan_window(box_xywh_orig, factor, settings.crop_size, check_side=False), factor
    return centred_window(cx, cy, side_f, settings.crop_size), factor


def search_window(image: ImageSource, box_xywh_orig: Sequence[float], failures: int,
                  settings: WindowSettings, prediction: MotionPrediction | None = None,
                  image_size: tuple[int, int] | None = None) -> SearchWindow:
    """Where to search ``image`` after ``failures`` consecutive failures, the last accepted box being
    ``box_xywh_orig`` (original pixels) and ``prediction`` the motion model's for this frame (None for
    ``last-box``; ``image_size``: the last frame's, see :func:`local_window`), decoded as the window needs it (a
    whole-frame re-detection decodes the full frame at full resolution first, to know its size; a local search
    only what its window covers, in the ``settings.decode`` mode: :class:`r1track.crop.DecodeMode`). Decoding
    errors are :func:`r1track.crop.load_image`'s."""
    redetect = redetecting(settings.redetect_after, failures)
    if redetect:  # the whole frame: one square, letterboxed crop
        factor = widened_search_factor(settings.search_factor, settings.widen_step, settings.max_search_factor, failures)
        decoded = load_image(image)
        window = full_frame_window(decoded.orig_size, settings.redetect_crop_size)
    else:
        window, factor = local_window(box_xywh_orig, failures, settings, prediction, image_size)
        decoded = load_for_window(image, window, decode=settings.decode)
    return SearchWindow(window, decoded, factor, redetect)


def full_frame_window(image_size: tuple[int, int], out_side: int) -> CropWindow:
    """The re-detection window: a square of the frame's longer side covering the whole ``image_size`` (width,
    height; original pixels), centred, so the shorter side is letterboxed with black on both ends; resized to
    ``out_side``."""
    w, h = (int(v) for v in image_size)
    side = max(w, h, 1)
    return CropWindow(x0=(w - side) // 2, y0=(h - side) // 2, side=side, out_side=out_side)
