"""The ``ncc`` backend: a classical **baseline**, not a language model.

Normalised cross-correlation template matching on the very crops the MLLM would receive: the
target patch is cut from the template crop (its box is in the request), resized to the size the
target had in the previous frame times a few scales, and slid over the search crop; the best
match, mildly biased towards the crop centre (where a motionless target is), is written as
``[x1,y1,x2,y2]`` in search-crop pixels — the reply format of the model — so the whole pipeline
(parser, sanity checks, failure policy, evaluation) runs unchanged with no GPU. numpy only.

It is a reference point, labelled as a baseline wherever results are shown; it does not adapt its
template, has no notion of occlusion and does not initialise from text.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image

from .base import KIND_TRACK, Backend, BackendError, FrameRequest, Reply, RequestImage

__all__ = ["NCCBackend", "ncc_map"]

_GREY = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _grey(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float32) @ _GREY


def ncc_map(search: np.ndarray, patch: np.ndarray) -> np.ndarray:
    """Normalised cross-correlation of ``patch`` (h x w) at every valid position of ``search``
    (H x W, H >= h, W >= w): an (H-h+1) x (W-w+1) array in [-1, 1]; 0 where either window is flat.
    Correlation by FFT, window statistics by integral images."""
    H, W = search.shape
    h, w = patch.shape
    if h > H or w > W or h < 1 or w < 1:
        raise ValueError(f"patch {patch.shape} does not fit in search {search.shape}")
    t = patch.astype(np.float64) - patch.mean()
    t_norm = math.sqrt(float((t * t).sum()))
    out_shape = (H - h + 1, W - w + 1)
    if t_norm < 1e-6:
        return np.zeros(out_shape)
    s = search.astype(np.float64)
    fh, fw = H + h - 1, W + w - 1
    corr = np.fft.irfft2(np.fft.rfft2(s, (fh, fw)) * np.fft.rfft2(t[::-1, ::-1], (fh, fw)), (fh, fw))
    corr = corr[h - 1 : H, w - 1 : W]
    n = h * w

    def window_sum(a: np.ndarray) -> np.ndarray:
        c = np.zeros((H + 1, W + 1))
        c[1:, 1:] = a.cumsum(0).cumsum(1)
        return c[h:, w:] - c[:-h, w:] - c[h:, :-w] + c[:-h, :-w]

    s1 = window_sum(s)
    s2 = window_sum(s * s)
    var = np.maximum(s2 - s1 * s1 / n, 0.0)
    denom = np.sqrt(var) * t_norm
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(denom > 1e-6 * n, corr / denom, 0.0)
    return np.clip(out, -1.0, 1.0)


class NCCBackend(Backend):
    """Classical baseline (see module docstring).

    ``scales``: target sizes tried, relative to the previous frame's size (default 0.95, 1, 1.05).
    ``work_side``: matching runs at a resolution where the target patch is about this many pixels
    (geometric mean side; default 32) — speed, not accuracy, sets it. ``centre_weight``: weight of
    the Hann-window centre prior mixed into the score (0 = none; default 0.15). ``scale_penalty``:
    score multiplier for scales other than 1 (default 0.98)."""

    name = "ncc"
    baseline = True
    supports_grounding = False

    def __init__(
        self,
        *,
        scales: Sequence[float] = (0.95, 1.0, 1.05),
        work_side: float = 32.0,
        centre_weight: float = 0.15,
        scale_penalty: float = 0.98,
    ) -> None:
        if not scales or any(not (s > 0 and math.isfinite(s)) for s in scales):
            raise ValueError(f"scales must be positive, got {scales!r}")
        if not work_side >= 4:
            raise ValueError(f"work_side must be >= 4, got {work_side}")
        if not 0 <= centre_weight < 1:
            raise ValueError(f"centre_weight must be in [0, 1), got {centre_weight}")
        self.scales = tuple(float(s) for s in scales)
        self.work_side = float(work_side)
        self.centre_weight = float(centre_weight)
        self.scale_penalty = float(scale_penalty)

    def complete(self, request: FrameRequest) -> Reply:
        if request.kind != KIND_TRACK or request.prior_box_xyxy_model is None or not request.boxes_xyxy_model:
            raise BackendError("the ncc baseline answers tracking requests only (no text initialisation)",
                               kind="unsupported", fatal=True)
        template, search = request.images[0], request.images[-1]
        return Reply(request.answer_text(self.match(template, request.boxes_xyxy_model[0], search, request.prior_box_xyxy_model)))

    def match(
        self,
        template: RequestImage,
        template_box_xyxy: Sequence[float],
        search: RequestImage,
        prior_box_xyxy: Sequence[float],
    ) -> tuple[float, float, float, float]:
        """Best match of the template's target in the search crop: xyxy in search-crop pixels.
        Falls back to ``prior_box_xyxy`` when the patch carries no texture."""
        px1, py1, px2, py2 = (float(v) for v in prior_box_xyxy)
        pw, ph = max(px2 - px1, 1.0), max(py2 - py1, 1.0)
        S_w, S_h = search.size
        r = min(1.0, self.work_side / math.sqrt(pw * ph))
        sw, sh = max(8, round(S_w * r)), max(8, round(S_h * r))
        r_x, r_y = sw / S_w, sh / S_h
        search_grey = _grey(search.image.resize((sw, sh), Image.Resampling.BILINEAR))
        patch_img = self._patch(template, template_box_xyxy)
        cx0, cy0 = 0.5 * (px1 + px2), 0.5 * (py1 + py2)
        best = (-np.inf, cx0, cy0, pw, ph)
        for s in self.scales:
            w_px, h_px = pw * s, ph * s
            tw, th = max(3, round(w_px * r_x)), max(3, round(h_px * r_y))
            if tw >= sw or th >= sh:
                continue
            patch = _grey(patch_img.resize((tw, th), Image.Resampling.BILINEAR))
            score = ncc_map(search_grey, patch)
            if self.centre_weight > 0:
                hy = np.hanning(score.shape[0] + 2)[1:-1]
                hx = np.hanning(score.shape[1] + 2)[1:-1]
                score = (1 - self.centre_weight) * score + self.centre_weight * np.outer(hy, hx)
            if s != 1.0:
                score = score * self.scale_penalty
            iy, ix = np.unravel_index(int(np.argmax(score)), score.shape)
            if score[iy, ix] > best[0]:
                # top-left (ix, iy) in work pixels -> centre in crop pixels
                cx = (ix + tw / 2) / r_x
                cy = (iy + th / 2) / r_y
                best = (float(score[iy, ix]), cx, cy, tw / r_x, th / r_y)
        _, cx, cy, w, h = best
        return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)

    @staticmethod
    def _patch(template: RequestImage, box_xyxy: Sequence[float]) -> Image.Image:
        key = ("ncc-patch", tuple(round(float(v), 3) for v in box_xyxy))
        patch = template.cache.get(key)
        if patch is None:
            x1, y1, x2, y2 = (float(v) for v in box_xyxy)
            patch = template.image.crop((x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)))
            template.cache[key] = patch
        return patch
