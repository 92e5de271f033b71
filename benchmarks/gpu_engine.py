"""The in-process ``transformers`` engine before and after issue 20, on a GPU (real model shapes) or on the CPU
(``--tiny``): frames/s of ``r1track eval``, where each engine call's time goes, GPU utilisation, and whether the
greedy replies stayed the same.

Checkpoints are built offline, random weights:

* GPU (default): the real shapes of Qwen2.5-VL-3B and Qwen3-VL-4B (docs/inprocess_engines.md lists them), in
  bfloat16 on the GPU, with the tiny builders' tokenizer and processor (``tests/upstream/tiny_*.py``, the
  published processor bounds) and the real 151,936-row vocabulary whose rows past the tokenizer are zero (tied
  embeddings: the LM head costs what it really costs, and greedy decoding emits only real tokens);
* ``--tiny``: the tiny random models themselves (float32, CPU), 32 sequences of 7 frames, batches of 16: about
  two minutes on an idle 2-core machine.

Runs, most important first (one that starts with less than 30 s of ``--budget-s`` left is skipped and listed):

1. Qwen2.5-VL ``after``: ``r1track eval`` batched (``--sequences`` sequences in flight, ``--batch-size``), this
   engine's defaults (direct inputs prepared ahead, dense or flash vision attention);
2. Qwen2.5-VL ``before``: the same with ``--engine-inputs processor --vision-attention stock`` (the engine as it
   was);
3. Qwen2.5-VL ``replies``: ``--reply-requests`` tracker requests answered greedily the old way, the new way and
   with ``--decode-cache static``: how many replies are identical to the old way's;
4. Qwen3-VL ``after`` and ``before`` (the other ``--families``);
5. Qwen2.5-VL ``after+static``: batched with ``--decode-cache static`` (CUDA: compiled decoding; its first batch
   compiles);
6. Qwen2.5-VL ``after, 1 in flight`` / ``before, 1 in flight``: one sequence, batch 1 (the reference design);
7. Qwen3-VL ``replies`` and ``after+static``. Sequences: synthetic (GOT-10k layout, 640x480) or ``--data`` (a GOT-10k
split folder, e.g. ../shared/data/realseq, its sequences repeated to ``--sequences``).

Output: a table on stdout after every run, and in ``--out``: ``results.jsonl`` (one JSON line per run, written as
it ends), ``table.md`` (the table so far), ``runs/`` (each run's ``run.json`` with the per-batch engine report).
Checkpoints and data go to ``--work`` (default a temporary folder, removed at the end), never to ``--out``.

    python benchmarks/gpu_engine.py --tiny                                  # CPU, tiny models, ~2 minutes idle
    PYTHONUNBUFFERED=1 timeout 480 python benchmarks/gpu_engine.py --out "$OUT"   # GPU machine (see the docs)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT / "src", ROOT / "tests" / "upstream"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))
for _var, _val in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false")):
    os.environ.setdefault(_var, _val)

BEFORE = {"engine_inputs": "processor", "vision_attention": "stock"}
AFTER: dict = {}
STATIC = {"decode_cache": "static"}

REAL_VOCAB = 151936
REAL_SHAPES = {
    "qwen2.5-vl": {
        "text": dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
                     num_key_value_heads=2, hidden_act="silu", max_position_embeddings=128000, rms_norm_eps=1e-6,
                     rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [16, 24, 24]}),
        "vision": dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, in_channels=3, patch_size=14,
                       spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[7, 15, 23, 31],
                       tokens_per_second=2, out_hidden_size=2048, hidden_act="silu"),
    },
    "qwen3-vl": {
        "text": dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=128, hidden_act="silu", max_position_embeddings=262144,
                     rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 5_000_000.0,
                                                         "mrope_section": [24, 20, 20], "mrope_interleaved": True}),
        "vision": dict(depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16, in_channels=3, patch_size=16,
                       spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=2560, hidden_act="gelu_pytorch_tanh",
                       num_position_embeddings=2304, deepstack_visual_indexes=[5, 11, 17]),
    },
}
"""The published configs' shapes (Qwen/Qwen2.5-VL-3B-Instruct, Qwen/Qwen3-VL-4B-Instruct ``config.json``)."""


def log(msg: str) -> None:
    print(f"[gpu_engine] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- checkpoints
def build_real(family: str, out: Path, device: str) -> Path:
    """A random-weight checkpoint with the family's real shapes (module docstring), built on ``device``."""
    import torch
    import transformers
    from transformers import GenerationConfig

    import tiny_qwen25vl
    import tiny_qwen3vl

    if (out / "config.json").is_file():
        return out
    major = int(transformers.__version__.split(".")[0])
    t0 = time.perf_counter()
    if family == "qwen2.5-vl":
        cfg = dict(tiny_qwen25vl.VARIANTS["sft"])
        tok, _, ids = tiny_qwen25vl.build_tokenizer(cfg, major)
        processor = tiny_qwen25vl.build_processor(tok, cfg)
        config_cls, model_cls = transformers.Qwen2_5_VLConfig, transformers.Qwen2_5_VLForConditionalGeneration
    else:
        cfg = dict(tiny_qwen3vl.VARIANTS["sft"])
        tok, _, ids = tiny_qwen25vl.build_tokenizer(cfg, major)
        processor = tiny_qwen3vl.build_processor(tok, cfg)
        config_cls, model_cls = transformers.Qwen3VLConfig, transformers.Qwen3VLForConditionalGeneration
    eot, im_end = ids["<|endoftext|>"], ids["<|im_end|>"]
    shapes = REAL_SHAPES[family]
    text = dict(shapes["text"], vocab_size=REAL_VOCAB, bos_token_id=eot, eos_token_id=im_end, pad_token_id=eot,
                tie_word_embeddings=True)
    config = config_cls(text_config=text, vision_config=dict(shapes["vision"]), image_token_id=ids["<|image_pad|>"],
                        video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                        vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=True)
    for key, value in (("bos_token_id", eot), ("eos_token_id", im_end), ("pad_token_id", eot)):
        setattr(config, key, value)
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = model_cls(config).eval()
    finally:
        torch.set_default_dtype(default)
    with torch.no_grad():
        for emb in (model.get_input_embeddings(), model.get_output_embeddings()):  # tied: one tensor
            emb.weight[len(tok):] = 0
    model.config.dtype = "bfloat16"
    model.generation_config = GenerationConfig(eos_token_id=[im_end, eot], pad_token_id=eot, bos_token_id=eot,
                                               do_sample=False)
    params = sum(p.numel() for p in model.parameters())
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    tok.save_pretrained(out)
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    log(f"built {family} real shapes ({params / 1e9:.2f} B parameters) in {time.perf_counter() - t0:.1f} s -> {out}")
    return out


# ---------------------------------------------------------------------------------------------- GPU utilisation
class GpuSampler:
    """``nvidia-smi`` utilisation samples every 0.5 s in the background (none when it is missing)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self.proc = None
        if shutil.which("nvidia-smi") is None:
            return
        try:
            self.proc = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                          "-lms", "500"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError:
            return
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            try:
                self.samples.append((time.monotonic(), float(line.strip().split(",")[0])))
            except ValueError:
                pass

    def mean(self, t0: float, t1: float) -> float | None:
        values = [v for t, v in self.samples if t0 <= t <= t1]
        return round(statistics.fmean(values), 1) if values else None

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()


# ---------------------------------------------------------------------------------------------- runs
def base_sequences(args, work: Path) -> list:
    """The sequences to repeat: ``--data``'s, or synthetic ones (written once to ``work``)."""
    from r1track.data import read_got10k
    from r1track.synthetic import write_got10k_split

    if args.data:
        return list(read_got10k(args.data, "val"))
    root = work / "data"
    if not (root / "val" / "list.txt").is_file():
        write_got10k_split(root, "val", n_sequences=min(args.sequences, 32),
                           n_frames=max(args.frames, args.sequential_frames), size=(640, 480), seed=7)
    return list(read_got10k(root, "val"))


def take(base: list, n_sequences: int, n_frames: int) -> list:
    """``n_sequences`` copies (renamed) of the base sequences in turn, each cut to its first ``n_frames`` frames."""
    out = []
    for k in range(n_sequences):
        seq = base[k % len(base)]
        out.append(dataclasses.replace(seq, name=f"{seq.name}_{k:03d}", frames=seq.frames[:n_frames],
                                       boxes_xywh_orig=seq.boxes_xywh_orig[:n_frames], visible=seq.visible[:n_frames],
                                       cover=None if seq.cover is None else seq.cover[:n_frames]))
    return out


def eval_run(args, family: str, model: Path, sequences: list, options: dict, *, batch_size: int, concurrency: int,
             out: Path) -> dict:
    from r1track.evaluate import EvalSettings, evaluate
    from r1track.tracker import TrackerParams

    params = TrackerParams(model_family=family, max_tokens=args.max_tokens, structured_output=False)
    settings = EvalSettings(out_dir=out, backend="transformers", model=str(model), concurrency=concurrency,
                            params=params, progress=False,
                            backend_options={"batch_size": batch_size, "device": args.device, "dtype": args.dtype,
                                             **options})
    run = evaluate(sequences, settings)
    engine = run.engine or {}
    per = engine.get("per_batch", [])
    full = [b for b in per if b.get("requests") == batch_size] or per

    def med(key: str):
        values = [b[key] for b in full if key in b]
        return round(statistics.median(values), 4) if values else None

    return {"frames": run.frames_tracked, "seconds": round(run.seconds, 2), "fps": round(run.fps, 2),
            "batches": len(per), "fill": engine.get("totals", {}).get("fill_mean"),
            "median_batch": {k: med(k) for k in ("seconds", "inputs_s", "vision_s", "prefill_s", "decode_s")},
            "peak_memory_mb": engine.get("totals", {}).get("peak_memory_mb"), "settings": engine.get("settings", {}),
            "failed": len(run.failed)}


def replies_run(args, family: str, model: Path) -> dict:
    """Greedy replies of the same tracker requests, the old way, the new way, and with the static cache."""
    from r1track.backends import make_backend
    from r1track.testing.requests import ask_all_at_once, fixed_requests
    from r1track.tracker import TrackerParams

    per_sequence = 4
    requests = fixed_requests(TrackerParams(model_family=family, max_tokens=args.max_tokens),
                              n_sequences=-(-args.reply_requests // per_sequence), n_frames=per_sequence,
                              size=(640, 480), seed=300, grounding=False, prefix="replies")[: args.reply_requests]

    def ask(options: dict) -> list[str]:
        backend = make_backend("transformers", model=str(model), batch_size=args.batch_size, device=args.device,
                               dtype=args.dtype, **options)
        return [reply.text for reply in ask_all_at_once(backend, requests)]

    before = ask(BEFORE)
    after = ask(AFTER)
    out = {"requests": len(before), "after_identical": sum(a == b for a, b in zip(before, after))}
    if not args.skip_static:
        static = ask(STATIC)
        out["static_identical"] = sum(a == b for a, b in zip(before, static))
    return out


# ---------------------------------------------------------------------------------------------- table
def table(rows: list[dict]) -> str:
    head = ("| family | run | frames | fps | x before | GPU util % | per full batch: s / inputs / vision / prefill / "
            "decode | fill | peak GiB |")
    lines = [head, "|" + "---|" * 9]
    base = {(r["family"], r.get("inflight")): r["fps"] for r in rows if r.get("way") == "before" and "fps" in r}
    for r in rows:
        if "fps" not in r:
            extra = {k: v for k, v in r.items() if k not in ("family", "run")}
            lines.append(f"| {r['family']} | {r['run']} | {json.dumps(extra)} | | | | | | |")
            continue
        m = r["median_batch"]
        split = " / ".join("-" if m.get(k) is None else f"{m[k]:.3f}"
                           for k in ("seconds", "inputs_s", "vision_s", "prefill_s", "decode_s"))
        ref = base.get((r["family"], r.get("inflight")))
        ratio = f"{r['fps'] / ref:.2f}" if ref and r.get("way") != "before" else ""
        peak = f"{r['peak_memory_mb'] / 1024:.1f}" if r.get("peak_memory_mb") else "-"
        util = "-" if r.get("gpu_util") is None else f"{r['gpu_util']:.0f}"
        lines.append(f"| {r['family']} | {r['run']} | {r['frames']} | {r['fps']:.2f} | {ratio} | {util} | {split} | "
                     f"{r['fill'] if r['fill'] is not None else '-'} | {peak} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="CPU, the tiny random models (about two minutes idle)")
    ap.add_argument("--families", default="qwen2.5-vl,qwen3-vl", help="comma-separated (default both)")
    ap.add_argument("--out", type=Path, default=None, help="results folder (default runs/gpu_engine[-tiny])")
    ap.add_argument("--work", type=Path, default=None, help="checkpoints and data (default: a temporary folder)")
    ap.add_argument("--data", type=Path, default=None, help="a GOT-10k split folder to repeat (default synthetic)")
    ap.add_argument("--sequences", type=int, default=None, help="sequences in flight (default GPU 128, tiny 32)")
    ap.add_argument("--frames", type=int, default=None, help="frames per sequence, the first included (GPU 5, tiny 7)")
    ap.add_argument("--batch-size", type=int, default=None, help="engine batch (default GPU 64, tiny 16)")
    ap.add_argument("--sequential-frames", type=int, default=None, help="frames of the 1-in-flight runs (GPU 16, "
                    "tiny 0 = skipped)")
    ap.add_argument("--reply-requests", type=int, default=None, help="requests of the replies check (GPU 64, tiny 16; "
                    "0 = skipped)")
    ap.add_argument("--max-tokens", type=int, default=18, help="new tokens per reply (default 18, as issue 20)")
    ap.add_argument("--skip-static", action="store_true", help="no --decode-cache static run")
    ap.add_argument("--budget-s", type=float, default=None, help="stop starting runs after this (GPU 420, tiny 900)")
    args = ap.parse_args(argv)
    tiny = args.tiny
    for name, gpu, cpu in (("sequences", 128, 32), ("frames", 5, 7), ("batch_size", 64, 16),
                           ("sequential_frames", 16, 0), ("reply_requests", 64, 16), ("budget_s", 420.0, 900.0)):
        if getattr(args, name) is None:
            setattr(args, name, cpu if tiny else gpu)
    args.device, args.dtype = ("cpu", "float32") if tiny else ("cuda", "bfloat16")
    t_start = time.monotonic()
    out = args.out or ROOT / "runs" / ("gpu_engine-tiny" if tiny else "gpu_engine")
    out.mkdir(parents=True, exist_ok=True)
    own_work = args.work is None
    work = Path(tempfile.mkdtemp(prefix="r1track-gpu-engine-")) if own_work else args.work
    work.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    rows: list[dict] = []

    import torch
    import transformers

    if not tiny and not torch.cuda.is_available():
        log("no CUDA device: use --tiny for the CPU version")
        return 2
    env = {"torch": torch.__version__, "transformers": transformers.__version__,
           "device": torch.cuda.get_device_name(0) if not tiny else "cpu", "cpus": os.cpu_count(),
           "load_1min": os.getloadavg()[0], "args": {k: str(v) for k, v in vars(args).items()}}
    (out / "environment.json").write_text(json.dumps(env, indent=1))
    log(f"environment: {env}")
    sampler = GpuSampler() if not tiny else None
    skipped: list[str] = []

    def record(row: dict) -> None:
        rows.append(row)
        with open(results, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        (out / "table.md").write_text(table(rows) + "\n")
        print(table([row]).splitlines()[-1], flush=True)  # this run's row as it ends; the whole table at the end

    def time_left() -> float:
        return args.budget_s - (time.monotonic() - t_start)

    try:
        families = args.families.split(",")
        first, rest = families[0], families[1:]
        plan = [(first, "after"), (first, "before"), (first, "replies")]
        plan += [(f, run) for f in rest for run in ("after", "before")]
        plan += [] if args.skip_static else [(first, "after+static")]
        plan += [(first, "after, 1 in flight"), (first, "before, 1 in flight")] if args.sequential_frames else []
        plan += [(f, "replies") for f in rest] + ([] if args.skip_static else [(f, "after+static") for f in rest])
        options = {"after": AFTER, "before": BEFORE, "after+static": STATIC}
        checkpoints: dict[str, Path] = {}
        base = base_sequences(args, work)
        seqs = take(base, args.sequences, args.frames)
        for family, name in plan:
            if name == "replies" and not args.reply_requests:
                continue
            if time_left() < 30:
                skipped.append(f"{family} {name}")
                log(f"skipped {family} {name}: budget spent")
                continue
            t0 = time.monotonic()
            try:
                if family not in checkpoints:
                    ckpt = work / f"ckpt-{family}"
                    if tiny:
                        import tiny_qwen3vl

                        tiny_qwen3vl.build_family(ckpt, family)
                    else:
                        build_real(family, ckpt, "cuda")
                    checkpoints[family] = ckpt
                    from transformers import AutoProcessor

                    AutoProcessor.from_pretrained(ckpt)  # the lazy imports (torchvision, ...) before any timed run
                    log(f"{family}: checkpoint ready in {time.monotonic() - t0:.1f} s")
                    t0 = time.monotonic()
                ckpt = checkpoints[family]
                if name == "replies":
                    row = {"family": family, "run": name, **replies_run(args, family, ckpt)}
                else:
                    inflight = name.endswith("1 in flight")
                    way = name.split(",")[0]
                    folder = out / "runs" / f"{family}-{name.replace(' ', '').replace(',', '-')}"
                    shutil.rmtree(folder, ignore_errors=True)
                    row = {"family": family, "run": name, "way": way.split("+")[0], "inflight": inflight,
                           **eval_run(args, family, ckpt, take(base, 1, args.sequential_frames) if inflight else seqs,
                                      options[way], batch_size=1 if inflight else args.batch_size,
                                      concurrency=1 if inflight else len(seqs), out=folder)}
                    if sampler is not None:
                        row["gpu_util"] = sampler.mean(t0, time.monotonic())
            except Exception as exc:  # noqa: BLE001 - one failed run must not lose the others
                row = {"family": family, "run": name, "error": f"{type(exc).__name__}: {exc}"[:400]}
                log(f"{family} {name} FAILED: {row['error']}")
            row["wall_s"] = round(time.monotonic() - t0, 1)
            record(row)
            if not tiny:
                torch.cuda.empty_cache()
    finally:
        if sampler is not None:
            sampler.close()
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
    print("\n" + table(rows), flush=True)
    if skipped:
        print(f"skipped (budget {args.budget_s:.0f} s): {', '.join(skipped)}", flush=True)
    print(f"results: {results}, {out / 'table.md'}; total {time.monotonic() - t_start:.0f} s", flush=True)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
