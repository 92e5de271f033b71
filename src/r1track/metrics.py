"""Tracking metrics, in one small numpy module. All boxes are 0-based ``xywh`` in original pixels.

Two protocols, never to be compared with each other:

* **GOT-10k** (as the got10k toolkit 0.1.3 and the evaluation server compute it): IoU on frames 2..N
  only, frames with ``cover == 0`` dropped, both boxes first bounded to the image the toolkit's way
  (``x`` clipped to [0, W], then ``w`` to [0, W - x]: a box hanging off the left edge is shifted, not
  cut — replicated on purpose so numbers match the server), IoU = inter / (union + eps).
  AO = mean IoU, SR0.5 / SR0.75 = share of IoU strictly above 0.5 / 0.75, over all frames of all
  sequences pooled. Speed = mean of 1/t over frames with t > 0.
* **OTB / LaSOT** (as PyTracking's analysis computes it): every frame counts, frame 1 included
  (its prediction is the initial box, IoU 1); frames whose ground truth is invalid (w or h <= 0,
  non-finite, or marked invisible) count as misses. Success AUC = mean over the 21 thresholds
  0, 0.05, ..., 1 of the share of frames with IoU > threshold; precision = share with centre error
  <= 20 px; normalised precision = share with centre error / (GT w, h) <= 0.2; mean IoU = the mean IoU
  over the same frames (misses count 0), which keeps telling trackers apart where the AUC saturates (a
  perfect tracker's AUC is 20/21 = 0.9524, the top threshold 1.0 being unreachable). Per sequence, then
  averaged over sequences.

A third, for trackers that report a presence score per frame (``object_presence_score``):

* **Long-term** (VOT-LT / LaSOT-style tracking precision and recall, Lukezic et al., "Now you see me",
  2018): frames 2..N; a frame *predicts* at threshold tau when its presence score is >= tau; the target is
  *visible* when its visibility label says so and its box is valid. Per sequence,
  precision(tau) = sum of IoU over predicting frames / number of predicting frames (IoU 0 where the target is
  not visible), recall(tau) = sum of IoU over visible predicting frames / number of visible frames. Both are
  averaged over sequences (a sequence with no predicting frame at tau, or no visible frame, is left out of that
  average), F(tau) = 2 P R / (P + R), and the tracker's F-score is the largest F over the thresholds (every
  distinct presence score), reported with its precision, recall and threshold. Trackers without presence
  scores are never scored this way, so their OTB / GOT-10k numbers stay as they were.

And a geometric one, for the search-window policies (:mod:`r1track.window`), which needs no model:

* **Target in crop**: frames 2..N whose target is visible with a valid box; per frame, the share of the
  ground-truth box's area inside the search window (original pixels, the window's padding included: it is what
  the crop shows). ``in_crop`` = share of frames with at least ``min_inside_fraction`` of the box inside (the
  tracker's own acceptance rule for an answer), ``in_crop_full`` = share with the whole box inside; a frame that
  sent no crop (a missing or unreadable frame) counts as out. ``crop_target_px`` = mean ``sqrt(w*h)`` of the
  ground-truth box in crop pixels (``* crop side / window side``) over the frames with a crop: what a larger
  window costs the model's view. Pooled over the frames of all sequences, like AO.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from .boxes import iou_xywh_array

__all__ = [
    "GOT10K_THRESHOLDS",
    "OTB_THRESHOLDS",
    "got10k_bounded_iou",
    "got10k_sequence_ious",
    "Got10kScores",
    "got10k_scores",
    "OtbSequenceCurves",
    "otb_sequence_curves",
    "OtbScores",
    "otb_scores",
    "LongTermCurves",
    "longterm_sequence_curves",
    "LongTermScores",
    "longterm_scores",
    "WindowFrames",
    "window_frames",
    "WindowCoverage",
    "window_coverage",
]

GOT10K_THRESHOLDS = np.linspace(0.0, 1.0, 101)
OTB_THRESHOLDS = np.arange(0.0, 1.05, 0.05)[:21]
PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64)
NORM_PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64) / 100.0


def _n4(a: np.ndarray, what: str) -> np.ndarray:
    arr = np.array(a, dtype=np.float64, copy=True).reshape(-1, 4) if np.size(a) else np.zeros((0, 4))
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{what}: expected (N, 4) boxes, got shape {np.shape(a)}")
    return arr


def got10k_bounded_iou(pred_xywh: np.ndarray, gt_xywh: np.ndarray, image_size: tuple[float, float]) -> np.ndarray:
    """Row-wise IoU after the got10k toolkit's bounding (see module doc). Inputs are not modified."""
    a, b = _n4(pred_xywh, "pred"), _n4(gt_xywh, "gt")
    if a.shape != b.shape:
        raise ValueError(f"{len(a)} predictions for {len(b)} ground-truth boxes")
    w_img, h_img = float(image_size[0]), float(image_size[1])
    for r in (a, b):
        r[:, 0] = np.clip(r[:, 0], 0, w_img)
        r[:, 1] = np.clip(r[:, 1], 0, h_img)
        r[:, 2] = np.clip(r[:, 2], 0, w_img - r[:, 0])
        r[:, 3] = np.clip(r[:, 3], 0, h_img - r[:, 1])
    iw = np.maximum(np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0)
    ih = np.maximum(np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0)
    inter = iw * ih
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    with np.errstate(invalid="ignore"):
        iou = inter / (union + np.finfo(float).eps)
    return np.nan_to_num(np.clip(iou, 0.0, 1.0), nan=0.0)


def got10k_sequence_ious(
    pred_xywh: np.ndarray, gt_xywh: np.ndarray, cover: np.ndarray | None, image_size: tuple[float, float]
) -> np.ndarray:
    """IoUs of frames 2..N whose cover label is > 0 (all of 2..N when ``cover`` is None)."""
    pred, gt = _n4(pred_xywh, "pred"), _n4(gt_xywh, "gt")
    if len(pred) != len(gt):
        raise ValueError(f"{len(pred)} predicted boxes for {len(gt)} annotated frames")
    ious = got10k_bounded_iou(pred[1:], gt[1:], image_size)
    if cover is not None:
        cover = np.asarray(cover)
        if len(cover) != len(gt):
            raise ValueError(f"{len(cover)} cover labels for {len(gt)} frames")
        ious = ious[cover[1:] > 0]
    return ious


@dataclass
class Got10kScores:
    ao: float
    sr50: float
    sr75: float
    speed_fps: float
    success_curve: np.ndarray
    n_frames: int


def got10k_scores(ious: np.ndarray, times: np.ndarray | None = None) -> Got10kScores:
    """AO, SR0.5, SR0.75, the 101-point success curve and fps from pooled IoUs and frame times (s).
    No frames -> zeros (and fps -1 without times, as the toolkit reports). Times below a nanosecond count
    as one (no frame takes less; a time file holding 1e-320 cannot make the speed infinite)."""
    ious = np.asarray(ious, dtype=np.float64).ravel()
    curve = (ious[:, None] > GOT10K_THRESHOLDS[None, :]).mean(axis=0) if len(ious) else np.zeros(len(GOT10K_THRESHOLDS))
    t = np.asarray(times if times is not None else [], dtype=np.float64).ravel()
    t = np.maximum(t[np.isfinite(t) & (t > 0)], 1e-9)
    return Got10kScores(
        ao=float(ious.mean()) if len(ious) else 0.0,
        sr50=float((ious > 0.5).mean()) if len(ious) else 0.0,
        sr75=float((ious > 0.75).mean()) if len(ious) else 0.0,
        speed_fps=float((1.0 / t).mean()) if len(t) else -1.0,
        success_curve=curve,
        n_frames=len(ious),
    )


@dataclass
class OtbSequenceCurves:
    success: np.ndarray  # (21,) share of frames with IoU > threshold
    precision: np.ndarray  # (51,) share with centre error <= 0..50 px
    norm_precision: np.ndarray  # (51,) share with normalised centre error <= 0..0.5
    n_frames: int
    mean_iou: float = 0.0  # mean IoU over the frames, misses (invalid ground truth) counted 0


def otb_sequence_curves(pred_xywh: np.ndarray, gt_xywh: np.ndarray, valid: np.ndarray | None = None) -> OtbSequenceCurves:
    """Per-sequence curves of the OTB/LaSOT protocol (see module doc). ``valid`` marks frames whose
    target is visible; frames with invalid ground truth always count as misses."""
    pred, gt = _n4(pred_xywh, "pred"), _n4(gt_xywh, "gt")
    if len(pred) != len(gt):
        raise ValueError(f"{len(pred)} predicted boxes for {len(gt)} annotated frames")
    n = len(gt)
    if n == 0:
        z = np.zeros
        return OtbSequenceCurves(z(21), z(51), z(51), 0)
    pred = pred.copy()
    pred[0] = gt[0]
    ok = np.isfinite(gt).all(axis=1) & (gt[:, 2] > 0) & (gt[:, 3] > 0)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    iou = np.where(ok, iou_xywh_array(pred, gt), -1.0)
    # a centre error past the double range (a box near 1e308) is infinite: a miss at every threshold, as it is
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        c_pred = pred[:, :2] + 0.5 * pred[:, 2:]
        c_gt = gt[:, :2] + 0.5 * gt[:, 2:]
        err = np.linalg.norm(c_pred - c_gt, axis=1)
        nerr = np.linalg.norm((c_pred - c_gt) / gt[:, 2:], axis=1)
    err = np.where(ok & np.isfinite(err), err, np.inf)
    nerr = np.where(ok & np.isfinite(nerr), nerr, np.inf)
    return OtbSequenceCurves(
        success=(iou[:, None] > OTB_THRESHOLDS[None, :]).mean(axis=0),
        precision=(err[:, None] <= PRECISION_THRESHOLDS[None, :]).mean(axis=0),
        norm_precision=(nerr[:, None] <= NORM_PRECISION_THRESHOLDS[None, :]).mean(axis=0),
        n_frames=n,
        mean_iou=float(np.clip(iou, 0.0, None).mean()),
    )


@dataclass
class OtbScores:
    auc: float
    precision20: float
    norm_precision20: float
    success_curve: np.ndarray
    precision_curve: np.ndarray
    norm_precision_curve: np.ndarray
    per_sequence: dict[str, dict[str, float]] = field(default_factory=dict)
    mean_iou: float = 0.0


def otb_scores(curves: Mapping[str, OtbSequenceCurves]) -> OtbScores:
    """Average the per-sequence curves over sequences (each sequence weighs the same)."""
    if not curves:
        raise ValueError("no sequences to score")
    succ = np.mean([c.success for c in curves.values()], axis=0)
    prec = np.mean([c.precision for c in curves.values()], axis=0)
    nprec = np.mean([c.norm_precision for c in curves.values()], axis=0)
    per = {
        name: {"auc": float(c.success.mean()), "precision20": float(c.precision[20]), "norm_precision20": float(c.norm_precision[20]),
               "mean_iou": c.mean_iou}
        for name, c in curves.items()
    }
    mean_iou = float(np.mean([c.mean_iou for c in curves.values()]))
    return OtbScores(float(succ.mean()), float(prec[20]), float(nprec[20]), succ, prec, nprec, per, mean_iou)


@dataclass
class LongTermCurves:
    """One sequence's long-term curves at ``thresholds``: ``precision`` (NaN where no frame predicts) and
    ``recall`` (NaN when the target is never visible)."""

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray


def longterm_sequence_curves(
    pred_xywh: np.ndarray, gt_xywh: np.ndarray, visible: np.ndarray | None, presence: np.ndarray,
    thresholds: np.ndarray,
) -> LongTermCurves:
    """Precision and recall of one sequence at each threshold (see the module docstring; frame 1 is left
    out). ``visible``: (N,) visibility labels (None: every frame with a valid box is visible);
    ``presence``: (N,) presence scores."""
    pred, gt = _n4(pred_xywh, "pred"), _n4(gt_xywh, "gt")
    conf = np.asarray(presence, dtype=np.float64).ravel()
    if not (len(pred) == len(gt) == len(conf)):
        raise ValueError(f"{len(pred)} boxes, {len(conf)} presence scores for {len(gt)} annotated frames")
    thr = np.asarray(thresholds, dtype=np.float64).ravel()
    with np.errstate(invalid="ignore"):
        vis = np.isfinite(gt).all(axis=1) & (gt[:, 2] > 0) & (gt[:, 3] > 0)
    if visible is not None:
        vis &= np.asarray(visible, dtype=bool)
    pred, gt, conf, vis = pred[1:], gt[1:], conf[1:], vis[1:]
    iou = np.where(vis, iou_xywh_array(pred, gt), 0.0) if len(gt) else np.zeros(0)
    predicting = conf[None, :] >= thr[:, None]  # (T, N)
    n_pred = predicting.sum(axis=1)
    hit = (predicting * iou[None, :]).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(n_pred > 0, hit / np.maximum(n_pred, 1), np.nan)
    n_vis = int(vis.sum())
    recall = hit / n_vis if n_vis else np.full(len(thr), np.nan)
    return LongTermCurves(thr, precision, recall)


@dataclass
class LongTermScores:
    """The long-term protocol's result: ``f_score`` and the ``precision``, ``recall`` and ``threshold`` where
    it is reached; the averaged curves over ``thresholds``."""

    f_score: float
    precision: float
    recall: float
    threshold: float
    thresholds: np.ndarray
    precision_curve: np.ndarray
    recall_curve: np.ndarray
    f_curve: np.ndarray


def longterm_scores(sequences: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]]) -> LongTermScores:
    """Long-term scores over sequences, each ``(pred_xywh, gt_xywh, visible, presence)``; thresholds are every
    distinct presence score (frames 2..N). ValueError when there is no sequence."""
    if not sequences:
        raise ValueError("no sequences to score")
    scores = np.concatenate([np.asarray(v[3], dtype=np.float64).ravel()[1:] for v in sequences.values()])
    thr = np.unique(scores[np.isfinite(scores)])
    if len(thr) == 0:
        thr = np.array([0.0])
    curves = [longterm_sequence_curves(p, g, vis, conf, thr) for p, g, vis, conf in sequences.values()]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: no sequence counts there
        pr = np.nan_to_num(np.nanmean([c.precision for c in curves], axis=0), nan=0.0)
        re = np.nan_to_num(np.nanmean([c.recall for c in curves], axis=0), nan=0.0)
    f = np.where(pr + re > 0, 2 * pr * re / np.where(pr + re > 0, pr + re, 1.0), 0.0)
    k = int(np.argmax(f))
    return LongTermScores(float(f[k]), float(pr[k]), float(re[k]), float(thr[k]), thr, pr, re, f)


@dataclass
class WindowFrames:
    """Per counted frame (frames 2..N with a visible, valid target; see the module docstring): ``inside`` = share
    of the ground-truth box's area inside the search window (0 without a window), ``full`` = the whole box
    inside, ``target_px`` = its ``sqrt(w*h)`` in crop pixels (NaN without a window)."""

    inside: np.ndarray
    full: np.ndarray
    target_px: np.ndarray


def window_frames(windows_xyxy_orig: np.ndarray, crop_sides: np.ndarray, gt_xywh: np.ndarray,
                  visible: np.ndarray | None = None) -> WindowFrames:
    """One sequence's :class:`WindowFrames`. ``windows_xyxy_orig``: (N, 4) search windows, original pixels (a
    NaN row: no crop was sent; row 1, the template's, is not counted); ``crop_sides``: (N,) the side in crop
    pixels each window was resized to; ``gt_xywh``: (N, 4) ground truth; ``visible``: (N,) labels (None: every
    frame with a valid box). ValueError on mismatched lengths."""
    win, gt = _n4(windows_xyxy_orig, "windows"), _n4(gt_xywh, "gt")
    sides = np.asarray(crop_sides, dtype=np.float64).ravel()
    if not (len(win) == len(gt) == len(sides)):
        raise ValueError(f"{len(win)} windows, {len(sides)} crop sides for {len(gt)} annotated frames")
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(gt).all(axis=1) & (gt[:, 2] > 0) & (gt[:, 3] > 0)
    if visible is not None:
        vis = np.asarray(visible, dtype=bool).ravel()
        if len(vis) != len(gt):
            raise ValueError(f"{len(vis)} visibility labels for {len(gt)} frames")
        ok &= vis
    ok[:1] = False
    win, gt, sides = win[ok], gt[ok], sides[ok]
    has = np.isfinite(win).all(axis=1) & (win[:, 2] > win[:, 0]) & (win[:, 3] > win[:, 1]) & (sides > 0)
    win = np.where(has[:, None], win, 0.0)
    gx1, gy1, gx2, gy2 = gt[:, 0], gt[:, 1], gt[:, 0] + gt[:, 2], gt[:, 1] + gt[:, 3]
    iw = np.maximum(np.minimum(gx2, win[:, 2]) - np.maximum(gx1, win[:, 0]), 0.0)
    ih = np.maximum(np.minimum(gy2, win[:, 3]) - np.maximum(gy1, win[:, 1]), 0.0)
    inside = np.where(has, np.clip(iw * ih / (gt[:, 2] * gt[:, 3]), 0.0, 1.0), 0.0)
    full = has & (gx1 >= win[:, 0]) & (gy1 >= win[:, 1]) & (gx2 <= win[:, 2]) & (gy2 <= win[:, 3])
    with np.errstate(invalid="ignore", divide="ignore"):
        px = np.sqrt(gt[:, 2] * gt[:, 3]) * sides / (win[:, 2] - win[:, 0])
    return WindowFrames(inside, full, np.where(has, px, np.nan))


@dataclass
class WindowCoverage:
    """Target-in-crop scores (see the module docstring): ``in_crop`` (at least ``min_inside_fraction`` of the box
    inside), ``in_crop_full``, ``crop_target_px`` (NaN when no counted frame had a crop) over ``n_frames``
    counted frames (both shares 0 when there are none)."""

    in_crop: float
    in_crop_full: float
    crop_target_px: float
    n_frames: int
    min_inside_fraction: float


def window_coverage(frames: WindowFrames | list[WindowFrames], min_inside_fraction: float = 0.5) -> WindowCoverage:
    """Pool one or several sequences' :class:`WindowFrames`. ValueError for a fraction outside [0, 1]."""
    if not 0.0 <= min_inside_fraction <= 1.0:
        raise ValueError(f"min_inside_fraction must be in [0, 1], got {min_inside_fraction}")
    parts = [frames] if isinstance(frames, WindowFrames) else list(frames)
    inside = np.concatenate([f.inside for f in parts]) if parts else np.zeros(0)
    full = np.concatenate([f.full for f in parts]) if parts else np.zeros(0, dtype=bool)
    px = np.concatenate([f.target_px for f in parts]) if parts else np.zeros(0)
    has = np.isfinite(px)  # the frame sent a crop
    n = len(inside)
    px = px[has]
    return WindowCoverage(
        in_crop=float(((inside >= min_inside_fraction) & has).mean()) if n else 0.0,
        in_crop_full=float(full.mean()) if n else 0.0,
        crop_target_px=float(px.mean()) if len(px) else float("nan"),
        n_frames=n,
        min_inside_fraction=float(min_inside_fraction),
    )
