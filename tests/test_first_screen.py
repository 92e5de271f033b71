"""First-screen truth (issue 24, row 10): the top of the README and ``r1track --help`` describe today's r1track --
every registered model family, the in-process engines, a training step in the first workflow, the default server
URL -- and ``--help`` keeps its exit-status table. The facts are taken from the registries, so a family or engine
added later must appear on both screens."""

from __future__ import annotations

import re
from pathlib import Path

from r1track.backends import BACKENDS
from r1track.backends.openai import DEFAULT_BASE_URL
from r1track.cli import build_parser
from r1track.exitcodes import ExitStatus
from r1track.models import FAMILIES

README = Path(__file__).resolve().parents[1] / "README.md"
IN_PROCESS = [name for name, spec in BACKENDS.items() if spec.in_process]


def _help() -> str:
    return build_parser().format_help()


def test_r1track_help_describes_today_s_r1track():
    text = _help()
    flat = " ".join(text.split())
    assert "(Qwen2.5-VL) into" not in flat  # the old, single-family sentence
    for name in FAMILIES:
        assert name in flat, name
    for name in IN_PROCESS:
        assert f"--backend {name}" in flat, name
    assert DEFAULT_BASE_URL in flat and "R1TRACK_BASE_URL" in flat
    workflow = text[text.index("workflow"):text.index("positional arguments")]
    steps = [line.strip() for line in workflow.splitlines()]
    build = next(i for i, line in enumerate(steps) if line.startswith("r1track data build"))
    train = next(i for i, line in enumerate(steps) if "train" in line and ("llamafactory-cli" in line or "SFT" in line))
    evaluate = next(i for i, line in enumerate(steps) if line.startswith("r1track eval"))
    assert build < train < evaluate  # data, then training, then tracking
    for status in ExitStatus:  # the exit-status epilog is kept
        assert re.search(rf"^\s*{int(status)}\s", text, re.M), status


def _top(readme: str) -> str:
    """The README down to the end of its first workflow."""
    end = readme.index("## Published checkpoints") if "## Published checkpoints" in readme else len(readme)
    return readme[:end]


def test_readme_top_describes_today_s_r1track():
    top = _top(README.read_text())
    flat = " ".join(top.split())
    for name in FAMILIES:
        assert f"`{name}`" in flat, name
    for name in IN_PROCESS:
        assert f"--backend {name}" in flat, name
    assert DEFAULT_BASE_URL in flat and "R1TRACK_BASE_URL" in flat and "default" in flat
    workflow = top[top.index("## The workflow"):]
    assert workflow.index("r1track data build") < workflow.index("llamafactory-cli train") < workflow.index("r1track eval")
    assert "resized to 336 px" not in README.read_text()
