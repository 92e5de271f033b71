"""Real LLaMA-Factory 0.9.5 on CPU: LoRA SFT and merge of the tiny random Qwen2.5-VL on a set built by
`r1track data build`, with the repository's examples/*.yaml and datasets_info/dataset_info.json unmodified.

LLaMA-Factory resolves ``dataset_dir`` (and the image paths under it) against the current directory, so the
test runs it from a temporary directory laid out like the repository root: ``datasets_info/dataset_info.json``
there is a symlink to the repository's file, and the builder writes the set at its default path
``datasets_info/r1track`` below it. Nothing is written into the checkout, and the Hugging Face caches live in
the temporary directory, so parallel runs and CI's fresh clone stay clean.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from r1track.data.profiles import SUPPORTED_CROP_SIDES
from r1track.synthetic import write_got10k_split
from upstream import venvs

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SFT_YAML = REPO / "examples" / "r1_track_lora_sft.yaml"
MERGE_YAML = REPO / "examples" / "r1_track_lora_merge.yaml"
CROP_SIDES = (112, 224)

# Runs in the llamafactory venv: LLaMA-Factory's own image pre-processing (plugin argv[5], qwen2_vl by default) and
# the processor (patch argv[6], 14 by default) leave every crop size the builder can write unchanged under the example
# config's pixel bounds.
PREPROCESS_CHECK = r"""
import json, sys
from PIL import Image
from transformers import AutoProcessor
from llamafactory.data.mm_plugin import get_mm_plugin
model, max_px, min_px, sides = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
plugin_name, patch = (sys.argv[5], int(sys.argv[6])) if len(sys.argv) > 6 else ("qwen2_vl", 14)
plugin = get_mm_plugin(plugin_name, image_token="<|image_pad|>")
processor = AutoProcessor.from_pretrained(model)
bad = []
for side in sides:
    img = plugin._preprocess_image(Image.new("RGB", (side, side)), image_max_pixels=max_px, image_min_pixels=min_px)
    grid = processor.image_processor(images=[img], return_tensors="pt")["image_grid_thw"].tolist()
    if img.size != (side, side) or grid != [[1, side // patch, side // patch]]:
        bad.append([side, list(img.size), grid])
print(json.dumps({"checked": len(sides), "resized": bad}))
"""

# Runs in the llamafactory venv: the merged model loads, differs from the base where LoRA trained, and generates
# from one of our samples (two crops + the r1track prompt) with the crops reaching the model at their size.
MERGED_CHECK = r"""
import json, sys
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoProcessor
merged, base, dataset_dir, record = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
processor = AutoProcessor.from_pretrained(merged)
model = AutoModelForImageTextToText.from_pretrained(merged, dtype=torch.float32).eval()
a, b = load_file(f"{merged}/model.safetensors"), load_file(f"{base}/model.safetensors")
changed = sum(1 for k in b if k in a and not torch.equal(a[k], b[k]))
text = record["messages"][0]["content"]
n_img = text.count("<image>")
images = [Image.open(f"{dataset_dir}/{p}").convert("RGB") for p in record["images"]]
content = [{"type": "image"} for _ in images] + [{"type": "text", "text": text.replace("<image>", "")}]
prompt = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False)
inputs = processor(text=[prompt], images=images, return_tensors="pt")
with torch.no_grad():
    out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
print(json.dumps({
    "changed_tensors": changed, "model_type": model.config.model_type, "placeholders": n_img, "images": len(images),
    "sizes": [list(i.size) for i in images], "grid": inputs["image_grid_thw"].tolist(),
    "prompt_tokens": int(inputs["input_ids"].shape[1]), "new_tokens": int(out.shape[1] - inputs["input_ids"].shape[1]),
}))
"""


def _run(argv, *, cwd, env, what, timeout=900):
    t0 = time.monotonic()
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    dt = time.monotonic() - t0
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + "\n" + proc.stderr).strip().splitlines()[-60:])
        pytest.fail(f"{what} failed (rc {proc.returncode}) in {dt:.0f} s:\n{tail}")
    print(f"[timing] {what}: {dt:.1f} s")
    return proc


def test_llamafactory_lora_sft_and_merge_on_a_built_set(tiny_sft_model, tmp_path):
    py = tiny_sft_model.python
    tiny = tiny_sft_model.path
    run = tmp_path / "run"  # laid out like the repository root
    (run / "datasets_info").mkdir(parents=True)
    (run / "datasets_info" / "dataset_info.json").symlink_to(REPO / "datasets_info" / "dataset_info.json")
    env = venvs.venv_env(py, HF_HOME=str(tmp_path / "hf"), HF_DATASETS_CACHE=str(tmp_path / "hf" / "datasets"))

    # 1. a small set at the builder's default path, from a generated GOT-10k split
    write_got10k_split(tmp_path / "got10k", "train", n_sequences=3, n_frames=12, size=(320, 240), full_occlusion_every=3)
    _run([sys.executable, "-m", "r1track", "data", "build", f"got10k:{tmp_path / 'got10k'}@train", "--quiet",
          "--samples-per-sequence", "3", "--crop-sizes", ",".join(map(str, CROP_SIDES)), "--val-fraction", "0"],
         cwd=run, env=None, what="r1track data build")
    records = json.loads((run / "datasets_info" / "r1track" / "llamafactory" / "train.json").read_text())
    assert len(records) == 9

    # 2. LLaMA-Factory's pre-processing keeps every crop size the builder can write
    cfg = yaml.safe_load(SFT_YAML.read_text())
    proc = _run([py, "-c", PREPROCESS_CHECK, tiny, cfg["image_max_pixels"], cfg["image_min_pixels"],
                 json.dumps(list(SUPPORTED_CROP_SIDES))], cwd=run, env=env, what="LLaMA-Factory image pre-processing check")
    pre = json.loads(proc.stdout.strip().splitlines()[-1])
    assert pre == {"checked": len(SUPPORTED_CROP_SIDES), "resized": []}

    # 3. LoRA SFT with the example config, tiny model, 2 steps on CPU
    sft_out = tmp_path / "saves" / "sft"
    _run(["llamafactory-cli", "train", SFT_YAML, f"model_name_or_path={tiny}", f"output_dir={sft_out}", "max_steps=2",
          "bf16=false", "per_device_train_batch_size=1", "gradient_accumulation_steps=1", "preprocessing_num_workers=1",
          "dataloader_num_workers=0", "logging_steps=1", "save_steps=2", "plot_loss=false", "trust_remote_code=false"],
         cwd=run, env=env, what="llamafactory-cli train")
    assert (sft_out / "adapter_model.safetensors").is_file()
    logs = [json.loads(x) for x in (sft_out / "trainer_log.jsonl").read_text().splitlines()]
    losses = [x["loss"] for x in logs if "loss" in x]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)

    # 4. merge with the example config
    merged = tmp_path / "merged"
    _run(["llamafactory-cli", "export", MERGE_YAML, f"model_name_or_path={tiny}", f"adapter_name_or_path={sft_out}",
          f"export_dir={merged}", "export_size=1", "trust_remote_code=false"], cwd=run, env=env, what="llamafactory-cli export")
    assert (merged / "model.safetensors").is_file()

    # 5. the merged model loads, carries the LoRA update and generates from one of our samples
    proc = _run([py, "-c", MERGED_CHECK, merged, tiny, run / "datasets_info", json.dumps(records[0])], cwd=run, env=env,
                what="merged model load + generate")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    side = res["sizes"][0][0]
    assert res["placeholders"] == res["images"] == 2
    assert res["grid"] == [[1, side // 14, side // 14]] * 2  # the crops reach the vision tower unresized
    assert res["changed_tensors"] > 0 and res["new_tokens"] >= 1
