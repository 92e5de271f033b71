"""Fuzz the reward through the EasyR1 plugin file and the verl entry point: generated replies (>= 100 000 under
the heavy Hypothesis profile that ``.ci/run`` selects, a twentieth of that by default)
(NaN/inf/huge numbers, nested or broken tags, unicode, control characters, empty, deep nesting, mutated good
replies) never raise, and every score dict has the same keys and only finite floats in their documented ranges.

Hypothesis draws a seed and a configuration per example; a seeded ``random.Random`` then builds a batch of
replies quickly (drawing every character through Hypothesis would make 100k replies take minutes). A failing
example is reproducible from the printed seed.
"""

from __future__ import annotations

import importlib.util
import math
import random
import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from budget import examples

from r1track.integrations import verl as verl_entry
from r1track.reward import SCORE_KEYS

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "plugins" / "easyr1" / "reward_function" / "r1track.py"

BATCH = 512
EXAMPLES = 200  # heavy profile: 200 x 512 = 102 400 replies

NUMBERS = [
    "0", "-0", "1", "12", "336", "-5", "1.5", ".5", "1.", "+3", "012", "00", "1e3", "1E-3", "1e308", "1e309",
    "-1e400", "1e-400", "NaN", "nan", "Infinity", "-Infinity", "inf", "-inf", "9" * 400, "9" * 5000, "0x1F",
    "1_000", "\u0663", "\uff11", "true", "false", "null", '"7"', "1e", "--1", "3.4028235e38",
]
FRAGMENTS = [
    "<think>", "</think>", "<answer>", "</answer>", "<think", "answer>", "</", "<", ">", "[", "]", "[[", "]]", ",",
    ", ", "(", ")", "{", "}", ":", '"bbox_2d"', '"label"', '"car"', "```", "```json\n", "\n", " ", "\t", "\r\n",
    "\x00", "\u202e", "\ud800", "\U0001f600", "é", "目标", "The box is ", "to", "...", "\\", '"', "'",
]
UNICODE_POOL = "".join(chr(c) for c in list(range(0, 128)) + [0xA0, 0x2028, 0x2029, 0xFEFF, 0xD800, 0xDFFF,
                                                                 0x1F600, 0x4E2D, 0x0663, 0xFF11, 0x10FFFF])


def _number(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.4:
        return rng.choice(NUMBERS)
    if r < 0.7:
        return str(rng.randint(-1000, 1000))
    if r < 0.85:
        return repr(rng.uniform(-1e3, 1e3))
    return repr(rng.choice([1.0, -1.0]) * 10.0 ** rng.uniform(-320, 308))


def _box_text(rng: random.Random) -> str:
    n = rng.choice([4, 4, 4, 4, 0, 1, 3, 5, 8])
    sep = rng.choice([",", ", ", " , ", ",\n", " "])
    body = sep.join(_number(rng) for _ in range(n))
    shape = rng.random()
    if shape < 0.6:
        return "[" + body + "]"
    if shape < 0.7:
        return "[[" + body + "]]"
    if shape < 0.8:
        return '[{"bbox_2d": [' + body + '], "label": "x"}]'
    if shape < 0.85:
        return "(" + body.replace(sep, ",", 1) + ")"
    if shape < 0.9:
        return "```json\n[" + body + "]\n```"
    return "[" + body  # truncated


def _garbage(rng: random.Random, max_len: int = 40) -> str:
    return "".join(rng.choice(UNICODE_POOL) for _ in range(rng.randint(0, max_len)))


def _fragments(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 30)):
        r = rng.random()
        parts.append(rng.choice(FRAGMENTS) if r < 0.6 else _number(rng) if r < 0.85 else _garbage(rng, 8))
    return "".join(parts)


def _mutate(rng: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        pos = rng.randint(0, len(chars))
        if op < 0.4 or not chars:
            chars.insert(pos, rng.choice(FRAGMENTS + list(UNICODE_POOL[:64])))
        elif op < 0.7:
            del chars[min(pos, len(chars) - 1)]
        else:
            chars[min(pos, len(chars) - 1)] = rng.choice(UNICODE_POOL)
    return "".join(chars)


def random_reply(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.25:
        return _box_text(rng)
    if r < 0.45:
        thought = _garbage(rng, 60) if rng.random() < 0.5 else _fragments(rng)
        answer = _box_text(rng) if rng.random() < 0.7 else _fragments(rng)
        return f"<think>{thought}</think>{rng.choice(['', chr(10), ' so '])}<answer>{answer}</answer>"
    if r < 0.65:
        return _fragments(rng)
    if r < 0.75:
        return _garbage(rng, 200)
    if r < 0.85:
        good = rng.choice(["[1,2,30,40]", "<think>ok</think><answer>[1,2,30,40]</answer>", '[{"bbox_2d": [1,2,30,40]}]'])
        return _mutate(rng, good)
    if r < 0.9:
        depth = rng.randint(1, 5_000)
        return rng.choice(["[", "<think>", "{\"bbox_2d\": ", "(("]) * depth + rng.choice(["", "]" * depth, "1,2,3,4"])
    if r < 0.95:
        return rng.choice(["", " ", "\n", "\t\r\n", "\x00", "<think></think><answer></answer>", "<answer></answer>"])
    return _box_text(rng) * rng.randint(1, 60)  # long replies


def random_ground_truth(rng: random.Random) -> object:
    if rng.random() < 0.9:
        x, y = rng.randint(0, 400), rng.randint(0, 400)
        return f"[{x},{y},{x + rng.randint(1, 200)},{y + rng.randint(1, 200)}]"
    return rng.choice(["", "[0,0,0,0]", "[NaN,0,1,1]", "garbage", None, [1, 2, 30, 40], np.array([1, 2, 30, 40]),
                       b"[1,2,30,40]", 7, [float("inf"), 0, 1, 1], "[1e400,0,1,1]", {"bbox_2d": [1, 2, 3, 4]}])


def random_length(rng: random.Random) -> object:
    r = rng.random()
    if r < 0.85:
        return rng.randint(0, 700)
    return rng.choice([None, float("nan"), float("inf"), -1, 10**400, 1e300, np.int64(500), "300", True, 0.5])


def load_plugin():
    spec = importlib.util.spec_from_file_location("custom_reward_fn", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    sys.modules["custom_reward_fn"] = module
    spec.loader.exec_module(module)
    return module


PLUGIN_MODULE = load_plugin()

CONFIGS = st.fixed_dictionaries(
    {
        "mode": st.sampled_from(["no-think", "think"]),
        "shaping": st.sampled_from(["r1track", "giou", "iou"]),
        "strict": st.booleans(),
    },
    optional={"format_weight": st.sampled_from([0.0, 0.05, 1.0, 1e6]), "length_weight": st.sampled_from([0.0, 0.1, 1e6])},
)


def check_scores(scores: dict, kwargs: dict) -> None:
    assert list(scores) == list(SCORE_KEYS)
    for key, value in scores.items():
        assert type(value) is float and math.isfinite(value), (key, value)
    assert scores["format"] in (0.0, 1.0) and scores["parsed"] in (0.0, 1.0)
    assert 0.0 <= scores["iou"] <= 1.0 and -1.0 <= scores["giou"] <= 1.0
    assert scores["length"] <= 0.0
    top = {"r1track": 1.5, "giou": 1.0, "iou": 1.0}[kwargs["shaping"]]
    fw = kwargs.get("format_weight", 0.05 if kwargs["mode"] == "think" else 0.0)
    assert scores["overall"] <= top + fw + 1e-9
    if scores["parsed"] == 0.0:
        assert scores["overall"] == -1.0


def test_fuzz_plugin_and_verl_entry_on_batches_of_replies():
    plugin = PLUGIN_MODULE
    seen = {"replies": 0}

    @given(seed=st.integers(0, 2**63 - 1), kwargs=CONFIGS)
    @settings(max_examples=examples(EXAMPLES), deadline=None, database=None)
    def run(seed, kwargs):
        rng = random.Random(seed)
        batch = [
            {"response": random_reply(rng), "response_length": random_length(rng), "ground_truth": random_ground_truth(rng)}
            for _ in range(BATCH)
        ]
        out = plugin.compute_score(batch, **kwargs)
        assert isinstance(out, list) and len(out) == len(batch)
        for scores in out:
            check_scores(scores, kwargs)
        for item in batch[:32]:  # the verl entry point, same core, per sample
            v = verl_entry.compute_score(
                data_source="r1track", solution_str=item["response"], ground_truth=item["ground_truth"],
                extra_info={}, **kwargs,
            )
            assert list(v) == list(verl_entry.SCORE_KEYS)
            assert all(type(x) is float and math.isfinite(x) for x in v.values())
        seen["replies"] += len(batch)

    run()
    assert seen["replies"] >= examples(EXAMPLES) * BATCH


@given(
    reply=st.one_of(st.text(max_size=300), st.lists(st.sampled_from(FRAGMENTS + NUMBERS), max_size=40).map("".join)),
    mode=st.sampled_from(["no-think", "think"]),
    n_tokens=st.one_of(st.none(), st.integers(-10, 10**6), st.floats()),
)
@settings(max_examples=examples(3000), deadline=None)
def test_structured_replies_never_raise(reply, mode, n_tokens):
    scores = PLUGIN_MODULE.compute_score({"response": reply, "response_length": n_tokens, "ground_truth": "[1,2,30,40]"}, mode=mode)
    check_scores(scores, {"mode": mode, "shaping": "r1track"})
