"""Box maths: one place for formats, areas, IoU/GIoU, clipping and scaling.

Conventions (see docs/conventions.md):

* Two formats, named in every function and variable: ``xywh`` = (left, top, width, height) and
  ``xyxy`` = (x_min, y_min, x_max, y_max).
* Coordinates are continuous pixels, 0-based: pixel ``i`` covers ``[i, i + 1)``, so a box
  ``xywh = (10, 20, 5, 5)`` covers pixels 10..14 and ``x_max = x + w``.
* The *frame* a box lives in (original image, crop, model input) is not stored in the value; it is
  part of the variable name (``box_xywh_orig``, ``box_xyxy_crop``, ``box_xyxy_model``).

Every function here is total: NaN, infinite, inverted and degenerate inputs give defined, finite
results (documented per function) and never raise on numbers. Bad *shapes* (not 4 values) raise
``ValueError``.

Overlaps are computed over the whole double range: IoU and GIoU do not change when every coordinate is scaled
by the same factor, so the two boxes are first scaled by a power of two that brings their largest coordinate
into [0.5, 1) -- exact, it only moves the exponent -- and their sizes, products and ratios are computed there.
A pair of boxes near 1e308 (whose width ``x + w`` or area ``w * h`` would overflow) or near 1e-300 (whose area
would underflow to 0) gets the very same IoU as the same pair at everyday pixel scale.
"""

from __future__ import annotations

import math
import sys
from typing import NamedTuple, Sequence

import numpy as np

__all__ = [
    "BoxXYWH",
    "BoxXYXY",
    "xywh_to_xyxy",
    "xyxy_to_xywh",
    "area_xyxy",
    "area_xywh",
    "is_finite_box",
    "normalize_xyxy",
    "clip_xyxy",
    "clip_xywh",
    "scale_xyxy",
    "center_xywh",
    "iou_xyxy",
    "giou_xyxy",
    "iou_xywh",
    "iou_xywh_array",
    "giou_xyxy_array",
]


class BoxXYWH(NamedTuple):
    """(left, top, width, height) in continuous pixels of some frame."""

    x: float
    y: float
    w: float
    h: float


class BoxXYXY(NamedTuple):
    """(x_min, y_min, x_max, y_max) in continuous pixels of some frame."""

    x1: float
    y1: float
    x2: float
    y2: float


def _four(box: Sequence[float], what: str) -> tuple[float, float, float, float]:
    try:
        values = [float(v) for v in box]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be 4 numbers, got {box!r}") from exc
    if len(values) != 4:
        raise ValueError(f"{what} must be 4 numbers, got {len(values)}: {box!r}")
    return values[0], values[1], values[2], values[3]


def xywh_to_xyxy(box_xywh: Sequence[float]) -> BoxXYXY:
    """(x, y, w, h) -> (x, y, x + w, y + h). Negative sizes give an inverted xyxy box."""
    x, y, w, h = _four(box_xywh, "box_xywh")
    return BoxXYXY(x, y, x + w, y + h)


def xyxy_to_xywh(box_xyxy: Sequence[float]) -> BoxXYWH:
    """(x1, y1, x2, y2) -> (x1, y1, x2 - x1, y2 - y1). Inverted boxes give negative sizes."""
    x1, y1, x2, y2 = _four(box_xyxy, "box_xyxy")
    return BoxXYWH(x1, y1, x2 - x1, y2 - y1)


def is_finite_box(box: Sequence[float]) -> bool:
    """True when the box has 4 finite numbers."""
    try:
        return all(math.isfinite(v) for v in _four(box, "box"))
    except ValueError:
        return False


def normalize_xyxy(box_xyxy: Sequence[float]) -> tuple[BoxXYXY, bool]:
    """Sort the corners so x1 <= x2 and y1 <= y2; returns (box, swapped)."""
    x1, y1, x2, y2 = _four(box_xyxy, "box_xyxy")
    swapped = x1 > x2 or y1 > y2
    return BoxXYXY(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)), swapped


def _area(w: float, h: float) -> float:
    """w * h for positive sides, saturated so that it stays finite and positive (past the double range: the
    largest double; below it: the smallest positive one); 0.0 when a side is not positive (or NaN)."""
    if not (w > 0.0 and h > 0.0):
        return 0.0
    a = w * h
    if a == math.inf:
        return sys.float_info.max
    return a if a > 0.0 else _TINY


_TINY = math.ulp(0.0)


def area_xyxy(box_xyxy: Sequence[float]) -> float:
    """Area; inverted or degenerate boxes have area 0; non-finite boxes have area 0. A box with positive
    sides always has a positive, finite area (saturated at the double range's ends), so ``area > 0`` says
    "not degenerate" for any box."""
    x1, y1, x2, y2 = _four(box_xyxy, "box_xyxy")
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return 0.0
    return _area(x2 - x1, y2 - y1)  # x2 - x1 may pass the double range: saturated


def area_xywh(box_xywh: Sequence[float]) -> float:
    """Area; negative or non-finite sizes give 0 (as :func:`area_xyxy`, from ``w`` and ``h`` themselves)."""
    x, y, w, h = _four(box_xywh, "box_xywh")
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        return 0.0
    return _area(w, h)


def center_xywh(box_xywh: Sequence[float]) -> tuple[float, float]:
    """Centre (x + w/2, y + h/2) in the box's frame."""
    x, y, w, h = _four(box_xywh, "box_xywh")
    return x + 0.5 * w, y + 0.5 * h


def clip_xyxy(box_xyxy: Sequence[float], width: float, height: float) -> BoxXYXY:
    """Clip to the image ``[0, width] x [0, height]``. Corners are clipped independently, so a
    box entirely outside becomes a zero-area box on the border (never shifted). NaN -> 0."""
    x1, y1, x2, y2 = _four(box_xyxy, "box_xyxy")

    def c(v: float, hi: float) -> float:
        if math.isnan(v):
            return 0.0
        return min(max(v, 0.0), hi)

    return BoxXYXY(c(x1, width), c(y1, height), c(x2, width), c(y2, height))


def clip_xywh(box_xywh: Sequence[float], width: float, height: float) -> BoxXYWH:
    """Clip an xywh box to the image (see :func:`clip_xyxy`); negative sizes become 0."""
    x1, y1, x2, y2 = clip_xyxy(xywh_to_xyxy(box_xywh), width, height)
    return BoxXYWH(x1, y1, max(0.0, x2 - x1), max(0.0, y2 - y1))


def scale_xyxy(box_xyxy: Sequence[float], sx: float, sy: float | None = None) -> BoxXYXY:
    """Scale from one frame to another of the same origin (e.g. crop -> model input):
    x' = x * sx, y' = y * sy (sy defaults to sx)."""
    x1, y1, x2, y2 = _four(box_xyxy, "box_xyxy")
    sy = sx if sy is None else sy
    return BoxXYXY(x1 * sx, y1 * sy, x2 * sx, y2 * sy)


def _pow2_scale(span: float) -> float:
    """The power of two that brings ``span`` (>= 0, finite) into [0.5, 1) (a subnormal span as far as a double
    allows: at most x 2**1022); 1.0 for 0."""
    return math.ldexp(1.0, min(-math.frexp(span)[1], 1022)) if span > 0 else 1.0


def _overlap_terms(a: Sequence[float], b: Sequence[float], *, xywh: bool = False) -> tuple[float, float, float] | None:
    """(intersection, union, enclosure) areas of the two boxes scaled together by a power of two (see the
    module docstring; the ratios between them are the boxes' own), or None for non-finite input. Inverted
    boxes count as empty, anchored at (x1, y1). ``xywh``: the boxes are (x, y, w, h), converted after the
    scaling (``x + w`` cannot overflow there)."""
    vals = (*_four(a, "box_xyxy"), *_four(b, "box_xyxy"))
    if not all(math.isfinite(v) for v in vals):
        return None
    s = _pow2_scale(max(abs(v) for v in vals))
    ax1, ay1, ax2, ay2, bx1, by1, bx2, by2 = (v * s for v in vals)
    if xywh:
        ax2, ay2, bx2, by2 = ax1 + ax2, ay1 + ay2, bx1 + bx2, by1 + by2
    # Inverted boxes collapse to zero size at their first corner.
    ax2, ay2 = max(ax1, ax2), max(ay1, ay2)
    bx2, by2 = max(bx1, bx2), max(by1, by2)
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    area_a = (ax2 - ax1) * (ay2 - ay1)
    area_b = (bx2 - bx1) * (by2 - by1)
    union = area_a + area_b - inter
    enclosure = (max(ax2, bx2) - min(ax1, bx1)) * (max(ay2, by2) - min(ay1, by1))
    return inter, union, enclosure


def _iou(terms: tuple[float, float, float] | None) -> float:
    if terms is None:
        return 0.0
    inter, union, _ = terms
    if union <= 0.0:
        return 0.0
    return min(1.0, max(0.0, inter / union))


def iou_xyxy(a_xyxy: Sequence[float], b_xyxy: Sequence[float]) -> float:
    """Intersection over union in [0, 1]. Zero union (both boxes empty) or any non-finite
    coordinate gives 0.0. Inverted boxes are empty."""
    return _iou(_overlap_terms(a_xyxy, b_xyxy))


def giou_xyxy(a_xyxy: Sequence[float], b_xyxy: Sequence[float]) -> float:
    """Generalised IoU in [-1, 1]: IoU - (enclosure - union) / enclosure. Any non-finite
    coordinate gives -1.0 (the worst value). A zero-area enclosure (both boxes are the same
    point or line) gives 0.0. Inverted boxes are empty."""
    terms = _overlap_terms(a_xyxy, b_xyxy)
    if terms is None:
        return -1.0
    inter, union, enclosure = terms
    iou = min(1.0, max(0.0, inter / union)) if union > 0.0 else 0.0
    if enclosure <= 0.0:
        return 0.0 if union <= 0.0 else iou
    # The enclosure holds the union, so the penalty is never negative; with sub-normal box sides the two
    # products can round the other way, and GIoU must still never exceed IoU.
    g = iou - max(0.0, enclosure - union) / enclosure
    return min(1.0, max(-1.0, g))


def iou_xywh(a_xywh: Sequence[float], b_xywh: Sequence[float]) -> float:
    """IoU of two xywh boxes (see :func:`iou_xyxy`; a box whose ``x + w`` is past the double range is
    scaled first, not lost)."""
    return _iou(_overlap_terms(a_xywh, b_xywh, xywh=True))


def _as_n4(boxes: np.ndarray | Sequence[Sequence[float]], what: str) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{what} must have shape (N, 4), got {arr.shape}")
    return arr


def iou_xywh_array(a_xywh: np.ndarray, b_xywh: np.ndarray) -> np.ndarray:
    """Row-wise IoU of two (N, 4) xywh arrays; same rules as :func:`iou_xyxy`. Inputs are never
    modified."""
    a = _as_n4(a_xywh, "a_xywh")
    b = _as_n4(b_xywh, "b_xywh")
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    finite = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    a, b = _scaled_rows(np.where(finite[:, None], a, 0.0), np.where(finite[:, None], b, 0.0))
    a = np.concatenate([a[:, :2], a[:, :2] + a[:, 2:]], axis=1)
    b = np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)
    return np.where(finite, _iou_giou_array(a, b)[0], 0.0)


def giou_xyxy_array(a_xyxy: np.ndarray, b_xyxy: np.ndarray) -> np.ndarray:
    """Row-wise GIoU of two (N, 4) xyxy arrays; same rules as :func:`giou_xyxy`."""
    a = _as_n4(a_xyxy, "a_xyxy")
    b = _as_n4(b_xyxy, "b_xyxy")
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    return _iou_giou_array(a, b)[1]


def _scaled_rows(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row pair (finite) scaled by the power of two that brings its largest coordinate into [0.5, 1)."""
    span = np.maximum(np.abs(a).max(axis=1, initial=0.0), np.abs(b).max(axis=1, initial=0.0))
    s = np.ldexp(1.0, np.minimum(-np.frexp(span)[1], 1022))[:, None]  # frexp(0) = (0, 0): scale 1
    return a * s, b * s


def _iou_giou_array(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    finite = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    a, b = _scaled_rows(np.where(finite[:, None], a, 0.0), np.where(finite[:, None], b, 0.0))
    a[:, 2] = np.maximum(a[:, 0], a[:, 2])
    a[:, 3] = np.maximum(a[:, 1], a[:, 3])
    b[:, 2] = np.maximum(b[:, 0], b[:, 2])
    b[:, 3] = np.maximum(b[:, 1], b[:, 3])
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0.0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0.0, None)
    inter = iw * ih
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    enclosure = (np.maximum(a[:, 2], b[:, 2]) - np.minimum(a[:, 0], b[:, 0])) * (
        np.maximum(a[:, 3], b[:, 3]) - np.minimum(a[:, 1], b[:, 1])
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
        iou = np.clip(iou, 0.0, 1.0)
        g = np.where(
            enclosure > 0,
            iou - np.maximum(enclosure - union, 0.0) / np.where(enclosure > 0, enclosure, 1.0),
            np.where(union > 0, iou, 0.0),
        )
    g = np.clip(g, -1.0, 1.0)
    iou = np.where(finite, iou, 0.0)
    g = np.where(finite, g, -1.0)
    return iou, g
