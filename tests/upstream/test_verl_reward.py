"""Real verl (PyPI 0.9.1, its own virtual environment): verl's custom-reward loader imports our entry point
through ``pkg://r1track.integrations.verl`` and its registered reward manager scores decoded replies.

The overrides are exactly what examples/verl/qwen2_5_vl_3b_r1track_grpo.sh passes (taken from its dry run) and
Hydra composes them over verl's own ppo_trainer.yaml, so a key verl does not know fails the test. Expected
rewards are worked out by hand from the formulas in r1track.reward's docstring.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

try:
    from upstream import venvs  # tests/upstream/venvs.py and conftest.py (branch infra)
except ImportError:
    if Path(__file__).with_name("venvs.py").exists():
        raise
    pytest.skip("tests/upstream/venvs.py (branch infra) is not merged yet", allow_module_level=True)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "verl" / "qwen2_5_vl_3b_r1track_grpo.sh"
PROBE = Path(__file__).with_name("verl_reward_probe.py")
GT = "[0,0,10,10]"


def script_overrides(python: Path, tmp_path: Path, **env: str) -> list[str]:
    for name in ("train.parquet", "val.parquet"):
        (tmp_path / name).write_bytes(b"")
    run_env = {**os.environ, "TRAIN_FILE": str(tmp_path / "train.parquet"), "VAL_FILE": str(tmp_path / "val.parquet"),
               "R1TRACK_DRY_RUN": "1", "PYTHON": str(python), **env}
    proc = subprocess.run(["bash", str(SCRIPT)], env=venvs.venv_env(python, base=run_env), capture_output=True,
                          text=True, check=True)
    return proc.stdout.splitlines()


def test_verl_loads_and_scores_through_pkg_path(tmp_path):
    python = venvs.ensure_venv("verl", with_project=True)
    think_reply = "<think>the car moved down</think><answer>[0,0,10,30]</answer>"
    spec = {
        "runs": [
            {
                "overrides": script_overrides(python, tmp_path),  # MODE=no-think, SHAPING=r1track
                "cases": [
                    {"reply": "[0,0,10,10]", "ground_truth": GT},  # GIoU 1 -> 1 + 0.5
                    {"reply": "[0,0,10,20]", "ground_truth": [0, 0, 10, 10]},  # I 100, U = C = 200: 0.5
                    {"reply": "[0,0,10,30]", "ground_truth": GT},  # GIoU 1/3: R1-Track's dead zone -> 0
                    {"reply": "It is at [0,0,10,20].", "ground_truth": GT},  # not a bare box -> -1
                    {"reply": "[20,0,30,10]", "ground_truth": GT},  # I 0, U 200, C 300: -1/3
                ],
            },
            {
                "overrides": script_overrides(python, tmp_path, MODE="think", SHAPING="giou"),
                "cases": [
                    {"reply": think_reply, "ground_truth": GT},  # GIoU 1/3, +0.05 format
                    {"reply": "[0,0,10,10]", "ground_truth": GT},  # no think tags -> -1
                ],
            },
        ]
    }
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    proc = subprocess.run([str(python), str(PROBE), str(spec_file)], env=venvs.venv_env(python), capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    no_think, think = out["runs"]

    for run in (no_think, think):
        assert run["manager"].endswith("NaiveRewardManager")
        assert (run["fn"], run["fn_name"]) == ("r1track.integrations.verl", "compute_score")
        assert run["limit_images"] == 2
        assert run["unknown_key_rejected"]
        keys = [list(r["reward_extra_info"]) for r in run["results"]]
        assert all(k == keys[0] for k in keys) and keys[0][:2] == ["score", "acc"]
        for r in run["results"]:
            assert r["reward_score"] == r["reward_extra_info"]["score"]
    assert think["reward_kwargs"] == {"mode": "think", "shaping": "giou"}

    scores = [r["reward_score"] for r in no_think["results"]]
    assert scores == pytest.approx([1.5, 0.5, 0.0, -1.0, -1 / 3])
    assert [r["reward_extra_info"]["acc"] for r in no_think["results"]] == pytest.approx([1.0, 0.5, 1 / 3, 0.5, 0.0])
    assert no_think["direct"]["score"] == 1.5
    # assemble_rm_scores puts each reward on the last valid response token
    for case, row, score in zip(spec["runs"][0]["cases"], no_think["rm_scores"], scores):
        assert row[len(case["reply"]) - 1] == pytest.approx(score)
        assert sum(row) == pytest.approx(score)

    assert [r["reward_score"] for r in think["results"]] == pytest.approx([1 / 3 + 0.05, -1.0])
