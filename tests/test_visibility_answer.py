"""The absent answer: parser, structured-output regex, prompt, and the reward's visibility rule.

Reward expectations are worked out by hand from the documented rule (r1track.reward, "Visibility"):
correct absent -> absent_reward (+ format_weight * format + length term), any visibility mismatch or
unreadable reply -> failure_score; a visible target with a box keeps R1-Track's shaping
(GIoU 1 >= 0.95 -> 1 + 0.5).
"""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from budget import examples

from r1track.integrations.easyr1 import compute_score as easyr1_compute_score
from r1track.integrations.verl import compute_score as verl_compute_score
from r1track.models import family_names, get_family
from r1track.parse import parse_reply
from r1track.prompts import ABSENT_ANSWER, get_prompt, render_target_answer, render_text
from r1track.reward import SCORE_KEYS, Gate, RewardOptions, failed_gate, score_reply

BOX = "[0,0,10,10]"


def think(answer: str) -> str:
    return f"<think>the target is gone behind the wall</think><answer>{answer}</answer>"


@pytest.mark.parametrize("reply", ["[]", " [ ]\n", "```json\n[]\n```", think("[]"), "<answer>[]</answer>"])
def test_absent_answer_reads_as_not_visible(reply):
    parsed = parse_reply(reply)
    assert parsed.visible is False and parsed.absent
    assert parsed.box_xyxy_model is None and parsed.reason == "absent"


@pytest.mark.parametrize("reply", ["[[]]", "no [] here", "[{}]", "", "{}"])
def test_non_absent_non_boxes_stay_failures(reply):
    parsed = parse_reply(reply)
    assert parsed.visible is True and parsed.box_xyxy_model is None and parsed.reason != "absent"


def test_box_after_an_empty_list_is_a_box():
    parsed = parse_reply("[] then [1,2,30,40]")
    assert parsed.visible and tuple(parsed.box_xyxy_model) == (1, 2, 30, 40)


@pytest.mark.parametrize("family", family_names())
def test_regex_admits_the_absent_answer_only_when_asked(family):
    fam = get_family(family)
    side = fam.default_crop_side
    with_absent = fam.answer_regex(side, absent=True)
    plain = fam.answer_regex(side)
    assert re.fullmatch(with_absent, "[]") and re.fullmatch(with_absent, "[1,2,30,40]")
    assert not re.fullmatch(plain, "[]") and re.fullmatch(plain, "[1,2,30,40]")
    for bad in ("[ ]", "[1,2,3]", "[]]", "[][]"):
        assert not re.fullmatch(with_absent, bad)


def test_visibility_prompt_mentions_the_absent_answer():
    p = get_prompt("r1track-vis-v1")
    assert p.absent and not get_prompt("r1track-v1").absent
    text = render_text("r1track-vis-v1", think=False, boxes_xyxy_model=[(1, 2, 3, 4)])
    assert text.startswith("<image><image>") and "or [] if the target is not visible" in text
    assert render_target_answer(None) == ABSENT_ANSWER == "[]"
    assert render_target_answer((1.4, 2.6, 30, 40)) == "[1,3,30,40]"


# (ground truth, reply, options, expected overall, expected gate or None, expected iou)
NO_THINK = RewardOptions()
THINK = RewardOptions(think=True)
TABLE = [
    # visible target
    (BOX, BOX, NO_THINK, 1.5, None, 1.0),  # exact box: g = 1 -> 1 + 0.5
    (BOX, "[]", NO_THINK, -1.0, Gate.VISIBILITY, 0.0),  # says absent, target visible
    (BOX, "garbage", NO_THINK, -1.0, Gate.NO_BOX, 0.0),
    (BOX, think(BOX), THINK, 1.5 + 0.05, None, 1.0),  # + format bonus 0.05 (token count unknown)
    (BOX, think("[]"), THINK, -1.0, Gate.VISIBILITY, 0.0),
    # absent target
    ("[]", "[]", NO_THINK, 1.0, None, 1.0),  # absent_reward 1.0, format weight 0 in no-think
    ("[]", BOX, NO_THINK, -1.0, Gate.VISIBILITY, 0.0),  # a box where there is none
    ("[]", "garbage", NO_THINK, -1.0, Gate.NO_BOX, 0.0),
    ("[]", "```\n[]\n```", NO_THINK, -1.0, Gate.FORMAT, 1.0),  # strict: only the bare [] is the form
    ("[]", "```\n[]\n```", RewardOptions(strict=False), 1.0, None, 1.0),
    ("[]", think("[]"), THINK, 1.0 + 0.05, None, 1.0),
    ("[]", think(BOX), THINK, -1.0, Gate.VISIBILITY, 0.0),
    ("[]", "[]", RewardOptions(absent_reward=0.25, failure_score=-2.0), 0.25, None, 1.0),
    ("[]", BOX, RewardOptions(absent_reward=0.25, failure_score=-2.0), -2.0, Gate.VISIBILITY, 0.0),
    # unreadable ground truth stays a ground-truth failure, whatever the reply
    ("[0,0,0,0]", "[]", NO_THINK, -1.0, Gate.GROUND_TRUTH, 0.0),
]


@pytest.mark.parametrize("gt,reply,options,overall,gate,iou", TABLE)
def test_reward_visibility_table(gt, reply, options, overall, gate, iou):
    scores = score_reply(reply, gt, None, options)
    assert tuple(scores) == SCORE_KEYS
    assert all(isinstance(v, float) and math.isfinite(v) for v in scores.values())
    assert scores["overall"] == pytest.approx(overall)
    assert scores["iou"] == pytest.approx(iou)
    parsed = parse_reply(reply)
    from r1track.reward import format_term, ground_truth_absent, read_ground_truth, token_count

    gt_absent = ground_truth_absent(gt)
    got = failed_gate(None if gt_absent else read_ground_truth(gt), parsed.box_xyxy_model,
                      format_term(reply, parsed, options.think), None, options,
                      gt_absent=gt_absent, reply_absent=parsed.absent)
    assert got == gate


def test_think_absent_too_short_is_gated():
    assert score_reply(think("[]"), "[]", 50, RewardOptions(think=True))["overall"] == -1.0
    # 480 tokens: 1 + 0.05 + 0.1 * (448 - 480) / 64 = 1.0
    assert score_reply(think("[]"), "[]", 480, RewardOptions(think=True))["overall"] == pytest.approx(1.0)


def test_ground_truth_as_empty_list_or_bytes():
    assert score_reply("[]", [], None, NO_THINK)["overall"] == 1.0
    assert score_reply("[]", b"[]", None, NO_THINK)["overall"] == 1.0


def test_trainer_adapters_score_absent_and_visible():
    batch = [{"response": "[]", "ground_truth": "[]", "response_length": 2},
             {"response": BOX, "ground_truth": "[]", "response_length": 8},
             {"response": BOX, "ground_truth": BOX, "response_length": 8}]
    out = easyr1_compute_score(batch, absent_reward="0.5")
    assert [o["overall"] for o in out] == [0.5, -1.0, 1.5]
    v = verl_compute_score("r1track", "[]", "[]", absent_reward="0.5")
    assert v["score"] == 0.5 and v["acc"] == 1.0
    assert verl_compute_score("r1track", "[]", BOX)["score"] == -1.0


@given(st.text(max_size=40), st.sampled_from(["[]", BOX, "[5,5,20,20]"]), st.booleans())
@settings(max_examples=examples(200))
def test_reward_total_with_absent_ground_truth(reply, gt, think_mode):
    scores = score_reply(reply, gt, None, RewardOptions(think=think_mode))
    assert tuple(scores) == SCORE_KEYS and all(math.isfinite(v) for v in scores.values())


@given(st.one_of(st.none(), st.tuples(*[st.integers(0, 999)] * 4)), st.booleans())
@settings(max_examples=examples(300))
def test_target_answer_round_trips_through_the_parser(box, in_think):
    text = render_target_answer(box)
    parsed = parse_reply(think(text) if in_think else text)
    if box is None:
        assert parsed.absent and parsed.box_xyxy_model is None
    else:
        assert parsed.visible and parsed.ok
        x1, y1, x2, y2 = box
        assert tuple(parsed.box_xyxy_model) == (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
