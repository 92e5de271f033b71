"""The oracle's simulated failure model, and a visibility-aware eval run end to end (presence files in both
result layouts, long-term scores in the report)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from r1track.backends.oracle import NO_BOX_REPLY, FailureModel, OracleBackend
from r1track.cli import main
from r1track.data.readers import read_dataset
from r1track.evaluate import EvalSettings, evaluate
from r1track.parse import parse_reply
from r1track.presets import get_preset
from r1track.results import read_presence
from r1track.scoring import score_results
from r1track.synthetic import write_got10k_split
from r1track.tracker import Status, Tracker, TrackerParams

from test_tracker_policy import INIT, frame

GT = np.array([INIT] * 50)


def run(params, backend, n=6):
    tr = Tracker(backend, params)
    tr.initialize(frame(0), INIT)
    return [tr.track(frame(k)) for k in range(1, n)]


def test_invisible_frames_get_absent_for_the_vis_prompt_and_a_wrong_place_otherwise():
    visible = np.ones(50, dtype=bool)
    visible[1:3] = False
    vis = run(TrackerParams(prompt_version="r1track-vis-v1"), OracleBackend(GT, visible=visible, failures=FailureModel()), 3)
    assert [r.status for r in vis] == [Status.ABSENT, Status.ABSENT]
    plain = OracleBackend(GT, visible=visible, failures=FailureModel())
    box_only = run(TrackerParams(), plain, 3)
    assert all(r.reply != "[]" and parse_reply(r.reply).ok for r in box_only)  # a box, somewhere else
    # without a failure model the oracle ignores the labels (as before)
    assert [r.status for r in run(TrackerParams(), OracleBackend(GT, visible=visible), 3)] == [Status.OK, Status.OK]


def test_rates_are_reproducible_and_roughly_as_asked():
    fm = FailureModel(miss_rate=0.3, jump_rate=0.2)
    replies = [r.reply for r in run(TrackerParams(max_scale_change=100.0), OracleBackend(GT, failures=fm, seed=3), 41)]
    again = [r.reply for r in run(TrackerParams(max_scale_change=100.0), OracleBackend(GT, failures=fm, seed=3), 41)]
    assert replies == again
    misses = sum(r == NO_BOX_REPLY for r in replies)
    assert 4 <= misses <= 22  # 40 frames at 0.3: mean 12


def test_target_out_of_the_crop_is_not_seen():
    far = GT.copy()
    far[1] = (600.0, 440.0, 30.0, 30.0)  # far outside the first search window (240..400, 140..300)
    r = run(TrackerParams(prompt_version="r1track-vis-v1"), OracleBackend(far, failures=FailureModel()), 2)
    assert r[0].status == Status.ABSENT


def test_failure_model_checks_and_parses():
    assert FailureModel.parse("miss=0.1, jump=0.2,jitter=3") == FailureModel(0.1, 0.2, 3.0)
    assert FailureModel.parse("") == FailureModel()
    for bad in ("miss=2", "miss=0.6,jump=0.6", "wobble=1", "miss=x"):
        with pytest.raises(ValueError):
            FailureModel.parse(bad)


def test_vis_eval_writes_presence_and_longterm_scores(tmp_path):
    root = tmp_path / "syn"
    write_got10k_split(root, "val", n_sequences=2, n_frames=24, size=(160, 120), seed=5, full_occlusion_every=1,
                       out_of_view_every=1)
    seqs = list(read_dataset("got10k", root, split="val"))
    out = tmp_path / "run"
    run_ = evaluate(seqs, EvalSettings(out, backend="oracle", params=get_preset("vis").params, progress=False,
                                       backend_options={"failures": FailureModel()}))
    doc = json.loads((out / "run.json").read_text())
    invisible = sum(int((~s.visible[1:]).sum()) for s in seqs)
    assert doc["totals"]["absent"] >= invisible > 0 and "absent" not in doc["fallbacks"]
    assert sum(x["absent"] for x in doc["sequences"]) == doc["totals"]["absent"]
    for s in seqs:
        for layout, d in (("got10k", "results"), ("pytracking", "results_pytracking")):
            p = read_presence(out / d, s.name, layout)
            assert p is not None and len(p) == len(s.frames) and p[0] == 1.0
            assert np.all(p[1:][~s.visible[1:]] == 0.0)  # the oracle says [] on every invisible frame
    rep = score_results(seqs, out / "results")
    assert 0 < rep.overall["lt_f_score"] <= 1 and "lt_precision" in rep.overall
    plain = tmp_path / "plain"
    evaluate(seqs, EvalSettings(plain, backend="oracle", progress=False))
    assert read_presence(plain / "results", seqs[0].name) is None
    assert "lt_f_score" not in score_results(seqs, plain / "results").overall


def test_eval_cli_takes_oracle_failures(tmp_path):
    root = tmp_path / "syn"
    write_got10k_split(root, "val", n_sequences=1, n_frames=8, size=(160, 120), seed=2)
    rc = main(["eval", str(root / "val"), "--backend", "oracle", "--oracle-failures", "miss=0.5", "--preset", "vis",
               "--out", str(tmp_path / "r")])
    assert rc == 0
    assert "FailureModel(miss_rate=0.5" in (tmp_path / "r" / "settings.json").read_text()
    assert main(["eval", str(root / "val"), "--backend", "oracle", "--oracle-failures", "miss=7",
                 "--out", str(tmp_path / "r2")]) == 2
