"""r1track.reward: parity with R1-Track's reward formulas, the other shapings, gates, options, input forms.

Expected values are worked out by hand from R1-Track's formulas (EasyR1/verl/utils/reward_score/track.py and
track_not_think.py in Wangbiao2/R1-Track), in the comments next to each case -- never produced by our code:

    GIoU = IoU - (C - U) / C    (U: union area, C: area of the smallest enclosing box)
    shaped = 0 if 0 < g < 0.4;  g + 0.2 if 0.75 < g < 0.95;  g + 0.5 if g >= 0.95;  g otherwise
    no-think: overall = shaped                               (json.loads of the whole reply, else -1)
    think:    overall = shaped + 0.05 + 0.1 * length          (strict tags, L >= 128, json.loads of <answer>)
              length = (448 - L) / 64 if L > 448 else 0
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from budget import examples

from r1track.integrations.easyr1 import compute_score as easyr1_compute_score
from r1track.integrations.reward_kwargs import reward_options
from r1track.reward import SCORE_KEYS, RewardOptions, Shaping, read_ground_truth, score_reply, shape_r1track

G = "[0,0,10,10]"  # ground truth used by most cases: area 100


def think(answer: str, thought: str = "the target moved a little to the right") -> str:
    return f"<think>{thought}</think><answer>{answer}</answer>"


# (reply, expected overall, expected raw GIoU as the reference reports it)
NO_THINK_ACCEPTED = [
    ("[0,0,10,10]", 1.0 + 0.5, 1.0),  # identical: g = 1 >= 0.95 -> +0.5
    ("[0,0,10,20]", 0.5, 0.5),  # I 100, U 200, C 200: g = .5 in [0.4, 0.75] -> unchanged
    ("[0,0,10,30]", 0.0, 1 / 3),  # I 100, U 300, C 300: g = 1/3 in (0, 0.4) -> 0 (dead zone)
    ("[0,0,10,12]", 100 / 120 + 0.2, 100 / 120),  # g = 5/6 in (0.75, 0.95) -> +0.2
    ("[0,0,10,10.5]", 100 / 105 + 0.5, 100 / 105),  # g = .952 >= 0.95 -> +0.5
    ("[20,0,30,10]", -1 / 3, -1 / 3),  # I 0, U 200, C 300: g = -(300-200)/300
    ("[10,0,20,10]", 0.0, 0.0),  # touching: I 0, U 200, C 200: g = 0, not in (0, 0.4)
    ("[0,0,10,25]", 0.4, 0.4),  # g = 100/250 = 0.4 exactly: not in (0, 0.4) -> unchanged
    ("[0,0,10,7.5]", 0.75, 0.75),  # I 75, U 100, C 100: g = 0.75 exactly: not in (0.75, 0.95)
    ("[0,0,10,9.5]", 0.95 + 0.5, 0.95),  # g = 0.95 exactly: >= 0.95 -> +0.5
    (" [0, 0, 10.0, 20.0]\n", 0.5, 0.5),  # floats, JSON whitespace around: json.loads accepts
    ("[5,5,5,5]", 0.0, 0.0),  # degenerate inside: I 0, U 100, C 100 -> 0
    ("[30,30,30,30]", -800 / 900, -800 / 900),  # degenerate outside: U 100, C 900
    ("[100,100,110,110]", -(12100 - 200) / 12100, -(12100 - 200) / 12100),  # far: U 200, C 110*110
    ("[-10,-10,0,0]", -0.5, -0.5),  # I 0, U 200, C 400
]

NO_THINK_REJECTED = [  # the reference gives -1 to every one of these
    "",
    "   ",
    "The box is [0,0,10,10]",  # json.loads of the whole reply fails
    "[0,0,10,10] done",
    "```json\n[0,0,10,10]\n```",
    '{"bbox_2d": [0,0,10,10]}',  # dict: box1[0] raises KeyError inside the try -> -1
    '[{"bbox_2d": [0,0,10,10], "label": "car"}]',  # max(dict, 0) raises TypeError -> -1
    "[[0,0,10,10]]",  # max(list, 0) -> TypeError
    "[0,0,10]",  # IndexError
    "[012,0,10,10]",  # leading zeros are not JSON
    '["0","0","10","10"]',  # strings: TypeError
    "<answer>[0,0,10,10]</answer>",
    "(0,0),(10,10)",
    think("[0,0,10,10]"),
]


@pytest.mark.parametrize("reply,overall,giou", NO_THINK_ACCEPTED)
def test_no_think_parity(reply, overall, giou):
    s = score_reply(reply, G, 20)
    assert s["overall"] == pytest.approx(overall, abs=1e-12)
    assert s["giou"] == pytest.approx(giou, abs=1e-12)
    assert s["format"] == 1.0 and s["parsed"] == 1.0 and s["length"] == 0.0


@pytest.mark.parametrize("reply", NO_THINK_REJECTED)
def test_no_think_rejections_match_the_reference(reply):
    assert score_reply(reply, G, 20)["overall"] == -1.0


# (answer text, response length in tokens, expected overall)
THINK_ACCEPTED = [
    ("[0,0,10,10]", 200, 1.5 + 0.05),  # shaped 1.5, +0.05 format, no length term
    ("[0,0,10,10]", 128, 1.5 + 0.05),  # 128 is not < 128
    ("[0,0,10,10]", 448, 1.5 + 0.05),  # 448 is not > 448
    ("[0,0,10,10]", 480, 1.5 + 0.05 + 0.1 * (448 - 480) / 64),  # length -0.5
    ("[0,0,10,10]", 512, 1.5 + 0.05 - 0.1),  # length -1
    ("[0,0,10,30]", 300, 0.0 + 0.05),  # dead zone
    (" [0, 0, 10, 20] ", 300, 0.5 + 0.05),  # json.loads tolerates the spaces
    ("[20,0,30,10]", 460, -1 / 3 + 0.05 + 0.1 * (448 - 460) / 64),
]


@pytest.mark.parametrize("answer,n_tokens,overall", THINK_ACCEPTED)
def test_think_parity(answer, n_tokens, overall):
    s = score_reply(think(answer), G, n_tokens, think=True)
    assert s["overall"] == pytest.approx(overall, abs=1e-12)
    assert s["format"] == 1.0
    expected_length = (448 - n_tokens) / 64 if n_tokens > 448 else 0.0
    assert s["length"] == pytest.approx(expected_length, abs=1e-12)


def test_think_allows_text_between_think_and_answer():
    reply = "<think>a</think>\nSo the answer is:\n<answer>[0,0,10,10]</answer>"
    assert score_reply(reply, G, 200, think=True)["overall"] == pytest.approx(1.55)


@pytest.mark.parametrize(
    "reply,n_tokens",
    [
        (think("[0,0,10,10]"), 127),  # too short
        ("<answer>[0,0,10,10]</answer>", 200),  # no think block
        (think("[0,0,10,10]") + "\n", 200),  # anything after </answer>
        (" " + think("[0,0,10,10]"), 200),  # anything before <think>
        ("<think>a<think>b</think></think><answer>[0,0,10,10]</answer>", 200),  # nested
        (think("[0,0,10,10]") + "<answer>[0,0,10,10]</answer>", 200),  # repeated answer
        ("<think>a</think><think>b</think><answer>[0,0,10,10]</answer>", 200),  # repeated think
        (think("The box is [0,0,10,10]"), 200),  # json.loads of the answer fails
        (think('{"bbox_2d": [0,0,10,10]}'), 200),
        (think("[012,0,10,10]"), 200),
        ("[0,0,10,10]", 200),
        ("", 200),
    ],
)
def test_think_rejections_match_the_reference(reply, n_tokens):
    assert score_reply(reply, G, n_tokens, think=True)["overall"] == -1.0


@pytest.mark.parametrize(
    "reply,reference_value",
    [
        # Documented deviations: the reference value (worked out from its code) and why we give -1 instead.
        ("[10,10,0,0]", 1.5),  # swapped: areas (0-10)(0-10)=100, I 0, U 200, C 100 -> g = 1 -> 1.5: a reward hack
        ("[0,0,10,10,99]", 1.5),  # the reference silently used the first four values
        ("[true,0,10,10]", 0.9 + 0.2),  # True == 1: I 90, U 100, C 100 -> g .9 -> +0.2
        ("[NaN,0,10,10]", math.nan),  # NaN propagated into the reward
        # measured with R1-Track's track_compute_score_not_think against [100,100,120,120] (docs/sft_grpo.md)
        (("[300,300,10,10]", "[100,100,120,120]"), 210.75),  # swapped: unbounded above, grows with the area
        (("[1000,1000,0,0]", "[100,100,120,120]"), 2500.5),
        (("[300,100,10,120]", "[100,100,120,120]"), -14.5),  # only x swapped: unbounded below
        (("[100,100,Infinity,120]", "[100,100,120,120]"), math.nan),
        (("[Infinity,100,100,120]", "[100,100,120,120]"), -math.inf),
        (("[Infinity,Infinity,0,0]", "[100,100,120,120]"), math.inf),
    ],
)
def test_deviations_from_the_reference_score_minus_one(reply, reference_value):
    reply, gt = reply if isinstance(reply, tuple) else (reply, G)
    s = score_reply(reply, gt)
    assert s == score_reply(reply, gt, 200) and score_reply(f"<think>a</think><answer>{reply}</answer>", gt, 200,
                                                            think=True)["overall"] == -1.0
    assert s["overall"] == -1.0
    assert s["overall"] != reference_value


def test_degenerate_ground_truth_is_invalid():
    # The reference gave g = 0 here (I 0, U 100, C 100) and divided by zero for a point prediction.
    for reply in ("[0,0,10,10]", "[5,5,5,5]"):
        assert score_reply(reply, "[5,5,5,5]")["overall"] == -1.0
    assert read_ground_truth("[5,5,5,5]") is None


# -- an independent transcription of the reference formula, for random boxes where it is well-defined --------


def reference_giou(p, g):
    ix = max(0, min(p[2], g[2]) - max(p[0], g[0]))
    iy = max(0, min(p[3], g[3]) - max(p[1], g[1]))
    inter = ix * iy
    union = (p[2] - p[0]) * (p[3] - p[1]) + (g[2] - g[0]) * (g[3] - g[1]) - inter
    iou = inter / union if union != 0 else 0.0
    c = (max(p[2], g[2]) - min(p[0], g[0])) * (max(p[3], g[3]) - min(p[1], g[1]))
    return iou - (c - union) / c


def reference_shape(g):
    if 0 < g < 0.4:
        return 0.0
    if 0.75 < g < 0.95:
        return g + 0.2
    if g >= 0.95:
        return g + 0.5
    return g


def ordered_box(min_size):
    return st.tuples(
        st.integers(-50, 500), st.integers(-50, 500), st.integers(min_size, 300), st.integers(min_size, 300)
    ).map(lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])


@given(ordered_box(0), ordered_box(1), st.integers(0, 600), st.booleans())
@settings(max_examples=examples(2000), deadline=None)
def test_r1track_shaping_equals_the_reference_formula(pred, gt, n_tokens, thinking):
    expected_g = reference_giou(pred, gt)
    expected = reference_shape(expected_g)
    if thinking:
        reply = think(json.dumps(pred))
        if n_tokens < 128:
            expected = -1.0
        else:
            expected += 0.05 + 0.1 * ((448 - n_tokens) / 64 if n_tokens > 448 else 0.0)
        s = score_reply(reply, json.dumps(gt), n_tokens, think=True)
    else:
        s = score_reply(json.dumps(pred), json.dumps(gt), n_tokens)
    # GIoU thresholds are strict: keep clear of float ties between two ways of computing the same number.
    assume(all(abs(expected_g - t) > 1e-9 for t in (0.0, 0.4, 0.75, 0.95)))
    assert s["overall"] == pytest.approx(expected, abs=1e-9)
    assert s["giou"] == pytest.approx(expected_g, abs=1e-9)


def test_shape_r1track_table():
    for g, out in [(-1.0, -1.0), (-0.2, -0.2), (0.0, 0.0), (1e-9, 0.0), (0.39, 0.0), (0.4, 0.4), (0.6, 0.6),
                   (0.75, 0.75), (0.8, 1.0), (0.95, 1.45), (1.0, 1.5), (float("nan"), -1.0)]:
        assert shape_r1track(g) == pytest.approx(out), g


# -- the other shapings ---------------------------------------------------------------------------------------


def test_giou_shaping_is_continuous_through_the_dead_zone():
    # Pred [0,0,10,h] for h > 10 against G: I 100, U = C = 10h -> GIoU = IoU = 10/h.
    values = [score_reply(f"[0,0,10,{h}]", G, shaping="giou")["overall"] for h in (12, 20, 30, 50, 100)]
    assert values == pytest.approx([10 / 12, 0.5, 1 / 3, 0.2, 0.1])
    dead = [score_reply(f"[0,0,10,{h}]", G)["overall"] for h in (30, 50, 100)]
    assert dead == [0.0, 0.0, 0.0]  # r1track: no difference between these three boxes


def test_iou_shaping_and_giou_shaping_values():
    s = score_reply("[20,0,30,10]", G, shaping="iou")
    assert s["overall"] == 0.0 and s["accuracy"] == 0.0
    s = score_reply("[20,0,30,10]", G, shaping="giou")
    assert s["overall"] == pytest.approx(-1 / 3)
    s = score_reply("[0,0,10,20]", G, shaping="iou")
    assert s["overall"] == pytest.approx(0.5)


def test_think_mode_weights_apply_to_every_shaping():
    s = score_reply(think("[0,0,10,20]"), G, 480, think=True, shaping="iou")
    assert s["overall"] == pytest.approx(0.5 + 0.05 + 0.1 * (448 - 480) / 64)
    s = score_reply(think("[0,0,10,20]"), G, 480, think=True, shaping="giou", format_weight=0.2, length_weight=0.5)
    assert s["overall"] == pytest.approx(0.5 + 0.2 + 0.5 * (448 - 480) / 64)


def test_lenient_reading_scores_what_the_parser_reads():
    for reply in ("The box is [0,0,10,20].", '```json\n[{"bbox_2d": [0,0,10,20], "label": "car"}]\n```',
                  "[0,20,10,0]", "<answer>[0,0,10,20]</answer>"):
        s = score_reply(reply, G, strict=False, format_weight=0.1)
        assert s["format"] == 0.0 and s["parsed"] == 1.0
        assert s["overall"] == pytest.approx(0.5), reply  # format only counts through its weight
    assert score_reply("[0,0,10,20]", G, strict=False, format_weight=0.1)["overall"] == pytest.approx(0.6)
    assert score_reply("no box", G, strict=False)["overall"] == -1.0


def test_metrics_describe_the_reply_even_when_a_gate_fails():
    s = score_reply("The box is [0,0,10,20]", G)
    assert s["overall"] == -1.0 and s["parsed"] == 1.0 and s["format"] == 0.0
    assert s["iou"] == pytest.approx(0.5) and s["giou"] == pytest.approx(0.5)
    s = score_reply("nothing", G)
    assert (s["giou"], s["iou"], s["parsed"], s["accuracy"]) == (-1.0, 0.0, 0.0, -1.0)


def test_failure_score_option():
    assert score_reply("nothing", G, failure_score=-2)["overall"] == -2.0
    assert score_reply("nothing", G, shaping="iou", failure_score=0)["overall"] == 0.0


def test_unknown_token_count_skips_the_length_terms():
    for n in (None, float("nan"), float("inf"), -5, "300", True, object()):
        s = score_reply(think("[0,0,10,10]"), G, n, think=True)
        assert s["overall"] == pytest.approx(1.55), n
        assert s["length"] == 0.0
    assert score_reply(think("[0,0,10,10]"), G, np.int64(500), think=True)["length"] == pytest.approx(-52 / 64)


def test_min_length_option():
    assert score_reply(think("[0,0,10,10]"), G, 20, think=True, min_length=0)["overall"] == pytest.approx(1.55)
    assert score_reply("[0,0,10,10]", G, 0)["overall"] == 1.5  # no-think has no length gate


# -- ground truth forms ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "gt",
    ["[0,0,10,20]", " [0, 0, 10, 20] ", "[0.0,0.0,10.0,20.0]", b"[0,0,10,20]", [0, 0, 10, 20], (0, 0, 10, 20),
     np.array([0, 0, 10, 20]), np.array([0.0, 0.0, 10.0, 20.0], dtype=np.float32), [10, 20, 0, 0],
     '{"bbox_2d": [0,0,10,20]}'],
)
def test_ground_truth_forms(gt):
    assert tuple(read_ground_truth(gt)) == (0, 0, 10, 20)
    assert score_reply("[0,0,10,10]", gt)["overall"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "gt", ["", "nothing", None, 5, [1, 2, 3], [0, 0, float("nan"), 1], "[0,0,0,10]", {"box": [0, 0, 1, 1]},
           np.array([[0, 0], [10, 10]]).T.tolist()[0], np.array(["a", "b", "c", "d"]), [0, 0, 1e400, 1]],
)
def test_bad_ground_truth_gives_the_failure_score(gt):
    assert read_ground_truth(gt) is None
    s = score_reply("[0,0,10,10]", gt)
    assert s["overall"] == -1.0 and set(s) == set(SCORE_KEYS)


# -- options ----------------------------------------------------------------------------------------------------


def test_options_defaults_follow_think_mode():
    c = RewardOptions()
    assert (c.think, c.shaping, c.strict, c.format_weight, c.min_length) == (False, Shaping.R1TRACK, True, 0.0, 0.0)
    c = RewardOptions(think=True)
    assert (c.format_weight, c.min_length, c.length_weight, c.length_penalty_start, c.max_length) == (
        0.05, 128.0, 0.1, 448.0, 512.0)


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"think": "yes"}, "think"),
        ({"shaping": "dice"}, "shaping"),
        ({"format_weight": "0.2"}, "format_weight"),
        ({"strict": 1}, "strict"),
    ],
)
def test_typed_options_refuse_untyped_values(fields, message):
    with pytest.raises(ValueError, match=message):
        RewardOptions(**fields)


def test_trainer_kwargs_are_read_into_typed_options():
    c = reward_options({"mode": "No_Think", "shaping": "GIoU", "strict": "false", "format_weight": "0.2"})
    assert (c.think, c.shaping, c.strict, c.format_weight) == (False, Shaping.GIOU, False, 0.2)
    assert reward_options({"mode": "think"}) == RewardOptions(think=True)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"mode": "thinking"}, "mode"),
        ({"shaping": "dice"}, "shaping"),
        ({"format_weight": float("nan")}, "format_weight"),
        ({"length_weight": "heavy"}, "length_weight"),
        ({"min_length": -1}, "min_length"),
        ({"strict": "maybe"}, "strict"),
        ({"max_length": 400}, "max_length"),
        ({"failure_score": True}, "failure_score"),
        ({"weight": 1}, "unknown reward option"),
        ({"think": True}, "unknown reward option"),
    ],
)
def test_bad_trainer_options_raise_naming_the_option(kwargs, message):
    with pytest.raises(ValueError, match=message):
        reward_options(kwargs)


def test_unknown_options_can_be_ignored():
    c = reward_options({"mode": "think", "reward_router_address": None}, ignore_unknown=True)
    assert c.think is True


def test_batch_keeps_order_and_handles_bad_items():
    items = [
        {"response": "[0,0,10,10]", "response_length": 5, "ground_truth": G},
        {"response": "[0,0,10,20]", "response_length": 5, "ground_truth": G},
        {"response_length": 5},
        "not a dict",
        None,
    ]
    out = easyr1_compute_score(items)
    assert [s["overall"] for s in out] == pytest.approx([1.5, 0.5, -1.0, -1.0, -1.0])
    assert all(list(s) == list(SCORE_KEYS) for s in out)
    assert easyr1_compute_score([]) == []


def test_answer_tag_mentioned_inside_think_reads_the_last_complete_block():
    # R1-Track's think reward on this reply (worked out from its formulas): strict tags pass (the think block
    # may mention "<answer>"), its answer regex reads "[291,92,330,210]" = the ground truth, g = 1 -> 1.5,
    # + 0.05 format, length 200 tokens -> no penalty: 1.55.
    reply = "<think>I will put the box in <answer> tags</think><answer>[291,92,330,210]</answer>"
    s = score_reply(reply, "[291,92,330,210]", 200, think=True, shaping=Shaping.R1TRACK)
    assert s["overall"] == pytest.approx(1.55)


@pytest.mark.parametrize("answer", ["null", "[]", "[[0,0,10,10]]", '[{"bbox_2d": [0,0,10,10]}]'])
def test_think_json_that_is_not_one_box_fails_the_gate(answer):
    # documented difference: the reference scored -1 + 0.05 (+ length term) = -0.95 at 200 tokens
    s = score_reply(think(answer), G, 200, think=True)
    assert s["overall"] == -1.0
