"""The EasyR1 plugin: reward file contract, format-prompt templates, example config and launch scripts.

EasyR1 itself is not installed here (it needs vLLM and a GPU). The contract is taken from EasyR1's code at
commit b44b311 (verl/workers/reward/function.py, verl/utils/dataset.py, verl/trainer/config.py and the worker
config dataclasses), summarised in docs/upstream.md (EasyR1); the tests do what
that code does: load the reward file with importlib by path, bind the kwargs with functools.partial, call it
with a batch, collect metrics per key; render templates with ``jinja2.Template(text.strip()).render(content=...)``
and split on ``<image>``; merge config.yaml and the command-line overrides over the config dataclasses' keys.
"""

from __future__ import annotations

import ast
import importlib.util
import math
import os
import subprocess
import sys
from collections import defaultdict
from functools import partial
from pathlib import Path

import jinja2  # a test dependency: EasyR1 renders format prompts with jinja2.Template
import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from r1track.prompts import PROMPTS, THINK_WRAPPER, easyr1_format_prompt, render_text
from r1track.qwen import check_crop_side, model_input_size


REPO = Path(__file__).resolve().parents[1]
PLUGIN_DIR = REPO / "plugins" / "easyr1"
REWARD_FILE = PLUGIN_DIR / "reward_function" / "r1track.py"
EXAMPLES = PLUGIN_DIR / "examples"
CONFIG = EXAMPLES / "config.yaml"
SCRIPTS = {"no-think": EXAMPLES / "qwen2_5_vl_3b_r1track_grpo.sh", "think": EXAMPLES / "qwen2_5_vl_3b_r1track_grpo_think.sh"}
VERL_SCRIPT = REPO / "examples" / "verl" / "qwen2_5_vl_3b_r1track_grpo.sh"
CROP_SIDES = (112, 224, 336, 448)  # what `r1track data build` emits (multiples of 28)

# The keys current EasyR1 accepts (docs/upstream.md, EasyR1; checked against the config dataclasses of
# EasyR1 b44b311: verl/trainer/config.py, verl/workers/{actor,critic,rollout,reward}/config.py; fields with
# init=False are "auto keys" EasyR1 fills in itself). name:type, "?" = may be null.
EASYR1_KEYS = {
    "data": "train_files:str val_files:str prompt_key:str answer_key:str image_key:str video_key:str image_dir:str? video_fps:float max_prompt_length:int max_response_length:int rollout_batch_size:int mini_rollout_batch_size:int? val_batch_size:int format_prompt:str? override_chat_template:str? shuffle:bool seed:int min_pixels:int? max_pixels:int? filter_overlong_prompts:bool filter_overlong_prompts_workers:int",
    "worker": "hybrid_engine:bool",
    "worker.actor": "strategy:str global_batch_size:int micro_batch_size_per_device_for_update:int micro_batch_size_per_device_for_experience:int max_grad_norm:float clip_ratio_low:float clip_ratio_high:float clip_ratio_dual:float loss_avg_mode:str loss_type:str ppo_epochs:int padding_free:bool dynamic_batching:bool ulysses_size:int use_torch_compile:bool tau_positive:float tau_negative:float",
    "worker.actor.model": "model_path:str? tokenizer_path:str? override_config:dict enable_gradient_checkpointing:bool trust_remote_code:bool freeze_vision_tower:bool",
    "worker.actor.model.lora": "rank:int alpha:int target_modules:str exclude_modules:str?",
    "worker.actor.optim": "lr:float betas:list weight_decay:float strategy:str lr_warmup_ratio:float lr_warmup_steps:int? min_lr_ratio:float? lr_scheduler_type:str",
    "worker.actor.fsdp": "enable_full_shard:bool enable_cpu_offload:bool enable_rank0_init:bool use_orig_params:bool torch_dtype:str? fsdp_size:int mp_param_dtype:str mp_reduce_dtype:str mp_buffer_dtype:str",
    "worker.actor.offload": "offload_params:bool offload_optimizer:bool",
    "worker.critic": "strategy:str global_batch_size:int micro_batch_size_per_device_for_update:int micro_batch_size_per_device_for_experience:int max_grad_norm:float cliprange_value:float loss_avg_mode:str ppo_epochs:int padding_free:bool dynamic_batching:bool ulysses_size:int",
    "worker.ref": "strategy:str",
    "worker.ref.fsdp": "enable_full_shard:bool enable_cpu_offload:bool enable_rank0_init:bool use_orig_params:bool torch_dtype:str? fsdp_size:int mp_param_dtype:str mp_reduce_dtype:str mp_buffer_dtype:str",
    "worker.ref.offload": "offload_params:bool offload_optimizer:bool",
    "worker.reward": "reward_function:str? reward_function_kwargs:dict skip_special_tokens:bool num_cpus:int",
    "worker.rollout": "name:str n:int temperature:float top_p:float top_k:int seed:int limit_images:int dtype:str gpu_memory_utilization:float ignore_eos:bool enforce_eager:bool enable_chunked_prefill:bool tensor_parallel_size:int max_model_len:int? max_num_batched_tokens:int disable_log_stats:bool disable_tqdm:bool val_override_config:dict",
    "algorithm": "gamma:float lam:float adv_estimator:str disable_kl:bool use_kl_loss:bool kl_penalty:str kl_coef:float kl_type:str kl_horizon:float kl_target:float online_filtering:bool filter_key:str filter_low:float filter_high:float",
    "trainer": "total_epochs:int max_steps:int? project_name:str experiment_name:str logger:list nnodes:int n_gpus_per_node:int max_try_make_batch:int critic_warmup:int val_freq:int val_before_train:bool val_only:bool val_generations_to_log:int save_freq:int save_limit:int save_model_only:bool save_checkpoint_path:str? load_checkpoint_path:str? ray_timeline:str? find_last_checkpoint:bool",
}
ACCEPTED = {f"{group}.{item.split(':')[0]}": item.split(":")[1] for group, items in EASYR1_KEYS.items() for item in items.split()}
# the critic shares ModelConfig/OptimConfig/FSDPConfig/OffloadConfig with the actor
ACCEPTED.update({k.replace("worker.actor.", "worker.critic.", 1): t for k, t in ACCEPTED.items()
                 if k.startswith(("worker.actor.model.", "worker.actor.optim.", "worker.actor.fsdp.", "worker.actor.offload."))})
FREE_DICTS = {k for k, t in ACCEPTED.items() if t == "dict"}  # any key below these is allowed
# Keys of R1-Track's EasyR1 fork that current EasyR1 rejects (docs/upstream.md, EasyR1).
REMOVED = ("worker.reward.reward_type", "worker.reward.compute_score", "data.system_prompt", "trainer.total_episodes",
           "worker.actor.ulysses_sequence_parallel_size")


# -- the reward file, loaded as EasyR1's AutoRewardManager loads it -------------------------------------------


def load_like_easyr1(path: Path):
    spec = importlib.util.spec_from_file_location("custom_reward_fn", str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules["custom_reward_fn"] = module
    spec.loader.exec_module(module)
    return module


def test_reward_file_contract_batch_call():
    module = load_like_easyr1(REWARD_FILE)
    assert isinstance(module.REWARD_NAME, str) and module.REWARD_NAME
    assert module.REWARD_TYPE == "batch"
    reward_fn = partial(module.compute_score, **{"mode": "no-think", "shaping": "r1track"})
    inputs = [
        {"response": "[0,0,10,10]", "response_length": 9, "ground_truth": "[0,0,10,10]"},
        {"response": "[0,0,10,20]", "response_length": 9, "ground_truth": "[0,0,10,10]"},
        {"response": "I cannot see it", "response_length": 5, "ground_truth": "[0,0,10,10]"},
        {"response": "", "response_length": 1, "ground_truth": "[0,0,10,10]"},
    ]
    scores = reward_fn(inputs)
    assert isinstance(scores, list) and len(scores) == len(inputs)
    # identical box: GIoU 1 -> 1 + 0.5; [0,0,10,20]: IoU = GIoU = 100/200 -> 0.5 unchanged; no box: -1
    assert [s["overall"] for s in scores] == pytest.approx([1.5, 0.5, -1.0, -1.0])
    # What BatchFunctionRewardManagerMixin does next: reward at the last token, metrics per key, np.mean.
    reward_tensor = np.zeros((len(inputs), 16), dtype=np.float32)
    metrics = defaultdict(list)
    for i, score in enumerate(scores):
        reward_tensor[i, inputs[i]["response_length"] - 1] = score["overall"]
        for key, value in score.items():
            metrics[key].append(value)
    assert reward_tensor.sum(-1) == pytest.approx([1.5, 0.5, -1.0, -1.0])
    assert {len(v) for v in metrics.values()} == {len(inputs)}
    assert all(math.isfinite(float(np.mean(v))) for v in metrics.values())
    assert {"overall", "format", "iou", "giou"} <= set(metrics)


def test_reward_file_accepts_a_single_dict_and_kwargs_from_the_config():
    module = load_like_easyr1(REWARD_FILE)
    reply = "<think>" + "the target is the red car " * 20 + "</think><answer>[0,0,10,10]</answer>"
    one = module.compute_score({"response": reply, "response_length": 200, "ground_truth": "[0,0,10,10]"}, mode="think")
    assert isinstance(one, dict) and one["overall"] == pytest.approx(1.5 + 0.05)
    with pytest.raises(ValueError, match="shaping"):
        module.compute_score([], shaping="dice")


def test_reward_file_is_thin_with_absolute_imports_only():
    tree = ast.parse(REWARD_FILE.read_text())
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert imports and all(not isinstance(n, ast.ImportFrom) or n.level == 0 for n in imports)
    names = {a.name for n in imports if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in imports if isinstance(n, ast.ImportFrom)}
    assert all(name.startswith("r1track") for name in names), names


def test_entry_points_import_neither_verl_nor_easyr1_nor_torch():
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('custom_reward_fn', {str(REWARD_FILE)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "import r1track.integrations.verl as v\n"
        "m.compute_score([{'response': '[1,2,3,4]', 'response_length': 3, 'ground_truth': '[1,2,3,4]'}])\n"
        "v.compute_score(data_source='x', solution_str='[1,2,3,4]', ground_truth='[1,2,3,4]')\n"
        "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('verl', 'torch', 'transformers', 'ray', 'vllm'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")


# -- format prompts --------------------------------------------------------------------------------------------


def render_like_easyr1(template_path: Path, content: str) -> str:
    with open(template_path, encoding="utf-8") as f:
        text = f.read()
    return jinja2.Template(text.strip()).render(content=content)


def easyr1_content_list(prompt: str) -> list[dict]:
    """RLHFDataset._build_messages for an image example."""
    out = []
    for i, piece in enumerate(prompt.split("<image>")):
        if i != 0:
            out.append({"type": "image"})
        if piece:
            out.append({"type": "text", "text": piece})
    return out


@pytest.mark.parametrize("think,name", [(False, "r1track.jinja"), (True, "r1track_think.jinja")])
def test_template_files_are_generated_from_the_prompt_registry(think, name):
    assert (PLUGIN_DIR / "format_prompt" / name).read_text(encoding="utf-8") == easyr1_format_prompt(think)


box_coord = st.integers(0, 448)
boxes_st = st.lists(st.tuples(box_coord, box_coord, box_coord, box_coord), min_size=2, max_size=2)


@pytest.mark.parametrize("version", sorted(PROMPTS))
@pytest.mark.parametrize("think,name", [(False, "r1track.jinja"), (True, "r1track_think.jinja")])
@given(boxes=boxes_st)
@settings(max_examples=25, deadline=None)
def test_templates_render_exactly_the_registry_text(version, think, name, boxes):
    boxes = boxes[: PROMPTS[version].n_boxes]
    problem = render_text(version, think=False, boxes_xyxy_model=boxes)  # what the builder writes
    rendered = render_like_easyr1(PLUGIN_DIR / "format_prompt" / name, problem)
    assert rendered == render_text(version, think=think, boxes_xyxy_model=boxes)
    n = PROMPTS[version].n_images
    items = easyr1_content_list(rendered)
    assert items[:n] == [{"type": "image"}] * n and len(items) == n + 1 and items[n]["type"] == "text"
    if think:
        assert items[n]["text"].startswith(THINK_WRAPPER)


@pytest.mark.parametrize("version", sorted(PROMPTS))
def test_think_template_leaves_think_text_alone_and_works_sandboxed(version):
    from jinja2.sandbox import SandboxedEnvironment

    boxes = [(10, 20, 30, 40)] * PROMPTS[version].n_boxes
    path = PLUGIN_DIR / "format_prompt" / "r1track_think.jinja"
    already = render_text(version, think=True, boxes_xyxy_model=boxes)
    assert render_like_easyr1(path, already) == already  # data built with think text: no second wrapper
    problem = render_text(version, think=False, boxes_xyxy_model=boxes)
    sandboxed = SandboxedEnvironment().from_string(path.read_text().strip()).render(content=problem)
    assert sandboxed == already


# -- example config and launch scripts ------------------------------------------------------------------------


def flatten(node: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and path not in FREE_DICTS:
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def dry_run(script: Path, tmp_path: Path, extra_env: dict | None = None, args: tuple = ()) -> subprocess.CompletedProcess:
    train, val = tmp_path / "train.parquet", tmp_path / "val.parquet"
    train.write_bytes(b"")
    val.write_bytes(b"")
    env = {**os.environ, "TRAIN_FILE": str(train), "VAL_FILE": str(val), "R1TRACK_DRY_RUN": "1", "PYTHON": sys.executable}
    env.update(extra_env or {})
    return subprocess.run(["bash", str(script), *args], env=env, capture_output=True, text=True, cwd=tmp_path)


def effective_config(script: Path, tmp_path: Path, **env) -> dict:
    """config.yaml merged with the script's overrides, as EasyR1's main() merges them (CLI wins)."""
    proc = dry_run(script, tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("config=")
    config = flatten(yaml.safe_load(Path(lines[0].split("=", 1)[1]).read_text()))
    for line in lines[1:]:
        key, value = line.split("=", 1)
        parts = key.split(".")
        parent = next((".".join(parts[:i]) for i in range(len(parts)) if ".".join(parts[:i]) in FREE_DICTS), None)
        if parent:  # e.g. worker.reward.reward_function_kwargs.mode
            config.setdefault(parent, {})
            config[parent] = {**config[parent], key[len(parent) + 1:]: yaml.safe_load(value)}
        else:
            config[key] = yaml.safe_load(value)
    return config


def check_keys(config: dict, where: str) -> None:
    for key, value in config.items():
        assert key in ACCEPTED, f"{where}: {key} is not an EasyR1 config key"
        assert key not in REMOVED
        kind = ACCEPTED[key]
        if value is None:
            assert kind.endswith("?"), f"{where}: {key} may not be null"
            continue
        expected = {"str": str, "int": int, "float": (int, float), "bool": bool, "dict": dict, "list": list}[kind.rstrip("?")]
        assert isinstance(value, expected) and not (kind.startswith(("int", "float")) and isinstance(value, bool)), (
            f"{where}: {key}={value!r} is not {kind}")


def test_config_yaml_sets_only_keys_easyr1_accepts():
    raw = CONFIG.read_text()
    config = flatten(yaml.safe_load(raw))
    check_keys(config, "config.yaml")
    for removed in REMOVED:
        assert removed.rsplit(".", 1)[1] + ":" not in raw


@pytest.mark.parametrize("mode", ["no-think", "think"])
def test_launch_scripts_set_only_keys_easyr1_accepts_and_what_matters(mode, tmp_path):
    script = SCRIPTS[mode]
    text = script.read_text()
    assert "VLLM_USE_V1" not in text.replace("No VLLM_USE_V1", "")
    proc = dry_run(script, tmp_path)
    assert proc.returncode == 0, proc.stderr
    for line in proc.stdout.splitlines()[1:]:
        key = line.split("=", 1)[0]
        assert key in ACCEPTED or any(key.startswith(d + ".") for d in FREE_DICTS), key
        assert key not in REMOVED
    c = effective_config(script, tmp_path)
    check_keys(c, script.name)
    assert c["data.train_files"] == str(tmp_path / "train.parquet") and "@" not in c["data.val_files"]
    assert c["data.train_files"] != c["data.val_files"]
    assert (c["data.prompt_key"], c["data.answer_key"], c["data.image_key"]) == ("problem", "answer", "images")
    assert c["data.max_response_length"] == (64 if mode == "no-think" else 512)
    fmt = Path(c["data.format_prompt"])
    assert fmt.is_absolute() and fmt.is_file()
    assert fmt.read_text() == easyr1_format_prompt(mode == "think")
    path, _, fn = c["worker.reward.reward_function"].rpartition(":")
    assert Path(path) == REWARD_FILE and fn == "compute_score"
    kwargs = c["worker.reward.reward_function_kwargs"]
    assert kwargs["mode"] == mode and kwargs["shaping"] == "r1track"
    load_like_easyr1(REWARD_FILE).compute_score([], **kwargs)  # the options are valid
    assert c["worker.rollout.limit_images"] == 2
    assert c["worker.rollout.tensor_parallel_size"] == 1
    assert c["worker.rollout.n"] > 1
    assert c["trainer.n_gpus_per_node"] == 1
    assert effective_config(script, tmp_path, LIMIT_IMAGES="3")["worker.rollout.limit_images"] == 3


@pytest.mark.parametrize("mode", ["no-think", "think"])
@pytest.mark.parametrize("gpus", [1, 2, 4, 8])
def test_launch_scripts_pass_easyr1_start_up_checks(mode, gpus, tmp_path):
    # RayPPOTrainer.__init__ and FSDPWorker._init_config of EasyR1 b44b311 (docs/upstream.md, EasyR1 start-up checks).
    c = effective_config(SCRIPTS[mode], tmp_path, N_GPUS=str(gpus))
    assert c["trainer.n_gpus_per_node"] == gpus
    n, rollout = c["worker.rollout.n"], c["data.rollout_batch_size"]
    gbs, ulysses = c["worker.actor.global_batch_size"], c["worker.actor.ulysses_size"]
    assert n > 1
    assert rollout % gbs == 0
    assert (rollout * n) % c["worker.actor.micro_batch_size_per_device_for_experience"] == 0
    per_device = gbs * n // (gpus // ulysses)
    assert per_device > 0 and per_device % c["worker.actor.micro_batch_size_per_device_for_update"] == 0
    assert not c["worker.actor.fsdp.enable_cpu_offload"]
    assert gpus % c["worker.rollout.tensor_parallel_size"] == 0
    assert c.get("worker.rollout.max_num_batched_tokens", 8192) >= c["data.max_prompt_length"] + c["data.max_response_length"]


@pytest.mark.parametrize("mode", ["no-think", "think"])
def test_pixel_bounds_leave_every_crop_size_unresized(mode, tmp_path):
    c = effective_config(SCRIPTS[mode], tmp_path)
    lo, hi = c["data.min_pixels"], c["data.max_pixels"]
    for side in CROP_SIDES:
        # EasyR1's process_image resizes when w*h > max_pixels or w*h < min_pixels ...
        assert check_crop_side(side, min_pixels=lo, max_pixels=hi) == side
        # ... and Qwen2.5-VL's processor (its own defaults) keeps a multiple-of-28 square as it is.
        assert model_input_size(side, side) == (side, side)
    # EasyR1's defaults are the trap this guards against: a 336-px crop would be upscaled.
    with pytest.raises(ValueError):
        check_crop_side(336, min_pixels=262144, max_pixels=4194304)


@pytest.mark.parametrize("script", [*SCRIPTS.values(), VERL_SCRIPT], ids=lambda p: p.name)
def test_scripts_pass_bash_n(script):
    subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.parametrize("script", [*SCRIPTS.values(), VERL_SCRIPT], ids=lambda p: p.name)
def test_scripts_refuse_missing_or_split_data_files(script, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TRAIN_FILE", "VAL_FILE")}
    proc = subprocess.run(["bash", str(script)], env={**env, "R1TRACK_DRY_RUN": "1"}, capture_output=True, text=True)
    assert proc.returncode != 0 and "TRAIN_FILE" in proc.stderr
    proc = dry_run(script, tmp_path, {"VAL_FILE": str(tmp_path / "missing.parquet")})
    assert proc.returncode == 2 and "missing.parquet not found" in proc.stderr
    if script != VERL_SCRIPT:
        (tmp_path / "val.parquet@val").write_bytes(b"")
        proc = dry_run(script, tmp_path, {"VAL_FILE": str(tmp_path / "val.parquet@val")})
        assert proc.returncode == 2 and "@split" in proc.stderr


def test_extra_arguments_are_appended_and_win(tmp_path):
    c = effective_config_with_args(tmp_path, "worker.reward.reward_function_kwargs.shaping=giou", "trainer.total_epochs=1")
    assert c["worker.reward.reward_function_kwargs"]["shaping"] == "giou" and c["trainer.total_epochs"] == 1


def effective_config_with_args(tmp_path: Path, *args: str) -> dict:
    proc = dry_run(SCRIPTS["no-think"], tmp_path, args=args)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-len(args):] == list(args)
    out: dict = {}
    for line in lines[1:]:
        key, value = line.split("=", 1)
        if key.startswith("worker.reward.reward_function_kwargs."):
            out.setdefault("worker.reward.reward_function_kwargs", {})[key.rsplit(".", 1)[1]] = value
        else:
            out[key] = yaml.safe_load(value)
    return out


# -- the verl launch script (its keys are checked against verl's Hydra schema in tests/upstream) ---------------


@pytest.mark.parametrize("mode,max_response", [("no-think", 64), ("think", 512)])
def test_verl_script_dry_run(mode, max_response, tmp_path):
    proc = dry_run(VERL_SCRIPT, tmp_path, {"MODE": mode, "SHAPING": "giou"})
    assert proc.returncode == 0, proc.stderr
    args = dict(line.split("=", 1) for line in proc.stdout.splitlines())
    assert args["reward.custom_reward_function.path"] == "pkg://r1track.integrations.verl"
    assert args["reward.custom_reward_function.name"] == "compute_score"
    assert args["+reward.custom_reward_function.reward_kwargs.mode"] == mode
    assert args["+reward.custom_reward_function.reward_kwargs.shaping"] == "giou"
    assert args["data.max_response_length"] == str(max_response)
    assert args["+actor_rollout_ref.rollout.limit_images"] == "2"
    assert args["actor_rollout_ref.rollout.tensor_model_parallel_size"] == "1"
    assert args["data.image_key"] == "images"
    proc = dry_run(VERL_SCRIPT, tmp_path, {"MODE": "thinking"})
    assert proc.returncode == 2 and "MODE" in proc.stderr


def test_scripts_and_config_work_from_an_installed_easyr1_checkout(tmp_path):
    """`r1track install --easyr1` copies the plugin into an EasyR1 checkout; the scripts find the reward file
    and the templates there, and config.yaml's relative paths resolve from the EasyR1 root."""
    from r1track.install import TARGETS, apply_plan, plan_install

    easyr1 = tmp_path / "EasyR1"
    (easyr1 / "verl").mkdir(parents=True)
    (easyr1 / "examples").mkdir()
    (easyr1 / "examples" / "config.yaml").write_text("data: {}\n")
    plan = plan_install(TARGETS["easyr1"], easyr1, source=REPO)
    assert not plan.conflicts
    apply_plan(plan)
    for mode, script in SCRIPTS.items():
        installed = easyr1 / "examples" / "r1track" / script.name
        c = effective_config(installed, tmp_path)
        assert Path(c["data.format_prompt"]) == easyr1 / "examples" / "format_prompt" / (
            "r1track_think.jinja" if mode == "think" else "r1track.jinja")
        assert c["worker.reward.reward_function"] == f"{easyr1 / 'examples' / 'reward_function' / 'r1track.py'}:compute_score"
        load_like_easyr1(Path(c["worker.reward.reward_function"].rpartition(":")[0])).compute_score([])
    raw = yaml.safe_load(CONFIG.read_text())
    assert (easyr1 / raw["data"]["format_prompt"]).is_file()
    assert (easyr1 / raw["worker"]["reward"]["reward_function"].rpartition(":")[0]).is_file()


def test_instruction_first_template_is_generated_and_renders_the_reference_layout():
    path = PLUGIN_DIR / "format_prompt" / "r1track_think_instruction_first.jinja"
    assert path.read_text(encoding="utf-8") == easyr1_format_prompt(True, "instruction-first")
    boxes = [(10, 20, 30, 40)]
    problem = render_text("r1track-v1", think=False, boxes_xyxy_model=boxes)
    rendered = render_like_easyr1(path, problem)
    # R1-Track's think GRPO prompt: data.system_prompt + " " + "<image> <image>" + task
    task = problem[len("<image><image>"):]
    assert rendered == THINK_WRAPPER + " <image> <image>" + task
    assert rendered == render_text("r1track-v1", think=True, boxes_xyxy_model=boxes, think_layout="instruction-first")
    assert render_like_easyr1(path, rendered) == rendered  # already laid out: unchanged
    items = easyr1_content_list(rendered)
    assert [i["type"] for i in items] == ["text", "image", "text", "image", "text"] and items[2]["text"] == " "


def test_think_script_selects_the_layout(tmp_path):
    script = PLUGIN_DIR / "examples" / "qwen2_5_vl_3b_r1track_grpo_think.sh"
    c = effective_config(script, tmp_path, THINK_LAYOUT="instruction-first")
    assert Path(c["data.format_prompt"]).name == "r1track_think_instruction_first.jinja"


@pytest.mark.parametrize("version,ok", [("2.3.1", True), ("2.4.0", False), ("2.10.1", False), ("3.0", False)])
def test_launch_scripts_refuse_omegaconf_2_4(tmp_path, version, ok):
    fake = tmp_path / "site"
    fake.mkdir()
    (fake / "omegaconf.py").write_text(f"__version__ = {version!r}\n")
    for script in sorted((PLUGIN_DIR / "examples").glob("*.sh")):
        env = {"PYTHONPATH": os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")])}
        proc = dry_run(script, tmp_path, env)
        assert (proc.returncode == 0) == ok, proc.stderr
        if not ok:
            assert proc.returncode == 2 and "pip install 'omegaconf<2.4'" in proc.stderr and version in proc.stderr


def test_reward_file_scores_absent_and_visible_replies():
    # the file EasyR1 loads by path, called as its batch reward manager calls it (string kwargs from YAML).
    # Expected by hand (r1track.reward, Visibility): visible + exact box 1 + 0.5; absent + [] absent_reward 0.5;
    # absent + box and visible + [] the failure score -1; think: absent + strict think [] = 0.5 + 0.05 format.
    module = load_like_easyr1(REWARD_FILE)
    inputs = [
        {"response": "[0,0,10,10]", "response_length": 9, "ground_truth": "[0,0,10,10]"},
        {"response": "[]", "response_length": 2, "ground_truth": "[]"},
        {"response": "[0,0,10,10]", "response_length": 9, "ground_truth": "[]"},
        {"response": "[]", "response_length": 2, "ground_truth": "[0,0,10,10]"},
    ]
    scores = module.compute_score(inputs, mode="no-think", absent_reward="0.5")
    assert [s["overall"] for s in scores] == pytest.approx([1.5, 0.5, -1.0, -1.0])
    assert all(list(s) == list(scores[0]) for s in scores)
    think = [{"response": "<think>gone</think><answer>[]</answer>", "response_length": 200, "ground_truth": "[]"}]
    assert module.compute_score(think, mode="think", absent_reward="0.5")[0]["overall"] == pytest.approx(0.55)
