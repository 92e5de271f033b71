import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from budget import examples

from r1track.parse import is_bare_box_json, parse_reply, strict_think_format

CASES = [
    ("[10,20,30,40]", (10, 20, 30, 40), "json-list"),
    ("[10, 20, 30, 40]", (10, 20, 30, 40), "json-list"),
    (" [ 10.5 ,20.25, 30 , 40.0 ] \n", (10.5, 20.25, 30, 40), "json-list"),
    ("[[10,20,30,40]]", (10, 20, 30, 40), "json-list"),
    ('[{"bbox_2d": [10, 20, 30, 40], "label": "car"}]', (10, 20, 30, 40), "bbox_2d"),
    ('{"bbox_2d": [10, 20, 30, 40]}', (10, 20, 30, 40), "bbox_2d"),
    ('```json\n[{"bbox_2d": [10, 20, 30, 40], "label": "car"}]\n```', (10, 20, 30, 40), "bbox_2d"),
    ("```\n[10,20,30,40]\n```", (10, 20, 30, 40), "json-list"),
    ("<answer>[10,20,30,40]</answer>", (10, 20, 30, 40), "json-list"),
    ("<think>the box [1,1,2,2] moved</think><answer> [10,20,30,40] </answer>", (10, 20, 30, 40), "json-list"),
    ("(10,20),(30,40)", (10, 20, 30, 40), "points"),
    ("The target is at (10, 20), (30, 40).", (10, 20, 30, 40), "points"),
    ("The target is at [10,20,30,40].", (10, 20, 30, 40), "list"),
    ("[012,044,130,099]", (12, 44, 130, 99), "list"),  # regex-constrained decoding emits leading zeros
    ('[{"bbox_2d": [10, 20, 30, 40], "label": "car"', (10, 20, 30, 40), "bbox_2d"),  # truncated JSON
    ("<think>first [1,1,2,2]</think> then [10,20,30,40]", (10, 20, 30, 40), "list"),
]


@pytest.mark.parametrize("reply,box,source", CASES)
def test_reads_every_documented_format(reply, box, source):
    r = parse_reply(reply)
    assert r.ok, r.reason
    assert tuple(r.box_xyxy_model) == pytest.approx(box)
    assert r.source == source
    assert not r.swapped


def test_swapped_corners_are_normalised_and_flagged():
    r = parse_reply("[30,40,10,20]")
    assert r.ok and r.swapped and tuple(r.box_xyxy_model) == (10, 20, 30, 40)
    r = parse_reply("[10,40,30,20]")
    assert r.ok and r.swapped and tuple(r.box_xyxy_model) == (10, 20, 30, 40)


@pytest.mark.parametrize(
    "reply,reason",
    [
        ("", "empty reply"),
        ("   ", "empty reply"),
        ("no box here", "no box found"),
        ("[1,2,3]", "no box found"),
        ("[NaN, 1, 2, 3]", "non-finite coordinate"),
        ("[1e400, 1, 2, 3]", "non-finite coordinate"),
        ("[" + "9" * 5000 + ",1,2,3]", "non-finite coordinate"),
        ("[true, false, 1, 2]", "no box found"),
        ('{"bbox_2d": [1, 2, "x", 4]}', "non-numeric coordinate"),
        ("[" * 100_000 + "]" * 100_000, "no box found"),
    ],
)
def test_failures_carry_a_reason(reply, reason):
    r = parse_reply(reply)
    assert not r.ok and r.box_xyxy_model is None
    assert r.reason == reason


def test_non_strings_never_raise():
    for obj in (None, 12, b"[1,2,3,4]", [1, 2, 3, 4], {"bbox_2d": [1, 2, 3, 4]}):
        assert not parse_reply(obj).ok


def test_strict_think_format_matches_the_r1track_gate():
    good = "<think>reasoning</think>\n<answer>[1,2,3,4]</answer>"
    assert strict_think_format(good) and parse_reply(good).think_format_ok
    for bad in (
        " " + good,  # text before <think>
        good + " ",  # text after </answer>
        "<think>a<think>b</think></think><answer>[1,2,3,4]</answer>",  # nested
        "<think>a</think><answer>[1,2,3,4]</answer><answer>[1,2,3,4]</answer>",  # repeated answer
        "<answer>[1,2,3,4]</answer>",  # no think
        "<think>a</think>[1,2,3,4]",  # no answer tag
    ):
        assert not strict_think_format(bad), bad
    assert parse_reply("<answer>[1,2,3,4]</answer>").answer_tag


numbers = st.one_of(
    st.integers(-10**30, 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["NaN", "Infinity", "-inf", "1e999", "0x1F", "٣", "12.", ".5", "+3", "--1", "1_000"]),
)
fragments = st.one_of(
    st.text(max_size=20),
    numbers,
    st.sampled_from(
        ["[", "]", ",", "(", ")", "{", "}", '"bbox_2d"', ":", "<think>", "</think>", "<answer>", "</answer>",
         "```json\n", "```", " ", "\n", '"label"', "null", "true", "\u202e", "\x00"]
    ),
)
replies = st.one_of(st.text(max_size=200), st.lists(fragments, max_size=40).map("".join))


@given(replies)
@settings(max_examples=examples(10_000), deadline=None)
def test_never_raises_and_any_box_is_finite_and_ordered(reply):
    r = parse_reply(reply)
    assert isinstance(r.reason, str)
    if r.ok:
        x1, y1, x2, y2 = r.box_xyxy_model
        assert all(math.isfinite(v) for v in (x1, y1, x2, y2))
        assert x1 <= x2 and y1 <= y2
        assert r.reason == "ok"
    else:
        assert r.reason != "ok"


@given(st.lists(st.integers(-5000, 5000), min_size=4, max_size=4), st.sampled_from(["plain", "json", "bbox", "answer", "fence"]))
@settings(max_examples=examples(500))
def test_round_trip_of_generated_boxes(vals, style):
    reply = {
        "plain": "[{},{},{},{}]".format(*vals),
        "json": json.dumps(vals),
        "bbox": json.dumps([{"bbox_2d": vals, "label": "x"}]),
        "answer": "<think>ok</think><answer>{}</answer>".format(json.dumps(vals)),
        "fence": "```json\n{}\n```".format(json.dumps({"bbox_2d": vals})),
    }[style]
    r = parse_reply(reply)
    assert r.ok
    x1, y1, x2, y2 = vals
    assert tuple(r.box_xyxy_model) == (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
    assert r.swapped == (x1 > x2 or y1 > y2)


@pytest.mark.parametrize(
    "text,bare",
    [
        ("[12,40,130,99]", True),
        (" [1.5, 2, 3, 4]\n", True),  # JSON whitespace around is allowed (json.loads allows it)
        ("\t\r\n[1,2,3,4]\r\n", True),
        ("[-1e3, 0, 2E2, 4.25]", True),
        ("[30,40,10,20]", True),  # corner order is the caller's business
        ("[1,2,3,4,5]", False),  # R1-Track used the first four; we do not
        ("[1,2,3]", False),
        ("[[1,2,3,4]]", False),
        ("[true,false,1,2]", False),
        ("[NaN,1,2,3]", False),
        ("[Infinity,1,2,3]", False),
        ("[1e400,1,2,3]", False),  # json makes it float('inf')
        ("[" + "9" * 400 + ",1,2,3]", False),  # an int that overflows a float
        ("[" + "9" * 5000 + ",1,2,3]", False),  # over Python's int-string limit
        ("[012,44,130,99]", False),  # leading zeros are not JSON (the text parser reads them)
        ("[1.,2,3,4]", False),
        ("[+1,2,3,4]", False),
        ('["1",2,3,4]', False),
        ('{"bbox_2d": [1,2,3,4]}', False),
        ("```json\n[1,2,3,4]\n```", False),
        ("The box is [1,2,3,4]", False),
        ("[1,2,3,4] ", True),
        ("[1,2,3,4]\u00a0", False),  # no-break space is not JSON whitespace
        ("", False),
        (None, False),
        (b"[1,2,3,4]", False),
    ],
)
def test_is_bare_box_json(text, bare):
    assert is_bare_box_json(text) is bare


def test_answer_text_is_the_last_complete_answer_block():
    assert parse_reply("<think>t</think><answer> [1,2,3,4] </answer>").answer_text == " [1,2,3,4] "
    assert parse_reply("<answer>a</answer><answer>[1,2,3,4]</answer>").answer_text == "[1,2,3,4]"
    assert parse_reply("<answer>[1,2,3,4]").answer_text is None  # unterminated
    assert parse_reply("[1,2,3,4]").answer_text is None
    assert parse_reply("<answer>no box</answer>").answer_text == "no box"


def test_answer_text_is_the_last_complete_block_when_think_mentions_the_tag():
    from r1track.parse import parse_reply as _parse

    p = _parse("<think>put it in <answer> tags</think><answer>[1,2,30,40]</answer>")
    assert p.answer_text == "[1,2,30,40]"
    assert tuple(p.box_xyxy_model) == (1, 2, 30, 40)
    assert _parse("<answer>[0,0,1,1]</answer> then <answer>[5,6,7,8]</answer>").answer_text == "[5,6,7,8]"
