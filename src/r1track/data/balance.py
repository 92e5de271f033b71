"""Target-shape statistics and the weights that balance a training set over them.

Two dimensions, both computed from the search frame's ground-truth box in original pixels:

* ``aspect`` = log2(w / h): 0 for a square target, +1 for twice as wide as tall.
* ``scale`` = log2(sqrt(w * h / (W * H))): the target's linear size relative to its frame
  (-1 = half the frame, -5 = 1/32 of it). Inside a crop the target always spans about 1/factor of
  the side, so this is what varies between samples: how much detail the crop carries.

Bins are fixed (edges below, outer bins open), so histograms of different builds compare.
Balancing weights each candidate by 1 / (candidates in its bin) per balanced dimension
(:func:`balance_weights`), so every occupied bin gets the same share.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

__all__ = ["EDGES", "aspect_log2", "scale_log2", "bin_index", "histogram", "bin_labels", "balance_weights", "spread"]

EDGES: dict[str, tuple[float, ...]] = {
    "aspect": (-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5),
    "scale": (-5.0, -4.0, -3.0, -2.0, -1.0),
}
"""Inner bin edges per dimension; len(edges) + 1 bins, the outer ones open."""


def aspect_log2(boxes_xywh: np.ndarray) -> np.ndarray:
    """log2(w / h) of (N, 4) xywh boxes with positive sizes."""
    b = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    return np.log2(b[:, 2] / b[:, 3])


def scale_log2(boxes_xywh: np.ndarray, image_sizes_wh: np.ndarray) -> np.ndarray:
    """log2(sqrt(w * h / (W * H))) of (N, 4) xywh boxes in frames of (N, 2) sizes (W, H)."""
    b = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    s = np.asarray(image_sizes_wh, dtype=np.float64).reshape(-1, 2)
    return 0.5 * np.log2((b[:, 2] * b[:, 3]) / (s[:, 0] * s[:, 1]))


def bin_index(values: np.ndarray, dim: str) -> np.ndarray:
    """Bin of every value (0 .. len(EDGES[dim])); a value on an edge goes to the bin above it."""
    return np.searchsorted(np.asarray(EDGES[dim]), np.asarray(values, dtype=np.float64), side="right")


def histogram(values: np.ndarray, dim: str) -> list[int]:
    """Counts per bin of ``dim``."""
    idx = bin_index(values, dim)
    return np.bincount(idx, minlength=len(EDGES[dim]) + 1).astype(int).tolist()


def bin_labels(dim: str) -> list[str]:
    """Human-readable bin names: ``<-1.5``, ``[-1.5,-1)``, ..., ``>=1.5``."""
    e = EDGES[dim]
    fmt = lambda v: f"{v:g}"  # noqa: E731
    return [f"<{fmt(e[0])}"] + [f"[{fmt(a)},{fmt(b)})" for a, b in zip(e, e[1:])] + [f">={fmt(e[-1])}"]


def balance_weights(values_by_dim: dict[str, np.ndarray], dims: Iterable[str]) -> np.ndarray:
    """Sampling weight per candidate: the product over ``dims`` of 1 / (candidates in its bin).

    Along one dimension every occupied bin then gets the same total weight; with two dimensions
    both marginals come out even when aspect and scale are independent, and merely flatter when
    they are correlated (no cell is ever weighted down to zero, so no kind of target is dropped).
    With no dims, all weights are 1.
    """
    dims = list(dims)
    n = len(next(iter(values_by_dim.values()))) if values_by_dim else 0
    w = np.ones(n, dtype=np.float64)
    for d in dims:
        idx = bin_index(values_by_dim[d], d)
        counts = np.bincount(idx, minlength=len(EDGES[d]) + 1).astype(np.float64)
        w /= counts[idx]
    return w


def spread(counts: Sequence[int]) -> float:
    """Normalised entropy of a histogram over its non-empty-able bins (1 = perfectly even)."""
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    if total <= 0 or len(c) < 2:
        return 0.0
    p = c[c > 0] / total
    return float(-(p * np.log(p)).sum() / math.log(len(c)))
