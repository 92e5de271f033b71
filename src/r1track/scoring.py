"""Score a folder of tracking results against a dataset, and write the report (JSON, table, plots); put
several runs' reports side by side (one table, one success / precision plot with a curve per run).

``score_results`` picks the protocol: ``got10k`` for GOT-10k splits with labels (the toolkit's rules), ``otb``
for everything else (OTB / LaSOT / TrackingNet-style folders). See ``r1track.metrics`` for the exact rules.
When every scored sequence has presence scores (a visibility-aware tracker), the report also holds the
long-term protocol's F-score, precision, recall and threshold (``overall["lt_*"]``, ``curves["lt_*"]``).
When every scored sequence has its search windows recorded (``windows_dir``: an eval run's ``windows/``), the
report also holds the target-in-crop scores (:func:`r1track.metrics.window_coverage`; :data:`WINDOW_KEYS`), overall
and per sequence, and the table shows them next to the protocol's scores.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence as Seq

import numpy as np
from PIL import Image

from .data.sequences import Sequence
from .fsutil import atomic_write_text
from .metrics import (
    GOT10K_THRESHOLDS, OTB_THRESHOLDS, got10k_scores, got10k_sequence_ious, longterm_scores, otb_scores,
    otb_sequence_curves, window_coverage, window_frames,
)
from .plots import line_plot
from .results import read_presence, read_result, read_windows

__all__ = [
    "PROTOCOL_NAMES", "PROTOCOL_KEYS", "WINDOW_KEYS", "Report", "score_results", "write_report", "format_table", "read_report",
    "format_comparison",
    "write_comparison",
]

PROTOCOL_NAMES = {
    "got10k": "GOT-10k (AO, SR0.5, SR0.75; frames 2..N with cover > 0, the got10k toolkit's rules)",
    "otb": "OTB/LaSOT (success AUC, precision@20px, normalised precision@0.2, mean IoU; PyTracking's rules)",
}
"""How the console and ``report.txt`` name each protocol: the two give different numbers for the same boxes."""

PROTOCOL_KEYS = {
    "got10k": ("ao", "sr50", "sr75"),
    "otb": ("auc", "precision20", "norm_precision20", "mean_iou"),
}
"""The scores each protocol's tables show, per sequence and overall (the success AUC saturates at 20/21 for a
perfect tracker, so the OTB tables also show the mean IoU, which keeps telling near-perfect trackers apart)."""


@dataclass
class Report:
    """Scores of one tracker on one dataset. ``overall`` and ``per_sequence`` hold plain floats.
    ``baseline``: the tracker is a baseline, not a model (plots and tables say so)."""

    protocol: str
    tracker: str
    dataset: str
    overall: dict[str, float]
    per_sequence: dict[str, dict[str, float]]
    curves: dict[str, list[float]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    baseline: bool = False

    @property
    def label(self) -> str:
        """The tracker's name in tables and legends."""
        return f"{self.tracker} (baseline)" if self.baseline else self.tracker

    @property
    def main_metric(self) -> str:
        return "ao" if self.protocol == "got10k" else "auc"

    def to_json(self) -> dict:
        return {
            "protocol": self.protocol,
            "tracker": self.tracker,
            "baseline": self.baseline,
            "dataset": self.dataset,
            "overall": self.overall,
            "per_sequence": self.per_sequence,
            "curves": self.curves,
            "missing": self.missing,
        }


def read_report(path: str | os.PathLike) -> Report:
    """A report written by :func:`write_report` (``report.json``); ValueError naming the file when it is
    not one."""
    try:
        doc = json.loads(Path(path).read_text())
        return Report(
            doc["protocol"], doc["tracker"], doc["dataset"], doc["overall"], doc["per_sequence"],
            doc.get("curves", {}), doc.get("missing", []), bool(doc.get("baseline", False)),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not an r1track report ({type(exc).__name__}: {exc})") from None


def _image_size(seq: Sequence) -> tuple[int, int]:
    if seq.image_size:
        return seq.image_size
    with Image.open(seq.frames[0]) as im:
        return im.size


LONGTERM_KEYS = ("lt_f_score", "lt_precision", "lt_recall", "lt_threshold")
"""The long-term keys of ``Report.overall`` (present only for trackers with presence scores)."""


def _add_longterm(report: Report, scored: list[Sequence], results: dict, result_dir: str | os.PathLike, layout: str) -> Report:
    """``report`` with the long-term scores added when every scored sequence has presence scores."""
    presence = {s.name: read_presence(result_dir, s.name, layout) for s in scored}
    if any(v is None for v in presence.values()):
        return report
    lt = longterm_scores({s.name: (results[s.name][0], s.boxes_xywh_orig, s.visible, presence[s.name]) for s in scored})
    report.overall.update(zip(LONGTERM_KEYS, (lt.f_score, lt.precision, lt.recall, lt.threshold)))
    report.curves.update(lt_thresholds=lt.thresholds.tolist(), lt_precision=lt.precision_curve.tolist(),
                         lt_recall=lt.recall_curve.tolist(), lt_f=lt.f_curve.tolist())
    return report


WINDOW_KEYS = ("in_crop", "in_crop_full", "crop_target_px")
"""The target-in-crop keys of ``Report.overall`` and its per-sequence rows (present only when the search windows
were recorded); ``overall["in_crop_min_fraction"]`` holds the share of the box ``in_crop`` asks for."""


def _add_windows(report: Report, scored: list[Sequence], windows_dir: str | os.PathLike | None,
                 min_inside_fraction: float) -> Report:
    """``report`` with the target-in-crop scores added when every scored sequence has its windows recorded with
    one row per frame."""
    if windows_dir is None:
        return report
    frames = {}
    for s in scored:
        win = read_windows(windows_dir, s.name)
        if win is None or len(win) != len(s.boxes_xywh_orig):
            return report
        frames[s.name] = window_frames(win[:, :4], win[:, 4], s.boxes_xywh_orig, s.visible)
    for name, f in frames.items():
        cov = window_coverage(f, min_inside_fraction)
        report.per_sequence[name].update(zip(WINDOW_KEYS, (cov.in_crop, cov.in_crop_full, cov.crop_target_px)))
    cov = window_coverage(list(frames.values()), min_inside_fraction)
    report.overall.update(zip(WINDOW_KEYS, (cov.in_crop, cov.in_crop_full, cov.crop_target_px)))
    report.overall["in_crop_min_fraction"] = cov.min_inside_fraction
    return report


def score_results(
    sequences: Iterable[Sequence],
    result_dir: str | os.PathLike,
    *,
    protocol: str | None = None,
    layout: str = "got10k",
    tracker: str = "r1track",
    dataset: str = "",
    allow_missing: bool = False,
    baseline: bool = False,
    windows_dir: str | os.PathLike | None = None,
    min_inside_fraction: float = 0.5,
) -> Report:
    """Score every sequence's result file (``tracker``: its name; ``baseline``: it is a baseline, not a model). ``protocol`` None = ``got10k`` when the sequences carry
    GOT-10k cover labels, else ``otb``. A missing result raises FileNotFoundError unless
    ``allow_missing`` (then it is listed in ``Report.missing`` and left out). ``windows_dir``: the run's
    recorded search windows, for the target-in-crop scores (``min_inside_fraction``: the share of the box
    ``in_crop`` asks for; give the tracker's)."""
    seqs = list(sequences)
    if not seqs:
        raise ValueError("no sequences to score")
    if protocol is None:
        protocol = "got10k" if all(s.cover is not None for s in seqs) else "otb"
    missing: list[str] = []
    results = {}
    for s in seqs:
        try:
            results[s.name] = read_result(result_dir, s.name, layout)
        except (FileNotFoundError, ValueError) as exc:
            if not allow_missing:
                raise FileNotFoundError(f"{s.name}: no usable result in {result_dir} ({exc})") from None
            missing.append(s.name)
    scored = [s for s in seqs if s.name in results]
    if not scored:
        raise FileNotFoundError(f"no results in {result_dir}")
    per: dict[str, dict[str, float]] = {}
    if protocol == "got10k":
        all_ious, all_times = [], []
        for s in scored:
            boxes, times = results[s.name]
            ious = got10k_sequence_ious(boxes, s.boxes_xywh_orig, s.cover, _image_size(s))
            sc = got10k_scores(ious, times)
            per[s.name] = {"ao": sc.ao, "sr50": sc.sr50, "sr75": sc.sr75, "fps": sc.speed_fps, "frames": float(len(boxes))}
            all_ious.append(ious)
            if times is not None:
                all_times.append(times)
        overall = got10k_scores(np.concatenate(all_ious), np.concatenate(all_times) if all_times else None)
        return _add_windows(_add_longterm(Report(
            protocol, tracker, dataset,
            {"ao": overall.ao, "sr50": overall.sr50, "sr75": overall.sr75, "fps": overall.speed_fps, "sequences": float(len(scored))},
            per,
            {"thresholds": GOT10K_THRESHOLDS.tolist(), "success": overall.success_curve.tolist()},
            missing,
            baseline,
        ), scored, results, result_dir, layout), scored, windows_dir, min_inside_fraction)
    if protocol != "otb":
        raise ValueError(f"unknown protocol {protocol!r}; known: got10k, otb")
    curves = {}
    seq_fps: dict[str, float] = {}
    for s in scored:
        boxes, times = results[s.name]
        curves[s.name] = otb_sequence_curves(boxes, s.boxes_xywh_orig, s.visible)
        seq_fps[s.name] = got10k_scores(np.zeros(0), times).speed_fps  # mean of 1/t over frames with t > 0
    sc = otb_scores(curves)
    for name, row in sc.per_sequence.items():
        per[name] = dict(row, fps=seq_fps[name], frames=float(curves[name].n_frames))
    fps = [v for v in seq_fps.values() if v > 0]
    return _add_windows(_add_longterm(Report(
        protocol, tracker, dataset,
        {"auc": sc.auc, "precision20": sc.precision20, "norm_precision20": sc.norm_precision20, "mean_iou": sc.mean_iou,
         "fps": float(np.mean(fps)) if fps else -1.0, "sequences": float(len(scored))},
        per,
        {"thresholds": OTB_THRESHOLDS.tolist(), "success": sc.success_curve.tolist(), "precision": sc.precision_curve.tolist()},
        missing,
        baseline,
    ), scored, results, result_dir, layout), scored, windows_dir, min_inside_fraction)


def format_table(report: Report) -> str:
    """The protocol's name, then the per-sequence table and the overall line, as aligned text (also
    written as report.txt)."""
    keys = list(PROTOCOL_KEYS.get(report.protocol, ()))
    keys += [k for k in WINDOW_KEYS if k in report.overall]
    keys += ["fps", "frames"]
    width = max([len("overall")] + [len(n) for n in report.per_sequence])
    lines = [f"protocol: {PROTOCOL_NAMES.get(report.protocol, report.protocol)}",
             f"{'sequence':<{width}}  " + "  ".join(f"{k:>16}" for k in keys)]
    for name, row in report.per_sequence.items():
        lines.append(f"{name:<{width}}  " + "  ".join(f"{row.get(k, float('nan')):>16.4f}" for k in keys))
    over = dict(report.overall, frames=sum(r.get("frames", 0) for r in report.per_sequence.values()))
    lines.append(f"{'overall':<{width}}  " + "  ".join(f"{over.get(k, float('nan')):>16.4f}" for k in keys))
    if "in_crop" in report.overall:
        lines.append(f"target in crop (frames 2..N with a visible target): in_crop = at least "
                     f"{report.overall['in_crop_min_fraction']:g} of the box inside the search window, in_crop_full = "
                     "all of it; crop_target_px = its sqrt(w*h) in crop pixels")
    if "lt_f_score" in report.overall:
        o = report.overall
        lines.append(f"long-term (presence scores): F-score {o['lt_f_score']:.4f}, precision {o['lt_precision']:.4f}, "
                     f"recall {o['lt_recall']:.4f} at presence >= {o['lt_threshold']:g}")
    return "\n".join(lines) + "\n"


def _overall_keys(protocol: str) -> list[str]:
    return list(PROTOCOL_KEYS.get(protocol, ())) + ["fps", "sequences"]


def format_comparison(reports: Seq[Report]) -> str:
    """One row per report (run) with its overall scores, as aligned text."""
    keys = _overall_keys(reports[0].protocol)
    width = max(len("tracker"), *(len(r.label) for r in reports))
    lines = [f"{'tracker':<{width}}  " + "  ".join(f"{k:>16}" for k in keys)]
    for r in reports:
        lines.append(f"{r.label:<{width}}  " + "  ".join(f"{r.overall.get(k, float('nan')):>16.4f}" for k in keys))
    return "\n".join(lines) + "\n"


def _write_plots(reports: Seq[Report], out: Path) -> dict[str, Path]:
    """Success (and, for the OTB protocol, precision) plot with one curve per report."""
    first = reports[0]
    where = first.dataset or first.protocol
    paths = {"success": out / "success_plot.png"}
    line_plot(paths["success"], {f"{r.label} [{r.overall[r.main_metric]:.3f}]": (r.curves["thresholds"], r.curves["success"])
                                 for r in reports},
              title=f"Success plot ({where})", xlabel="Overlap threshold", ylabel="Success rate", xlim=(0, 1))
    if all("precision" in r.curves for r in reports):
        paths["precision"] = out / "precision_plot.png"
        line_plot(paths["precision"], {f"{r.label} [{r.overall['precision20']:.3f}]": (list(range(51)), r.curves["precision"])
                                       for r in reports},
                  title=f"Precision plot ({where})", xlabel="Location error threshold (px)", ylabel="Precision", xlim=(0, 50))
    return paths


def write_report(report: Report, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``report.json``, ``report.txt`` (per-sequence table) and the success (and precision) plot PNGs."""
    out = Path(out_dir)
    paths = {"json": out / "report.json", "table": out / "report.txt"}
    atomic_write_text(paths["json"], json.dumps(report.to_json(), indent=2) + "\n")
    atomic_write_text(paths["table"], format_table(report))
    paths.update(_write_plots([report], out))
    return paths


def write_comparison(reports: Seq[Report], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Several runs of the same sequences side by side: ``comparison.json`` (every report), ``comparison.txt``
    (:func:`format_comparison`) and one success (and precision) plot with a curve per run. ValueError when
    the reports used different protocols or sequences, or two share a name."""
    if not reports:
        raise ValueError("no reports to compare")
    first = reports[0]
    for r in reports[1:]:
        if r.protocol != first.protocol:
            raise ValueError(f"{r.tracker} was scored with the {r.protocol} protocol, {first.tracker} with {first.protocol}: "
                             "the numbers are not comparable")
        if set(r.per_sequence) != set(first.per_sequence):
            diff = sorted(set(r.per_sequence) ^ set(first.per_sequence))
            raise ValueError(f"{r.tracker} and {first.tracker} scored different sequences ({', '.join(diff[:5])}"
                             f"{' ...' if len(diff) > 5 else ''})")
    labels = [r.label for r in reports]
    if len(set(labels)) != len(labels):
        raise ValueError(f"two runs share a name ({', '.join(labels)}); give them distinct folders or --name")
    out = Path(out_dir)
    paths = {"json": out / "comparison.json", "table": out / "comparison.txt"}
    atomic_write_text(paths["json"], json.dumps([r.to_json() for r in reports], indent=2) + "\n")
    atomic_write_text(paths["table"], format_comparison(reports))
    paths.update(_write_plots(reports, out))
    return paths
