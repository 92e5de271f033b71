"""The ``oracle`` backend (tests and benchmarks): answers with the ground-truth box of the frame,
mapped into the request's model frame and written as a model of the request's family would (integers,
``[x1,y1,x2,y2]``, in absolute pixels or on Qwen3's 0-1000 grid),
optionally with Gaussian noise (grounding requests get Qwen's ``[{"bbox_2d": ...}]`` form). It shows what the geometry and the policies can reach with a
perfect model; it needs the ground truth, so it is never a tracker.

**Simulated failures** (:class:`FailureModel`; a SIMULATION of a model's mistakes, not a measurement of any
model): with a failure model the oracle answers as a crop-based model plausibly would --

* the target is *not in view* when the frame's visibility label says it is invisible, or when less than half
  of its ground-truth box lies inside the search crop (the model cannot see it). A prompt that offers the
  absent answer (``r1track-vis-v1``) then gets ``[]``; any other prompt gets a box at a wrong place (the
  distractor a box-only model follows: R1-Track's checkpoints never learnt to say "absent");
* otherwise, with probability ``miss_rate`` a reply with no box, with probability ``jump_rate`` a box of the
  target's size at a uniformly random wrong place in the crop, else the ground truth plus Gaussian jitter of
  ``jitter_px`` model pixels per corner.

Every draw depends only on (seed, frame index), so reruns and resumed runs give the same answers.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..boxes import area_xyxy, clip_xyxy, is_finite_box, xywh_to_xyxy
from ..prompts import ABSENT_ANSWER, get_prompt
from .base import KIND_GROUND, Backend, FrameRequest, Reply

__all__ = ["OracleBackend", "FailureModel", "NO_BOX_REPLY"]

NO_BOX_REPLY = "no target"
"""What the oracle answers when it gives no box (a parse failure, as a model that sees nothing might answer)."""

_IN_VIEW_SHARE = 0.5  # a target with less of its box inside the search crop is out of the model's view


@dataclass(frozen=True)
class FailureModel:
    """Simulated model mistakes (see the module docstring). Rates are probabilities per visible frame;
    ``jitter_px`` is the standard deviation per corner in model pixels."""

    miss_rate: float = 0.0
    jump_rate: float = 0.0
    jitter_px: float = 0.0

    def __post_init__(self) -> None:
        for name in ("miss_rate", "jump_rate"):
            v = getattr(self, name)
            if not (0.0 <= v <= 1.0):
                raise ValueError(f"{name} must be in [0, 1], got {v!r}")
        if self.miss_rate + self.jump_rate > 1.0:
            raise ValueError(f"miss_rate + jump_rate must be <= 1, got {self.miss_rate + self.jump_rate}")
        if not (self.jitter_px >= 0 and math.isfinite(self.jitter_px)):
            raise ValueError(f"jitter_px must be >= 0, got {self.jitter_px!r}")

    def __str__(self) -> str:
        """The ``--oracle-failures`` text that gives this model (``miss=0.1,jump=0,jitter=2``)."""
        return f"miss={self.miss_rate:g},jump={self.jump_rate:g},jitter={self.jitter_px:g}"

    @classmethod
    def parse(cls, text: str) -> "FailureModel":
        """From ``"miss=0.05,jump=0.05,jitter=2"`` (any subset; ``""`` = no mistakes but the visibility rule).
        ValueError naming the bad item."""
        names = {"miss": "miss_rate", "jump": "jump_rate", "jitter": "jitter_px"}
        values = {}
        for item in filter(None, (t.strip() for t in text.split(","))):
            key, _, value = item.partition("=")
            if key.strip() not in names:
                raise ValueError(f"unknown failure setting {key.strip()!r} in {text!r}; known: {', '.join(names)}")
            try:
                values[names[key.strip()]] = float(value)
            except ValueError:
                raise ValueError(f"failure setting {item!r} needs a number") from None
        return cls(**values)


class OracleBackend(Backend):
    """``boxes_xywh_orig``: (N, 4) ground truth of one sequence, original pixels, row i = frame i.
    ``noise_px``: standard deviation of Gaussian noise added to each corner, in model pixels.
    ``seed``: noise seed; the noise of frame i depends only on (seed, i), so re-running or resuming a
    sequence gives the same answers whatever was asked before. A frame without ground truth (NaN row or past
    the end) gets the reply :data:`NO_BOX_REPLY`. ``visible``: (N,) visibility labels (None: all visible);
    used by ``failures``, a :class:`FailureModel` (None: the plain oracle, which answers the ground truth
    whatever the labels say)."""

    name = "oracle"
    supports_grounding = True

    def __init__(self, boxes_xywh_orig: Sequence[Sequence[float]] | np.ndarray, *, noise_px: float = 0.0, seed: int = 0,
                 visible: Sequence[bool] | np.ndarray | None = None, failures: FailureModel | None = None):
        arr = np.asarray(boxes_xywh_orig, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise ValueError(f"ground truth must have shape (N, 4), got {arr.shape}")
        if not (noise_px >= 0 and math.isfinite(noise_px)):
            raise ValueError(f"noise_px must be >= 0, got {noise_px}")
        self.boxes_xywh_orig = arr
        self.noise_px = float(noise_px)
        self.seed = int(seed)
        self.visible = np.ones(len(arr), dtype=bool) if visible is None else np.asarray(visible, dtype=bool)
        self.failures = failures
        self.calls = 0

    def complete(self, request: FrameRequest) -> Reply:
        self.calls += 1
        i = request.frame_index
        if not (0 <= i < len(self.boxes_xywh_orig)) or not is_finite_box(self.boxes_xywh_orig[i]):
            return Reply(NO_BOX_REPLY)
        box_model = np.asarray(request.orig_to_model_xyxy(xywh_to_xyxy(self.boxes_xywh_orig[i])), dtype=np.float64)
        rng = np.random.default_rng([abs(self.seed), i])
        if self.noise_px > 0:
            box_model = box_model + rng.normal(0.0, self.noise_px, size=4)
        if request.kind == KIND_GROUND:  # answer as Qwen's grounding does, in the family's coordinates
            coords = [int(round(v)) for v in request.family.encode_xyxy(box_model, request.model_size)]
            return Reply(json.dumps([{"bbox_2d": coords, "label": request.grounding_text or "target"}]))
        if self.failures is not None:
            return self._simulated(request, i, box_model, rng)
        return Reply(request.answer_text(box_model))

    def _simulated(self, request: FrameRequest, i: int, box_model: np.ndarray, rng: np.random.Generator) -> Reply:
        f = self.failures
        assert f is not None
        mw, mh = request.model_size
        area = area_xyxy(box_model)
        inside = area_xyxy(clip_xyxy(box_model, mw, mh))
        in_view = bool(self.visible[i]) if i < len(self.visible) else True
        in_view = in_view and area > 0 and inside >= _IN_VIEW_SHARE * area
        u = rng.random()
        if not in_view:
            if request.prompt_version is not None and get_prompt(request.prompt_version).absent:
                return Reply(ABSENT_ANSWER)
            return Reply(request.answer_text(self._wrong_place(box_model, mw, mh, rng)))
        if u < f.miss_rate:
            return Reply(NO_BOX_REPLY)
        if u < f.miss_rate + f.jump_rate:
            return Reply(request.answer_text(self._wrong_place(box_model, mw, mh, rng)))
        if f.jitter_px > 0:
            box_model = box_model + rng.normal(0.0, f.jitter_px, size=4)
        return Reply(request.answer_text(box_model))

    @staticmethod
    def _wrong_place(box_model: np.ndarray, mw: int, mh: int, rng: np.random.Generator) -> np.ndarray:
        """A box of the target's size (capped to the crop) at a uniformly random place inside the crop."""
        w = float(min(max(box_model[2] - box_model[0], 2.0), mw))
        h = float(min(max(box_model[3] - box_model[1], 2.0), mh))
        x, y = rng.uniform(0, mw - w), rng.uniform(0, mh - h)
        return np.array([x, y, x + w, y + h])

    async def complete_async(self, request: FrameRequest) -> Reply:
        return self.complete(request)
