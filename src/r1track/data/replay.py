"""The replay plan: exactly the (template, search) pairs the tracker asks about when its model answers perfectly.

Profile ``r1track-replay`` of ``r1track data build`` (:data:`r1track.data.profiles.PROFILES`). For each sequence
the planner follows r1track's tracker (:class:`r1track.tracker.Tracker`, its default sanity limits) from the first
ground-truth box, frame after frame, as if the model had answered every frame with the training answer:

* **template**: frame 0, the tracker's template window (``r1track.window.template_window``: the first box at
  the template factor);
* **search crop of frame i** (i = 1, 2, ...): the tracker's search window after an accepted box
  (``r1track.window.local_window``: around ``tracked_{i-1}`` at the search factor), where
  ``tracked_0`` is the first box and ``tracked_i`` is the box the tracker keeps after the perfect answer of frame
  i -- the ground truth of frame i in the search crop, clipped to the crop, written in the family's coordinates
  and rounded to integers (exactly the training answer), then read back as the tracker reads a reply: decoded to
  crop pixels, clipped to the crop, mapped to the original frame, clipped to the image (:func:`perfect_step`).
  ``tracked_i`` is therefore the ground truth up to the answer's rounding, and the windows are the tracker's to
  the pixel -- the fast test ``tests/test_data_replay.py`` tracks the same sequences with the ``oracle`` backend
  and checks that it asks for exactly these windows, prompt texts and JPEG bytes;
* one sample per search frame, in frame order, all sharing the template crop; prompt, think mode, crop side and
  coordinates as the profile (or the options) say.

A sequence's replay ends where the tracker would leave the perfect path: at the first frame that is not usable
(missing or undecodable file, absent or invisible target, box without area: :mod:`r1track.data.checks`), or whose
perfect answer the tracker would reject (:data:`STOP_REASONS`: less than ``min_inside_fraction`` of the target
inside the search crop, a box thinner than ``min_box_px`` once clipped, a size change beyond
``max_scale_change``). From there a real tracker is on its own; the frames left out are counted by reason in
``stats.json`` (``samples.replay.stopped``). A sequence whose first frame is unusable gives no sample.

Nothing here is random: the seed only decides the train/val split of the sequences.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..answer_checks import check_box
from ..boxes import BoxXYWH, clip_xyxy, xywh_to_xyxy, xyxy_to_xywh
from ..crop import CropTransform, CropWindow
from ..models import ModelFamily, get_family
from ..parse import parse_reply
from ..prompts import render_answer
from ..tracker import Status, TrackerParams
from ..window import local_window, template_window
from .balance import aspect_log2, histogram, scale_log2
from .checks import CheckedSequence
from .profiles import SamplerConfig
from .sampler import CropPlan, SamplePlan, SplitPlan

__all__ = ["STOP_REASONS", "replay_params", "perfect_step", "plan_replay"]

STOP_REASONS = (Status.OUTSIDE_CROP, Status.EMPTY_BOX, Status.OUTSIDE_IMAGE, Status.SCALE_JUMP)
"""Why the tracker would reject a perfect answer (its :class:`~r1track.tracker.Status` names); :data:`NOT_USABLE`
(any unusable frame, :mod:`r1track.data.checks`) ends a replay too."""

NOT_USABLE = "not_usable"
"""Stop reason of a frame the data checks leave out (missing, unreadable, invisible, no box)."""


def replay_params(cfg: SamplerConfig) -> TrackerParams:
    """The tracker settings a replay set reproduces: family, crop side, factors, prompt and think mode of ``cfg``,
    every other setting at its default. ValueError when ``cfg`` is not a replay configuration."""
    if not cfg.replay:
        raise ValueError(f"profile {cfg.name!r} is not a replay profile")
    return TrackerParams(
        model_family=cfg.model_family, crop_size=cfg.crop_sides[0], template_factor=cfg.template_factor[0],
        search_factor=cfg.search_factor[0], prompt_version=cfg.prompt, think=cfg.think, think_layout=cfg.think_layout,
    )


def perfect_step(
    window: CropWindow, truth_xywh_orig: BoxXYWH, prev_xywh_orig: BoxXYWH, image_size: tuple[int, int],
    family: ModelFamily, params: TrackerParams,
) -> tuple[BoxXYWH | None, str]:
    """What the tracker keeps after the perfect answer for one search crop: (box xywh in original pixels, "") or
    (None, the :class:`~r1track.tracker.Status` it would give instead).

    The perfect answer is the training answer: ``truth_xywh_orig`` mapped into the crop, clipped to it, written in
    ``family``'s coordinates as the answer text (:func:`r1track.prompts.render_answer`). It is read back as the
    tracker reads a reply -- parsed, decoded to crop pixels, then the tracker's own checks and map-back
    (:func:`r1track.answer_checks.check_box`: clipped to the crop, mapped to the original frame, clipped to the
    image, ``params``' sanity limits against ``prev_xywh_orig``). ``image_size`` = (width, height)."""
    side = window.out_side
    t: CropTransform = window.transform
    truth_crop = clip_xyxy(t.xyxy_orig_to_crop(xywh_to_xyxy(truth_xywh_orig)), side, side)
    answer = parse_reply(render_answer(family.encode_xyxy(truth_crop, (side, side))))
    box_model = family.decode_xyxy(answer.box_xyxy_model, (side, side))
    status, _, box_orig = check_box(box_model, (side, side), image_size, t.xyxy_crop_to_orig, params, prev_xywh_orig)
    if box_orig is None:
        return None, str(status.value)
    return xyxy_to_xywh(box_orig), ""


def plan_replay(checked: list[CheckedSequence], cfg: SamplerConfig, split: str, *,
                num_samples: int | None = None) -> tuple[SplitPlan, Counter]:
    """The replay samples of one split (see the module docstring), in sequence order then frame order (at most
    ``num_samples``), and the frames left out by stop reason."""
    params = replay_params(cfg)
    family = get_family(cfg.model_family)
    samples: list[SamplePlan] = []
    stopped: Counter = Counter()
    no_samples: list[str] = []
    candidates = 0
    for cs in checked:
        boxes = np.asarray(cs.seq.boxes_xywh_orig, dtype=np.float64)
        n = min(len(cs.frames), len(boxes))
        usable = np.asarray(cs.usable, dtype=bool)
        if n < 2 or not usable[0]:
            no_samples.append(cs.key)
            if n >= 2:
                stopped[NOT_USABLE] += n - 1
            continue
        candidates += n - 1
        first = BoxXYWH(*(float(v) for v in boxes[0]))
        template = CropPlan("template", str(cs.frames[0]), 0, tuple(first),  # type: ignore[arg-type]
                            template_window(first, params))
        tracked = first
        made = 0
        for i in range(1, n):
            if not usable[i]:
                stopped[NOT_USABLE] += n - i
                break
            truth = BoxXYWH(*(float(v) for v in boxes[i]))
            window, _ = local_window(tracked, 0, params)  # the tracker's search window after an accepted box
            kept, reason = perfect_step(window, truth, tracked, cs.image_size, family, params)
            if kept is None:
                stopped[reason] += n - i
                break
            search = CropPlan("search", str(cs.frames[i]), i, tuple(truth), window)  # type: ignore[arg-type]
            samples.append(SamplePlan(split, len(samples), cs.seq.dataset, cs.seq.name, cs.image_size,
                                      (template, search)))
            made += 1
            tracked = kept
        if not made:
            no_samples.append(cs.key)
    if num_samples is not None:
        samples = samples[:num_samples]
    before = _search_histograms(samples)
    return SplitPlan(split, samples, len(checked), candidates, no_samples, before), stopped


def _search_histograms(samples: list[SamplePlan]) -> dict[str, list[int]]:
    boxes = np.array([s.search.box_xywh_orig for s in samples], dtype=np.float64).reshape(-1, 4)
    sizes = np.array([s.image_size for s in samples], dtype=np.float64).reshape(-1, 2)
    return {"aspect": histogram(aspect_log2(boxes), "aspect"), "scale": histogram(scale_log2(boxes, sizes), "scale")}
