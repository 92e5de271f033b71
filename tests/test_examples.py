"""The LLaMA-Factory example configs: every crop the builder can write reaches Qwen2.5-VL unresized."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from r1track.data.profiles import SUPPORTED_CROP_SIDES
from r1track.qwen import smart_resize

REPO = Path(__file__).resolve().parents[1]
SFT = REPO / "examples" / "r1_track_lora_sft.yaml"
MERGE = REPO / "examples" / "r1_track_lora_merge.yaml"


def llamafactory_preresize(width: int, height: int, max_pixels: int, min_pixels: int) -> tuple[int, int]:
    """LLaMA-Factory 0.9.5 ``Qwen2VLPlugin._preprocess_image`` (docs/upstream.md, LLaMA-Factory): scale down by
    sqrt(max / (w h)) above ``image_max_pixels``, up by sqrt(min / (w h)) below ``image_min_pixels``,
    int() truncation; sides below 28 become 28."""
    if width * height > max_pixels:
        f = math.sqrt(max_pixels / (width * height))
        width, height = int(width * f), int(height * f)
    if width * height < min_pixels:
        f = math.sqrt(min_pixels / (width * height))
        width, height = int(width * f), int(height * f)
    return max(width, 28), max(height, 28)


def model_sees(side: int, cfg: dict) -> tuple[int, int]:
    w, h = llamafactory_preresize(side, side, cfg["image_max_pixels"], cfg["image_min_pixels"])
    h2, w2 = smart_resize(h, w)  # Qwen2.5-VL-3B processor bounds (3136 .. 12845056)
    return w2, h2


def test_sft_config_keeps_every_crop_size_unresized():
    cfg = yaml.safe_load(SFT.read_text())
    assert len(SUPPORTED_CROP_SIDES) >= 4 and {112, 224, 336, 448} <= set(SUPPORTED_CROP_SIDES)
    for side in SUPPORTED_CROP_SIDES:
        assert model_sees(side, cfg) == (side, side), side


@pytest.mark.parametrize("side,limits", [(532, {}), (448, {"image_max_pixels": 336 * 336}), (112, {"image_min_pixels": 128 * 128})])
def test_the_check_catches_resizing_configs(side, limits):
    cfg = {"image_max_pixels": 262144, "image_min_pixels": 1024, **limits}
    assert model_sees(side, cfg) != (side, side)


def test_sft_config_points_at_the_repository_datasets():
    cfg = yaml.safe_load(SFT.read_text())
    assert cfg["model_name_or_path"] == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert cfg["template"] == "qwen2_vl"  # there is no qwen2_5_vl template in LLaMA-Factory 0.9.5
    assert cfg["dataset_dir"] == "datasets_info" and (REPO / cfg["dataset_dir"] / "dataset_info.json").is_file()
    info = json.loads((REPO / "datasets_info" / "dataset_info.json").read_text())
    for name in str(cfg["dataset"]).split(","):
        assert name.strip() in info
    assert cfg["stage"] == "sft" and cfg["finetuning_type"] == "lora"


def test_merge_config_uses_the_sft_adapter():
    sft = yaml.safe_load(SFT.read_text())
    merge = yaml.safe_load(MERGE.read_text())
    assert merge["adapter_name_or_path"] == sft["output_dir"]
    assert merge["model_name_or_path"] == sft["model_name_or_path"] and merge["template"] == "qwen2_vl"
    assert merge["finetuning_type"] == "lora" and "quantization_bit" not in merge
    assert merge["export_dir"] != sft["output_dir"]


QWEN3_SFT = REPO / "examples" / "qwen3_vl_lora_sft.yaml"
QWEN3_MERGE = REPO / "examples" / "qwen3_vl_lora_merge.yaml"


def test_qwen3_vl_configs_keep_every_qwen3_crop_unresized_and_match_the_family():
    from r1track.models import get_family

    family = get_family("qwen3-vl")
    cfg, merge = yaml.safe_load(QWEN3_SFT.read_text()), yaml.safe_load(QWEN3_MERGE.read_text())
    for side in family.data_crop_sides:
        w, h = llamafactory_preresize(side, side, cfg["image_max_pixels"], cfg["image_min_pixels"])
        assert family.model_input_size(w, h) == (side, side), side
    # one side past the range is resized: the check can fail
    w, h = llamafactory_preresize(544, 544, cfg["image_max_pixels"], cfg["image_min_pixels"])
    assert family.model_input_size(w, h) != (544, 544)
    assert cfg["template"] == merge["template"] == family.lf_template_nothink
    assert cfg["model_name_or_path"] == merge["model_name_or_path"] and "Qwen3-VL" in cfg["model_name_or_path"]
    assert merge["adapter_name_or_path"] == cfg["output_dir"] and merge["export_dir"] != cfg["output_dir"]
    info = json.loads((REPO / "datasets_info" / "dataset_info.json").read_text())
    assert cfg["dataset"] in info and info[cfg["dataset"]]["file_name"].startswith("r1track-qwen3-vl/")


@pytest.mark.parametrize("script,key", [("examples/verl/qwen3_vl_r1track_grpo.sh", "actor_rollout_ref.model.path"),
                                        ("plugins/easyr1/examples/qwen3_vl_4b_r1track_grpo.sh", "worker.actor.model.model_path")])
def test_qwen3_launch_scripts_run_qwen3_with_pixel_bounds_that_keep_every_qwen3_crop(tmp_path, script, key):
    import os
    import subprocess
    import sys

    from r1track.models import get_family

    data = tmp_path / "d.parquet"
    data.write_bytes(b"")
    env = {**os.environ, "TRAIN_FILE": str(data), "VAL_FILE": str(data), "R1TRACK_DRY_RUN": "1", "PYTHON": sys.executable}
    env.pop("MODEL_PATH", None)
    out = subprocess.run(["bash", str(REPO / script)], env=env, capture_output=True, text=True, check=True).stdout
    args = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert args[key] == "Qwen/Qwen3-VL-4B-Instruct"
    if "data.min_pixels" in args:  # EasyR1 rescales outside these bounds
        sides = get_family("qwen3-vl").data_crop_sides
        assert int(args["data.min_pixels"]) <= min(sides) ** 2 and int(args["data.max_pixels"]) >= max(sides) ** 2
