"""The ``oracle`` backend (tests and benchmarks): answers with the ground-truth box of the frame,
mapped into the request's model frame and written as a model of the request's family would (integers,
``[x1,y1,x2,y2]``, in absolute pixels or on Qwen3's 0-1000 grid),
optionally with Gaussian noise (grounding requests get Qwen's ``[{"bbox_2d": ...}]`` form). It shows what the geometry and the policies can reach with a
perfect model; it needs the ground truth, so it is never a tracker."""

from __future__ import annotations

import json
import math
from typing import Sequence

import numpy as np

from ..boxes import is_finite_box, xywh_to_xyxy
from .base import KIND_GROUND, Backend, FrameRequest, Reply

__all__ = ["OracleBackend"]


class OracleBackend(Backend):
    """``boxes_xywh_orig``: (N, 4) ground truth of one sequence, original pixels, row i = frame i.
    ``noise_px``: standard deviation of Gaussian noise added to each corner, in model pixels.
    ``seed``: noise seed; the noise of frame i depends only on (seed, i), so re-running or resuming a
    sequence gives the same answers whatever was asked before. A frame without ground truth (NaN row or past the end) gets the reply
    ``"no target"`` (a parse failure, as a model that sees nothing might answer)."""

    name = "oracle"
    supports_grounding = True

    def __init__(self, boxes_xywh_orig: Sequence[Sequence[float]] | np.ndarray, *, noise_px: float = 0.0, seed: int = 0):
        arr = np.asarray(boxes_xywh_orig, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise ValueError(f"ground truth must have shape (N, 4), got {arr.shape}")
        if not (noise_px >= 0 and math.isfinite(noise_px)):
            raise ValueError(f"noise_px must be >= 0, got {noise_px}")
        self.boxes_xywh_orig = arr
        self.noise_px = float(noise_px)
        self.seed = int(seed)
        self.calls = 0

    def complete(self, request: FrameRequest) -> Reply:
        self.calls += 1
        i = request.frame_index
        if not (0 <= i < len(self.boxes_xywh_orig)) or not is_finite_box(self.boxes_xywh_orig[i]):
            return Reply("no target")
        box_model = np.asarray(request.orig_to_model_xyxy(xywh_to_xyxy(self.boxes_xywh_orig[i])), dtype=np.float64)
        if self.noise_px > 0:
            box_model = box_model + np.random.default_rng([abs(self.seed), i]).normal(0.0, self.noise_px, size=4)
        if request.kind == KIND_GROUND:  # answer as Qwen's grounding does, in the family's coordinates
            coords = [int(round(v)) for v in request.family.encode_xyxy(box_model, request.model_size)]
            return Reply(json.dumps([{"bbox_2d": coords, "label": request.grounding_text or "target"}]))
        return Reply(request.answer_text(box_model))

    async def complete_async(self, request: FrameRequest) -> Reply:
        return self.complete(request)
