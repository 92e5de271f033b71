"""The target-in-crop metric (r1track.metrics.window_frames / window_coverage), the recorded search windows
(r1track.results, eval's windows/ folder) and their place in eval's report. Expected values are worked out by
hand here."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from r1track.cli import main as cli_main
from r1track.data import read_got10k
from r1track.data.sequences import DatasetError
from r1track.evaluate import EvalSettings, evaluate
from r1track.metrics import window_coverage, window_frames
from r1track.results import read_windows, write_windows
from r1track.synthetic import make_sequence, write_got10k_split
from r1track.tracker import TrackerParams

NAN = math.nan


def test_hand_computed_frames():
    gt = np.array([
        [0, 0, 10, 10],      # frame 1: never counted
        [10, 10, 20, 20],    # wholly inside window [0, 0, 100, 100]
        [90, 10, 20, 20],    # half inside (x 90..110 against 0..100)
        [95, 10, 20, 20],    # a quarter inside
        [10, 10, 20, 20],    # no window (a missing frame)
        [10, 10, 20, 20],    # invisible: not counted
        [10, 10, 0, 20],     # no valid box: not counted
    ], dtype=float)
    win = np.array([[0, 0, 100, 100]] * 7, dtype=float)
    win[4] = NAN
    sides = np.array([336, 336, 336, 336, 0, 336, 336], dtype=float)
    visible = np.array([1, 1, 1, 1, 1, 0, 1], dtype=bool)
    f = window_frames(win, sides, gt, visible)
    np.testing.assert_allclose(f.inside, [1.0, 0.5, 0.25, 0.0])
    assert f.full.tolist() == [True, False, False, False]
    np.testing.assert_allclose(f.target_px[:3], [20 * 3.36] * 3)
    assert math.isnan(f.target_px[3])
    cov = window_coverage(f, 0.5)
    assert (cov.in_crop, cov.in_crop_full, cov.n_frames) == (0.5, 0.25, 4)  # 2 of 4 frames hold >= half
    assert cov.crop_target_px == pytest.approx(67.2)
    assert window_coverage(f, 0.25).in_crop == 0.75
    assert window_coverage(f, 0.0).in_crop == 0.75  # a frame without a crop never counts as in it
    pooled = window_coverage([f, f], 0.5)
    assert (pooled.in_crop, pooled.n_frames) == (0.5, 8)
    with pytest.raises(ValueError, match="3 windows"):
        window_frames(win[:3], sides[:3], gt)
    with pytest.raises(ValueError, match="min_inside_fraction"):
        window_coverage(f, 1.5)


def test_window_file_round_trip_and_errors_name_file_and_line(tmp_path):
    rows = np.array([[NAN] * 5, [-12, 40, 108, 160, 336], [0.5, 1, 2.5, 3, 504]])
    write_windows(tmp_path, "seq", rows)
    back = read_windows(tmp_path, "seq")
    assert np.array_equal(np.isnan(back), np.isnan(rows)) and np.array_equal(back[1:], rows[1:])
    assert read_windows(tmp_path, "other") is None
    (tmp_path / "bad.txt").write_text("1,2,3,4,336\n1,2,3\n")
    with pytest.raises(DatasetError, match=r"bad.txt:2: expected x1,y1,x2,y2,crop_side"):
        read_windows(tmp_path, "bad")


def test_eval_records_each_frames_window_and_reports_target_in_crop(tmp_path):
    root = tmp_path / "GOT10k"
    write_got10k_split(root, "val", n_sequences=2, n_frames=12, seed=4, full_occlusion_every=2)
    seqs = list(read_got10k(root, "val"))
    out = tmp_path / "run"
    assert cli_main(["eval", str(root), "--backend", "oracle", "-o", str(out), "--no-progress"]) == 0
    report = json.loads((out / "report" / "report.json").read_text())
    frames, inside, full = 0, 0, 0
    for s in seqs:
        win = read_windows(out / "windows", s.name)
        assert win.shape == (len(s), 5) and np.isnan(win[0]).all()
        assert (win[1:, 4] == 336).all() and (win[1:, 2] - win[1:, 0] == win[1:, 3] - win[1:, 1]).all()
        for i in range(1, len(s)):  # by hand: the target's box against the window
            if not s.visible[i]:
                continue
            x, y, w, h = s.boxes_xywh_orig[i]
            x1, y1, x2, y2 = win[i, :4]
            share = max(0.0, min(x + w, x2) - max(x, x1)) * max(0.0, min(y + h, y2) - max(y, y1)) / (w * h)
            frames += 1
            inside += share >= 0.5
            full += x >= x1 and y >= y1 and x + w <= x2 and y + h <= y2
    assert report["overall"]["in_crop"] == pytest.approx(inside / frames)
    assert report["overall"]["in_crop_full"] == pytest.approx(full / frames)
    assert report["overall"]["in_crop_min_fraction"] == 0.5
    table = (out / "report" / "report.txt").read_text()
    assert "in_crop" in table.splitlines()[1] and "target in crop" in table


def test_resumed_run_records_the_same_windows(tmp_path, monkeypatch):
    from r1track.backends import BackendError
    from r1track.backends.oracle import FailureModel, OracleBackend
    from r1track.evaluate import EvalAborted

    root = tmp_path / "GOT10k"
    write_got10k_split(root, "val", n_sequences=2, n_frames=12, seed=9)
    seqs = list(read_got10k(root, "val"))
    params = TrackerParams(window_policy="kalman-adaptive")
    options = {"failures": FailureModel(0.2, 0.2, 2.0), "seed": 1}
    settings = lambda out: EvalSettings(out, backend="oracle", params=params, progress=False, concurrency=1,  # noqa: E731
                                        backend_options=options)
    assert not evaluate(seqs, settings(tmp_path / "clean")).failed
    real = OracleBackend.complete

    def dies_at_frame_7(self, request):
        if request.frame_index == 7:
            raise BackendError("the server went away", kind="client-error", fatal=True)
        return real(self, request)

    monkeypatch.setattr(OracleBackend, "complete", dies_at_frame_7)
    with pytest.raises(EvalAborted):
        evaluate(seqs, settings(tmp_path / "resumed"))
    assert list((tmp_path / "resumed" / "partial").glob("*.jsonl"))  # frames 1-6 wait in a replay log
    monkeypatch.setattr(OracleBackend, "complete", real)
    assert not evaluate(seqs, settings(tmp_path / "resumed")).failed
    for s in seqs:
        a = read_windows(tmp_path / "clean" / "windows", s.name)
        b = read_windows(tmp_path / "resumed" / "windows", s.name)
        assert np.array_equal(a, b, equal_nan=True), s.name


def test_runs_without_window_files_are_scored_as_before(tmp_path):
    from r1track.scoring import score_results

    root = tmp_path / "GOT10k"
    write_got10k_split(root, "val", n_sequences=1, n_frames=8, seed=2)
    seqs = list(read_got10k(root, "val"))
    evaluate(seqs, EvalSettings(tmp_path / "run", backend="oracle", progress=False))
    with_windows = score_results(seqs, tmp_path / "run" / "results", windows_dir=tmp_path / "run" / "windows")
    without = score_results(seqs, tmp_path / "run" / "results", windows_dir=tmp_path / "nowhere")
    assert "in_crop" in with_windows.overall and "in_crop" not in without.overall
    assert with_windows.overall["ao"] == without.overall["ao"]


def test_synthetic_fast_motion_profile():
    smooth = make_sequence("s", n_frames=60, size=(640, 480), seed=5, object_scale=(0.04, 0.07))
    fast = make_sequence("f", n_frames=60, size=(640, 480), seed=5, object_scale=(0.04, 0.07), motion="fast")
    assert np.array_equal(smooth.boxes_xywh_orig[:, 2:], fast.boxes_xywh_orig[:, 2:])  # same sizes: same draws
    again = make_sequence("f", n_frames=60, size=(640, 480), seed=5, object_scale=(0.04, 0.07), motion="fast")
    assert np.array_equal(fast.boxes_xywh_orig, again.boxes_xywh_orig)

    def steps(seq):
        b = seq.boxes_xywh_orig
        c = b[:, :2] + b[:, 2:] / 2
        return np.diff(c, axis=0), np.sqrt(b[1:, 2] * b[1:, 3])

    def sharp_turns(d):
        cos = (d[1:] * d[:-1]).sum(axis=1) / (np.linalg.norm(d[1:], axis=1) * np.linalg.norm(d[:-1], axis=1) + 1e-9)
        return int((cos < 0).sum())  # consecutive steps more than 90 degrees apart

    d_fast, s_fast = steps(fast)
    speed = np.linalg.norm(d_fast, axis=1) / s_fast  # the size breathes by +-35 %: speed 0.1-1.0 of it, and rounding
    assert 0.05 < speed.min() and speed.max() < 1.7 and 0.2 < np.median(speed) < 1.2
    assert sharp_turns(d_fast) >= 1 and sharp_turns(steps(smooth)[0]) == 0
    b = fast.boxes_xywh_orig
    assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all() and (b[:, 0] + b[:, 2] <= 640).all() and (b[:, 1] + b[:, 3] <= 480).all()
    with pytest.raises(ValueError, match="unknown motion profile 'jumpy'.*smooth, fast"):
        make_sequence("x", motion="jumpy")
