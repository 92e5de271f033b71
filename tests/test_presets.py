"""Presets, the checkpoint registry, the generated tracker flags and the backend registry.

The request check drives ``r1track eval --model NAME`` and the PyTracking parameter file of the checkpoint's
preset against the fake OpenAI server and compares what the server received: prompt text (re-rendered from
the prompt registry with the expected version and think mode), image count, ``max_tokens``.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from r1track.backends import BACKENDS, backend_names
from r1track.cli import build_parser, main
from r1track.data import read_got10k
from r1track.presets import CHECKPOINTS, PRESETS, checkpoint_table, find_checkpoint, resolve
from r1track.prompts import get_prompt, render_chat_content
from r1track.synthetic import write_got10k_split
from r1track.testing.openai_server import OpenAIServer
from r1track.tracker import TrackerParams
from test_pytracking_plugin import Seq, load_params, pytracking, run_sequence  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[1]
FIELDS = dataclasses.fields(TrackerParams)


def _subparsers():
    parser = build_parser()
    (action,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return action.choices


def _flag_pattern(name: str) -> re.Pattern:
    return re.compile(r"(?<![\w-])--" + re.escape(name.replace("_", "-")) + r"(?![\w-])")


def test_every_tracking_command_lists_each_tracker_setting_once_with_its_default(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100000")  # no line wrapping (argparse breaks lines at hyphens)
    tracking = set()
    for name, sub in _subparsers().items():
        text = sub.format_help().split("\n\n", 1)[1]  # without the usage lines
        if "--preset" not in text:
            continue
        tracking.add(name)
        positions = []
        for f in FIELDS:
            hits = [m.start() for m in _flag_pattern(f.name).finditer(text)]
            assert len(hits) == 1, (name, f.name, len(hits))
            positions.append(hits[0])
        assert positions == sorted(positions)  # in field order: each flag's help runs up to the next flag
        for f, start, end in zip(FIELDS, positions, positions[1:] + [len(text)]):
            assert f"(default: {getattr(TrackerParams(), f.name)})" in text[start:end], (name, f.name)
    assert tracking == {"eval", "track"}


def test_flags_reach_the_tracker_settings_and_win_over_the_preset():
    from r1track.commands.tracking import resolve_settings

    parser = build_parser()
    args = parser.parse_args(["eval", "x", "--model", "WangBiao/R1-Track-GRPO-5k", "--no-think", "--crop-size", "224",
                              "--seed", "3", "--search-factor", "9"])
    r = resolve_settings(args)
    assert r.preset.name == "think" and r.params.think is False and r.params.prompt_version == "r1track-v0"
    assert (r.params.crop_size, r.params.seed, r.params.search_factor, r.params.max_search_factor) == (224, 3, 9.0, 9.0)
    assert r.tag == "R1-Track-GRPO-5k+crop_size=224+search_factor=9.0+seed=3+no-think"


def test_backend_registry_is_the_only_list_of_backend_names():
    subs = _subparsers()
    choices = {name: next(a.choices for a in subs[name]._actions if a.dest == "backend") for name in ("eval", "track")}
    assert choices["eval"] == list(BACKENDS)
    assert choices["track"] == [n for n, spec in BACKENDS.items() if not spec.needs_ground_truth] == backend_names(ground_truth=False)
    # no other module spells out a list of backend names
    for path in (REPO / "src" / "r1track").rglob("*.py"):
        if path == REPO / "src/r1track/backends/__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                names = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                assert len(names & set(BACKENDS)) < 2, f"{path}:{node.lineno} lists backend names"


def test_pytracking_adapter_accepts_exactly_the_registry_names(monkeypatch):
    from r1track.integrations import pytracking as adapter
    from r1track.integrations import pytracking_session

    class Params:
        server_url = "http://127.0.0.1:9/v1"
        model = "/checkpoints/never-loaded"  # in-process engines load on the first request, not here

    accepted = []
    for name in list(BACKENDS) + ["tgi"]:
        params = Params()
        params.backend = name
        try:
            adapter.backend_from(params)
            accepted.append(name)
        except ValueError as exc:
            assert "must be one of " + ", ".join(backend_names(ground_truth=False)) in str(exc)
    monkeypatch.setattr(pytracking_session, "_BACKENDS", {})
    assert accepted == backend_names(ground_truth=False)


def test_known_checkpoints_pick_their_preset_unknown_ones_say_so():
    r = resolve(model="/models/R1-Track-GRPO-wo-Think-5k/")
    assert r.checkpoint and r.preset.name == "v0" and r.tag == "R1-Track-GRPO-wo-Think-5k"
    assert "known checkpoint" in r.message and "r1track-v0" in r.message
    r = resolve(model="my-finetune")
    assert r.checkpoint is None and r.preset.name == "default" and "not a known checkpoint" in r.message
    assert r.tag == "my-finetune"
    r = resolve(preset="memory", model="WangBiao/R1-Track-GRPO-5k")
    assert r.params.memory and not r.params.think and "--preset wins" in r.message and r.tag == "memory"
    assert resolve(backend="ncc").tag == "ncc" and resolve(preset="ncc").backend == "ncc"
    assert "LoRA adapter" in resolve(model="WangBiao/R1-Track-SFT-5k-lora").message
    assert find_checkpoint("R1-Track-GRPO-5k-merged").name == "WangBiao/R1-Track-GRPO-5k"
    with pytest.raises(ValueError, match="unknown preset"):
        resolve(preset="fast")
    from r1track.models import family_of_checkpoint

    assert all(family_of_checkpoint(c).name == "qwen2.5-vl" and c.preset in PRESETS for c in CHECKPOINTS)


def test_readme_checkpoint_table_is_the_registry():
    assert checkpoint_table() in (REPO / "README.md").read_text()


def _expected_text(version: str, think: bool, text: str) -> str:
    n_boxes = get_prompt(version).n_boxes
    boxes = [tuple(int(v) for v in m) for m in re.findall(r"\[(\d+),(\d+),(\d+),(\d+)\]", text)][-n_boxes:]
    n_images = get_prompt(version).n_images
    return render_chat_content(version, think=think, boxes_xyxy_model=boxes, image_urls=["u"] * n_images)[-1]["text"]


@pytest.fixture(scope="module")
def tiny_val(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "GOT10k"
    write_got10k_split(root, "val", n_sequences=1, n_frames=3, seed=3)
    return root


@pytest.mark.usefixtures("pytracking")
@pytest.mark.parametrize("ckpt", CHECKPOINTS, ids=lambda c: c.short_name)
def test_checkpoint_name_sends_its_requests_and_the_pytracking_preset_file_the_same(ckpt, tiny_val, tmp_path, monkeypatch,
                                                                                     capsys):
    preset = PRESETS[ckpt.preset].params
    with OpenAIServer(model=ckpt.name) as server:
        code = main(["eval", str(tiny_val), "--model", ckpt.name, "--backend", "openai", "--server", server.base_url,
                     "-o", str(tmp_path / "run"), "--no-progress"])
        assert code == 0
        assert f"preset {ckpt.preset}" in capsys.readouterr().err
        ours = server.chat_requests()
        monkeypatch.setenv("R1TRACK_BASE_URL", server.base_url)
        monkeypatch.setenv("R1TRACK_MODEL", ckpt.name)
        (seq,) = read_got10k(tiny_val, "val")
        assert run_sequence(Seq(seq.name, list(seq.frames), list(seq.boxes_xywh_orig[0])), load_params(ckpt.preset))
        theirs = server.chat_requests()[len(ours):]
    assert len(ours) == len(theirs) == 2
    for a, b in zip(ours, theirs):
        version = preset.memory_prompt_version if preset.memory else preset.prompt_version
        assert a.text == _expected_text(version, ckpt.think, a.text)
        assert ("<think>" in a.text) == ckpt.think
        assert len(a.image_urls) == get_prompt(version).n_images
        assert a.body["max_tokens"] == (1024 if ckpt.think else 48)
        assert a.body["model"] == ckpt.name
        assert {k: v for k, v in a.body.items() if k != "messages"} == {k: v for k, v in b.body.items() if k != "messages"}
        assert a.text == b.text and len(a.image_urls) == len(b.image_urls)
