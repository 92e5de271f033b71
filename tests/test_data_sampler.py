"""Planning rules of the training-data builder: frame checks, candidates, partners, balancing, profiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from budget import examples

from r1track.data.balance import EDGES, balance_weights, bin_index, bin_labels, histogram
from r1track.data.checks import CheckedSequence, align_frames, check_sequence
from r1track.data.profiles import SUPPORTED_CROP_SIDES, get_profile
from r1track.data.sampler import plan_split, search_candidates, split_sequences
from r1track.data.sequences import Sequence


def P(names):
    return [Path(f"/x/{n}") for n in names]


def test_align_frames_by_count_or_by_number():
    assert align_frames(P(["a.jpg", "b.jpg"]), 2) == P(["a.jpg", "b.jpg"])
    # GOT-10k / LaSOT count from 1, TrackingNet from 0: the gap becomes a missing frame
    assert align_frames(P(["00000001.jpg", "00000003.jpg"]), 3) == [Path("/x/00000001.jpg"), None, Path("/x/00000003.jpg")]
    assert align_frames(P(["0.jpg", "2.jpg"]), 3) == [Path("/x/0.jpg"), None, Path("/x/2.jpg")]
    # a frame beyond the ground truth, duplicates or unnumbered names cannot be aligned
    assert align_frames(P(["1.jpg", "2.jpg", "3.jpg", "4.jpg"]), 3) is None
    assert align_frames(P(["1.jpg", "1.png"]), 3) is None
    assert align_frames(P(["a.jpg"]), 3) is None


def _seq(n, visible=None, boxes=None, frames=None):
    boxes = np.tile([10.0, 10.0, 20.0, 20.0], (n, 1)) if boxes is None else np.asarray(boxes, float)
    vis = np.ones(n, bool) if visible is None else np.asarray(visible, bool)
    return Sequence("s", frames if frames is not None else P([f"{i + 1:08d}.jpg" for i in range(n)]), boxes, vis, "t", image_size=(100, 80))


def test_check_sequence_marks_unusable_frames_and_reports_them():
    boxes = np.tile([10.0, 10.0, 20.0, 20.0], (6, 1))
    boxes[2] = (5, 5, 0, 9)
    boxes[3] = (np.nan, 1, 2, 3)
    seq = _seq(6, visible=[1, 0, 1, 1, 1, 1], boxes=boxes, frames=P([f"{i:08d}.jpg" for i in (1, 2, 3, 4, 6)]))
    cs, issues = check_sequence(seq)
    assert cs.usable.tolist() == [True, False, False, False, False, True]
    got = {(i.reason, i.frames) for i in issues}
    assert got == {("missing_frame", 1), ("invisible", 1), ("zero_area_box", 2)}
    cs2, issues2 = check_sequence(_seq(3, frames=P(["1.jpg", "2.jpg", "3.jpg", "9.jpg"])))
    assert cs2 is None and [i.reason for i in issues2] == ["frame_count_mismatch"]
    cs3, issues3 = check_sequence(_seq(3, visible=[0, 0, 0]))
    assert cs3 is None and issues3[-1].reason == "no_usable_frames"


def test_candidates_follow_the_gap_rules():
    u = np.array([1, 0, 1, 1, 0, 0, 0, 1, 1, 1], bool)
    pairs = get_profile("r1track").replace(balance=(), max_gap=2)
    # ordered: a usable frame 1..2 frames earlier
    assert search_candidates(u, pairs).tolist() == [2, 3, 8, 9]
    unordered = get_profile("r1track-5k").replace(max_gap=None)
    assert search_candidates(u, unordered).tolist() == [0, 2, 3, 7, 8, 9]
    tri = get_profile("r1track").replace(n_images=3, prompt="r1track-mem-v1", max_gap=4, memory_max_gap=1)
    # needs t < m < s, s - m <= 1, s - t <= 4
    assert search_candidates(u, tri).tolist() == [3, 9]


@st.composite
def usable_sequences(draw):
    n = draw(st.integers(2, 60))
    bits = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return np.array(bits, bool)


@given(
    st.lists(usable_sequences(), min_size=1, max_size=5),
    st.integers(1, 12),
    st.integers(1, 4),
    st.booleans(),
    st.booleans(),
    st.integers(0, 10_000),
)
@settings(max_examples=examples(80), deadline=None)
def test_planned_samples_obey_every_rule(usables, max_gap, mem_gap, triples, balanced, seed):
    cfg = get_profile("r1track").replace(
        max_gap=max_gap, memory_max_gap=mem_gap, samples_per_sequence=3, balance=("aspect", "scale") if balanced else ()
    )
    if triples:
        cfg = cfg.replace(n_images=3, prompt="r1track-mem-v1")
    checked = []
    rng = np.random.default_rng(seed)
    for k, u in enumerate(usables):
        n = len(u)
        boxes = np.column_stack([rng.uniform(0, 50, n), rng.uniform(0, 50, n), rng.uniform(2, 60, n), rng.uniform(2, 60, n)])
        seq = Sequence(f"s{k}", P([f"{i + 1}.jpg" for i in range(n)]), boxes, u.copy(), "t", image_size=(200, 150))
        checked.append(CheckedSequence(seq, list(seq.frames), u.copy(), (200, 150)))
    plan = plan_split(checked, cfg, np.random.default_rng(seed), "train", num_samples=None)
    per_seq = {}
    for s in plan.samples:
        cs = next(c for c in checked if c.seq.name == s.sequence)
        idx = [c.frame_index for c in s.crops]
        assert cs.usable[idx].all()  # only usable (visible, valid) frames
        assert all(a < b for a, b in zip(idx, idx[1:]))  # template, (memory), search in time order
        assert idx[-1] - idx[0] <= max_gap
        if triples:
            assert idx[2] - idx[1] <= mem_gap
        for c in s.crops:
            assert c.window.out_side == 336 and c.frame == str(cs.frames[c.frame_index])
        per_seq[s.sequence] = per_seq.get(s.sequence, 0) + 1
        if not balanced:
            assert per_seq[s.sequence] <= 3
        else:
            assert per_seq[s.sequence] <= cfg.cap_per_sequence
    # every sequence that has candidates contributes when not balancing; the count is as promised
    n_cand = [len(search_candidates(c.usable, cfg)) for c in checked]
    if not balanced:
        assert len(plan.samples) == sum(min(3, k) for k in n_cand)
    else:
        assert len(plan.samples) == min(sum(3 for k in n_cand if k), sum(min(k, cfg.cap_per_sequence) for k in n_cand))
    assert plan.candidates == sum(n_cand)


def test_planning_is_reproducible_and_seed_dependent():
    rng = np.random.default_rng(0)
    checked = []
    for k in range(4):
        n = 30
        boxes = np.column_stack([rng.uniform(0, 50, n), rng.uniform(0, 50, n), rng.uniform(5, 60, n), rng.uniform(5, 60, n)])
        seq = Sequence(f"s{k}", P([f"{i + 1}.jpg" for i in range(n)]), boxes, np.ones(n, bool), "t", image_size=(200, 150))
        checked.append(CheckedSequence(seq, list(seq.frames), np.ones(n, bool), (200, 150)))
    cfg = get_profile("r1track")
    a = plan_split(checked, cfg, np.random.default_rng(1), "train", num_samples=None).samples
    b = plan_split(checked, cfg, np.random.default_rng(1), "train", num_samples=None).samples
    c = plan_split(checked, cfg, np.random.default_rng(2), "train", num_samples=None).samples
    assert a == b and a != c
    capped = plan_split(checked, cfg, np.random.default_rng(1), "train", num_samples=5).samples
    assert len(capped) == 5
    train, val = split_sequences(checked, 0.25, np.random.default_rng(0))
    assert len(val) == 1 and len(train) == 3 and not {c.key for c in train} & {c.key for c in val}
    assert split_sequences(checked[:1], 0.5, np.random.default_rng(0)) == (checked[:1], [])


def test_balance_weights_even_out_each_dimension():
    aspect = np.array([0.1] * 90 + [1.2] * 10)
    scale = np.array([-2.5] * 50 + [-1.5] * 40 + [-2.5] * 10)
    w = balance_weights({"aspect": aspect, "scale": scale}, ["aspect"])
    assert np.isclose(w[:90].sum(), w[90:].sum())  # each occupied aspect bin, the same total weight
    w2 = balance_weights({"aspect": aspect, "scale": scale}, ["aspect", "scale"])
    assert (w2 > 0).all()
    assert np.isclose(w2[90:].sum() / w2.sum(), (10 / 10 / 60) / ((50 / 90 / 60) + (40 / 90 / 40) + (10 / 10 / 60)))
    assert (balance_weights({"aspect": aspect}, []) == 1).all()


def test_bins_and_labels():
    assert bin_index(np.array([-9.0, -1.5, 0.0, 0.49, 9.0]), "aspect").tolist() == [0, 1, 4, 4, 7]
    assert histogram(np.array([-9.0, 0.2, 0.3]), "aspect") == [1, 0, 0, 0, 2, 0, 0, 0]
    labels = bin_labels("scale")
    assert len(labels) == len(EDGES["scale"]) + 1 and labels[0] == "<-5" and labels[-1] == ">=-1"


def test_profile_validation():
    cfg = get_profile("r1track")
    with pytest.raises(ValueError, match="280 or 308"):
        cfg.replace(crop_sides=(300,))
    with pytest.raises(ValueError, match="112..504"):
        cfg.replace(crop_sides=(532,))
    with pytest.raises(ValueError, match="takes 2 images"):
        cfg.replace(n_images=3)
    with pytest.raises(ValueError, match="unknown balance"):
        cfg.replace(balance=("colour",))
    with pytest.raises(ValueError, match="temporal order"):
        get_profile("r1track-5k").replace(n_images=3, prompt="r1track-mem-v1")
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("r1track-100k")
    assert SUPPORTED_CROP_SIDES[0] == 112 and SUPPORTED_CROP_SIDES[-1] == 504
    assert all(s % 28 == 0 for s in SUPPORTED_CROP_SIDES)
    ref = get_profile("r1track-5k")
    assert (ref.template_factor, ref.search_factor, ref.crop_sides, ref.prompt) == ((2.0, 8.0), (2.0, 8.0), (336,), "r1track-v0")
    assert ref.template_center_jitter == ref.search_center_jitter == 0.2 and not ref.ordered and ref.max_gap is None


def test_default_profile_crops_like_the_tracker():
    from r1track.tracker import TrackerParams

    cfg = get_profile("r1track")
    t = TrackerParams()
    assert cfg.template_factor == (t.template_factor, t.template_factor) and cfg.template_center_jitter == 0
    assert cfg.search_factor == (t.search_factor, t.search_factor)
    assert t.crop_size in cfg.crop_sides and cfg.prompt == t.prompt_version
