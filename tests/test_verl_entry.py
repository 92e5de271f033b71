"""r1track.integrations.verl: the function verl's NaiveRewardManager calls (keyword arguments, per sample).

The contract (PyPI verl 0.9.1, verl/experimental/reward_loop/reward_manager/naive.py and
verl/trainer/ppo/reward.py; docs/upstream.md, verl): called as
``compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=..., **router_kwargs)`` through
``partial(_call_with_kwargs, fn, reward_kwargs)``, which merges the config's reward_kwargs over the call's kwargs;
a dict result must hold ``score`` and the same keys for every sample. The real loader and manager run in
tests/upstream/test_verl_reward.py.
"""

from __future__ import annotations

import json
import math

import pytest

from r1track.integrations.verl import SCORE_KEYS, compute_score


def call_like_verl(reward_kwargs: dict, **call):
    merged = {**call.pop("kw", {}), **reward_kwargs}  # verl's _call_with_kwargs: config kwargs win
    return compute_score(**call, **merged)


def test_keyword_call_fixed_keys_and_values():
    s = call_like_verl({}, data_source="r1track", solution_str="[0,0,10,20]", ground_truth="[0,0,10,10]", extra_info={})
    assert list(s) == list(SCORE_KEYS)
    # I 100, U 200, C 200 -> IoU = GIoU = 0.5, R1-Track shaping leaves 0.5 unchanged
    assert s["score"] == pytest.approx(0.5) and s["acc"] == pytest.approx(0.5) and s["iou"] == pytest.approx(0.5)
    bad = call_like_verl({}, data_source="r1track", solution_str="no idea", ground_truth="[0,0,10,10]", extra_info=None)
    assert list(bad) == list(SCORE_KEYS) and bad["score"] == -1.0 and bad["acc"] == 0.0
    assert all(isinstance(v, float) and math.isfinite(v) for v in {**s, **bad}.values())


def test_reward_kwargs_choose_mode_and_shaping_and_router_arguments_are_ignored():
    reply = "<think>moved left</think><answer>[0,0,10,30]</answer>"
    s = call_like_verl(
        {"mode": "think", "shaping": "giou"},
        data_source="r1track", solution_str=reply, ground_truth=[0, 0, 10, 10], extra_info={"index": 3},
        kw={"reward_router_address": "127.0.0.1:1", "reward_model_tokenizer": object()},
    )
    # GIoU = 100/300; think mode adds 0.05 for the strict format; no token count -> no length terms
    assert s["score"] == pytest.approx(1 / 3 + 0.05)
    assert s["length"] == 0.0


def test_response_length_keyword_enables_the_length_terms():
    reply = "<think>x</think><answer>[0,0,10,10]</answer>"
    s = compute_score("r1track", reply, "[0,0,10,10]", {}, mode="think", response_length=480)
    assert s["score"] == pytest.approx(1.5 + 0.05 + 0.1 * (448 - 480) / 64)
    assert compute_score("r1track", reply, "[0,0,10,10]", {}, mode="think", response_length=100)["score"] == -1.0


def test_ground_truth_as_stored_in_parquet():
    for gt in ("[0,0,10,10]", [0, 0, 10, 10], json.dumps([0.0, 0.0, 10.0, 10.0])):
        assert compute_score("r1track", "[0,0,10,10]", gt)["score"] == 1.5


def test_bad_option_values_raise():
    with pytest.raises(ValueError, match="mode"):
        compute_score("r1track", "[0,0,10,10]", "[0,0,10,10]", mode="both")
