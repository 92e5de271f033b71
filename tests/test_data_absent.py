"""Absent-target samples of `r1track data build` (--absent-fraction, profile r1track-vis) on synthetic
GOT-10k folders with occlusion and out-of-view spans."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from r1track.cli import main
from r1track.data.build import Source, build
from r1track.data.checks import check_sequence
from r1track.data.profiles import get_profile
from r1track.data.readers import read_dataset
from r1track.data.sampler import absent_frames, plan_split
from r1track.reward import score_reply
from r1track.synthetic import make_sequence, out_of_view_span, write_got10k_split


@pytest.fixture(scope="module")
def got(tmp_path_factory):
    root = tmp_path_factory.mktemp("vis")
    write_got10k_split(root, "train", n_sequences=4, n_frames=16, size=(160, 120), full_occlusion_every=2,
                       out_of_view_every=2)
    return root


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def test_out_of_view_span_is_labelled_absent_and_leaves_other_frames_alone():
    a = make_sequence("a", n_frames=16, seed=3)
    b = make_sequence("b", n_frames=16, seed=3, out_of_view=True)
    gone = out_of_view_span(16)
    assert list(gone) == [11, 12]
    assert all(b.absence[i] == 1 and b.cover[i] == 0 for i in gone)
    for i in range(gone.start):
        assert np.array_equal(a.frames[i], b.frames[i]) and a.cover[i] == b.cover[i]
    assert np.array_equal(a.boxes_xywh_orig[: gone.start], b.boxes_xywh_orig[: gone.start])
    # it comes back mirrored through the image centre (320 x 240): centres sum to (320, 240), within rounding
    for i in range(gone.stop, 16):
        (xa, ya, wa, ha), (xb, yb, wb, hb) = a.boxes_xywh_orig[i], b.boxes_xywh_orig[i]
        assert (wa, ha) == (wb, hb)
        assert abs((xa + wa / 2) + (xb + wb / 2) - 320) <= 1 and abs((ya + ha / 2) + (yb + hb / 2) - 240) <= 1


def test_vis_build_writes_absent_samples_in_every_format(got, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "set"
    cfg = get_profile("r1track-vis").replace(val_fraction=0.0, absent_fraction=0.3)
    res = build([Source.parse(str(got))], out, cfg, formats=("llamafactory", "easyr1", "verl"), seed=2, progress=False)
    rows = manifest(out)
    absent = [r for r in rows if r.get("absent")]
    visible = [r for r in rows if not r.get("absent")]
    # 16 visible samples (4 per sequence) -> round(16 * 0.3 / 0.7) = 7 absent ones
    assert len(visible) == 16 and len(absent) == 7
    assert res.stats["samples"]["absent"]["written"] == {"train": 7, "val": 0}
    assert res.stats["config"]["absent_fraction"] == 0.3
    labels = {}
    for r in absent:
        seq_dir = got / "train" / r["sequence"]
        labels.setdefault(r["sequence"], np.loadtxt(seq_dir / "absence.label", dtype=int))
        t, s = r["frame_indices"]
        assert labels[r["sequence"]][s] == 1 and labels[r["sequence"]][t] == 0 and t < s  # template visible, before
        assert r["answer"] == "[]" and r["prompt_version"] == "r1track-vis-v1"
    lf = json.loads((out / "llamafactory" / "train.json").read_text())
    assert sum(rec["messages"][1]["content"] == "[]" for rec in lf) == 7
    assert all("or [] if the target is not visible" in rec["messages"][0]["content"] for rec in lf)
    e = pq.read_table(out / "easyr1" / "train.parquet").to_pylist()
    v = pq.read_table(out / "verl" / "train.parquet").to_pylist()
    assert sum(row["answer"] == "[]" for row in e) == 7
    assert sum(row["reward_model"]["ground_truth"] == "[]" for row in v) == 7
    # the reward reads the written ground truth: [] scores absent_reward, a box there the failure score
    gt = next(row["answer"] for row in e if row["answer"] == "[]")
    assert score_reply("[]", gt)["overall"] == 1.0 and score_reply("[1,2,30,40]", gt)["overall"] == -1.0


def test_visible_plan_is_unchanged_by_absent_samples(got):
    checked = [check_sequence(s)[0] for s in read_dataset("got10k", got, split="train")]
    base = plan_split(checked, get_profile("r1track"), np.random.default_rng(5), "train", num_samples=None)
    vis_cfg = get_profile("r1track").replace(prompt="r1track-vis-v1", absent_fraction=0.2)
    vis = plan_split(checked, vis_cfg, np.random.default_rng(5), "train", num_samples=None)
    kept = [p for p in vis.samples if not p.absent]
    assert [p.crops for p in kept] == [p.crops for p in base.samples]
    assert len(vis.samples) - len(kept) == round(len(base.samples) * 0.2 / 0.8)
    assert [p.index for p in vis.samples] == list(range(len(vis.samples)))


def test_zero_fraction_keeps_the_config_record(got):
    assert "absent_fraction" not in get_profile("r1track").to_dict()
    assert get_profile("r1track-vis").to_dict()["absent_fraction"] == 0.2


def test_absent_samples_need_the_absent_prompt_and_pairs():
    with pytest.raises(ValueError, match="r1track-vis-v1"):
        get_profile("r1track").replace(absent_fraction=0.2)
    with pytest.raises(ValueError, match="pairs"):
        get_profile("r1track-vis").replace(n_images=3, prompt="r1track-mem-v1", absent_fraction=0.2)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        get_profile("r1track-vis").replace(absent_fraction=1.0)


def test_cli_switches_to_the_absent_prompt(got, tmp_path):
    out = tmp_path / "cli"
    rc = main(["data", "build", str(got), "--absent-fraction", "0.2", "--out", str(out), "--quiet", "--val-fraction", "0"])
    assert rc == 0
    st = json.loads((out / "stats.json").read_text())
    assert st["config"]["prompt"] == "r1track-vis-v1" and st["samples"]["absent"]["written"]["train"] > 0


def test_generic_folders_need_the_explicit_flag(tmp_path):
    seq_dir = tmp_path / "generic" / "seq1"
    seq_dir.mkdir(parents=True)
    s = make_sequence("seq1", n_frames=8, seed=1)
    from PIL import Image

    for i, f in enumerate(s.frames):
        Image.fromarray(f).save(seq_dir / f"{i + 1:04d}.jpg")
    lines = [",".join(f"{v:g}" for v in b) for b in s.boxes_xywh_orig]
    lines[6] = "nan,nan,nan,nan"
    lines[7] = "0,0,0,0"
    (seq_dir / "groundtruth.txt").write_text("\n".join(lines) + "\n")
    seq = next(iter(read_dataset("generic", tmp_path / "generic")))
    cs = check_sequence(seq)[0]
    cfg = get_profile("r1track-vis")
    assert not absent_frames(cs, cfg).any()
    assert np.flatnonzero(absent_frames(cs, cfg.replace(absent_from_empty_boxes=True))).tolist() == [6, 7]
