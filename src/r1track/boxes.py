"""Box maths: one place for formats, areas, IoU/GIoU, clipping and scaling.

Conventions (see README, "Conventions"):

* Two formats, named in every function and variable: ``xywh`` = (left, top, width, height) and
  ``xyxy`` = (x_min, y_min, x_max, y_max).
* Coordinates are continuous pixels, 0-based: pixel ``i`` covers ``[i, i + 1)``, so a box
  ``xywh = (10, 20, 5, 5)`` covers pixels 10..14 and ``x_max = x + w``.
* The *frame* a box lives in (original image, crop, model input) is not stored in the value; it is
  part of the variable name (``box_xywh_orig``, ``box_xyxy_crop``, ``box_xyxy_model``).

Every function here is total: NaN, infinite, inverted and degenerate inputs give defined, finite
results (documented per function) and never raise on numbers. Bad *shapes* (not 4 values) raise
``ValueError``.
"""

from __future__ import annotations

import math
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


def area_xyxy(box_xyxy: Sequence[float]) -> float:
    """Area; inverted or degenerate boxes have area 0; non-finite boxes have area 0."""
    x1, y1, x2, y2 = _four(box_xyxy, "box_xyxy")
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return 0.0
    a = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return a if math.isfinite(a) else 0.0


def area_xywh(box_xywh: Sequence[float]) -> float:
    """Area; negative or non-finite sizes give 0."""
    return area_xyxy(xywh_to_xyxy(box_xywh))


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


def _overlap_terms(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float] | None:
    """(intersection, union, enclosure) areas, or None for non-finite input. Inverted boxes count
    as empty, anchored at (x1, y1)."""
    ax1, ay1, ax2, ay2 = _four(a, "box_xyxy")
    bx1, by1, bx2, by2 = _four(b, "box_xyxy")
    vals = (ax1, ay1, ax2, ay2, bx1, by1, bx2, by2)
    if not all(math.isfinite(v) for v in vals):
        return None
    # Inverted boxes collapse to zero size at their first corner.
    ax2, ay2 = max(ax1, ax2), max(ay1, ay2)
    bx2, by2 = max(bx1, bx2), max(by1, by2)
    span = max(abs(v) for v in vals)
    if span > 1e150:  # keep products finite: IoU and GIoU are scale invariant
        s = 1.0 / span
        ax1, ay1, ax2, ay2, bx1, by1, bx2, by2 = (v * s for v in (ax1, ay1, ax2, ay2, bx1, by1, bx2, by2))
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    area_a = (ax2 - ax1) * (ay2 - ay1)
    area_b = (bx2 - bx1) * (by2 - by1)
    union = area_a + area_b - inter
    enclosure = (max(ax2, bx2) - min(ax1, bx1)) * (max(ay2, by2) - min(ay1, by1))
    return inter, union, enclosure


def iou_xyxy(a_xyxy: Sequence[float], b_xyxy: Sequence[float]) -> float:
    """Intersection over union in [0, 1]. Zero union (both boxes empty) or any non-finite
    coordinate gives 0.0. Inverted boxes are empty."""
    terms = _overlap_terms(a_xyxy, b_xyxy)
    if terms is None:
        return 0.0
    inter, union, _ = terms
    if union <= 0.0:
        return 0.0
    return min(1.0, max(0.0, inter / union))


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
    g = iou - (enclosure - union) / enclosure
    return min(1.0, max(-1.0, g))


def iou_xywh(a_xywh: Sequence[float], b_xywh: Sequence[float]) -> float:
    """IoU of two xywh boxes (see :func:`iou_xyxy`)."""
    return iou_xyxy(xywh_to_xyxy(a_xywh), xywh_to_xyxy(b_xywh))


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
    a = np.concatenate([a[:, :2], a[:, :2] + a[:, 2:]], axis=1)
    b = np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)
    return _iou_giou_array(a, b)[0]


def giou_xyxy_array(a_xyxy: np.ndarray, b_xyxy: np.ndarray) -> np.ndarray:
    """Row-wise GIoU of two (N, 4) xyxy arrays; same rules as :func:`giou_xyxy`."""
    a = _as_n4(a_xyxy, "a_xyxy")
    b = _as_n4(b_xyxy, "b_xyxy")
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    return _iou_giou_array(a, b)[1]


def _iou_giou_array(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    finite = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    a = np.where(finite[:, None], a, 0.0)
    b = np.where(finite[:, None], b, 0.0)
    a = a.copy()
    b = b.copy()
    a[:, 2] = np.maximum(a[:, 0], a[:, 2])
    a[:, 3] = np.maximum(a[:, 1], a[:, 3])
    b[:, 2] = np.maximum(b[:, 0], b[:, 2])
    b[:, 3] = np.maximum(b[:, 1], b[:, 3])
    span = np.maximum(np.abs(a).max(axis=1), np.abs(b).max(axis=1))
    big = span > 1e150
    s = np.where(big, 1.0 / np.where(big, span, 1.0), 1.0)[:, None]
    a = a * s
    b = b * s
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
            iou - (enclosure - union) / np.where(enclosure > 0, enclosure, 1.0),
            np.where(union > 0, iou, 0.0),
        )
    g = np.clip(g, -1.0, 1.0)
    iou = np.where(finite, iou, 0.0)
    g = np.where(finite, g, -1.0)
    return iou, g
