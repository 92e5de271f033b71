"""Prove the transformers engine's speed paths exact on tiny models of every family (run INSIDE a venv with torch
and transformers; r1track runs from this checkout's ``src``)::

    python tests/upstream/hf_engine_probe.py WORK_DIR OUT.json [--families qwen2.5-vl,qwen3-vl,qwen3.5]

Per family it builds the tiny random checkpoint (``tiny_qwen25vl.py`` / ``tiny_qwen3vl.py``, fp32 ``sft`` variant:
the published processor bounds) in WORK_DIR and checks:

* **inputs**: for every image processor class this transformers offers for the checkpoint (``use_fast`` False and
  True: PIL and torchvision), :class:`r1track.backends.hf_inputs.DirectInputs` calibrates, and its model inputs
  equal the processor's exactly (every key, dtype and value; ``pixel_values`` float32) for a two-request batch at
  every crop side the family's data builder writes (``ModelFamily.data_crop_sides``) and at non-square frames,
  with the pixel rows made on the host and through the device lookup path;
* **vision**: the vision tower with the dense path (:mod:`r1track.backends.hf_vision`) against the stock one, in
  float32: every output (merged embeddings, last hidden state, DeepStack features) within 1e-5 (max abs) for
  equal windows, ragged windows and mixed image sizes;
* **replies**: real tracker requests (synthetic sequences, a grounding request each) answered greedily through the
  ``transformers`` backend the way before (``engine_inputs=processor``, ``vision_attention=stock``), the new way
  (defaults, every request prepared ahead in a thread pool, batched through the async path) and with
  ``decode_cache=static``: the three reply lists must be identical (``static_cache`` records whether the static
  cache ran, or which error sent the engine back to the dynamic one).

OUT.json holds every measurement; the exit status is 1 when a check failed (the failures are listed on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))
sys.path.insert(0, str(HERE))

TOL = 1e-5
FAMILIES = ("qwen2.5-vl", "qwen3-vl", "qwen3.5")


def log(msg: str) -> None:
    print(f"[hf_engine_probe] {msg}", file=sys.stderr, flush=True)


def build_model(family: str, work: Path) -> Path:
    import tiny_qwen3vl

    return tiny_qwen3vl.build_family(work / family, family)


def processors(path: Path) -> list:
    """The checkpoint's processor as AutoProcessor loads it, then each other image processor class on offer."""
    from transformers import AutoProcessor

    found, seen = [], set()
    for kw in ({}, {"use_fast": False}, {"use_fast": True}):
        try:
            proc = AutoProcessor.from_pretrained(path, padding_side="left", **kw)
        except Exception as exc:  # noqa: BLE001 - a backend this install lacks
            log(f"AutoProcessor({kw}) unavailable: {type(exc).__name__}: {exc}")
            continue
        name = type(proc.image_processor).__name__
        if name not in seen:
            seen.add(name)
            found.append(proc)
    return found


def check_inputs(family, proc, problems: list) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from r1track.backends.hf_inputs import DirectInputs

    cls = type(proc.image_processor).__name__
    direct = DirectInputs.create(proc)
    rng = np.random.default_rng(1)
    f = family.factor
    sizes = [(s, s) for s in family.data_crop_sides] + [(f * 12, f * 9), (f * 9, f * 16), (f * 20, f * 11)]
    checked = []
    for w, h in sizes:
        if not direct.geo.keeps(w, h):
            continue
        images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for _ in range(3)]
        texts = [direct._chat_text(2, f"The target is at [{w // 4},{h // 4},{w // 2},{h // 2}]. Where is it?"),
                 direct._chat_text(1, "Find the red car.")]
        ref = proc(text=texts, images=images, padding=True, return_tensors="pt")
        prepared = [direct.prepare(texts[0], [direct.prepare_image(im) for im in images[:2]]),
                    direct.prepare(texts[1], [direct.prepare_image(images[2])])]
        for host in (True, False):
            for p in prepared:
                for im in p.images:
                    im.rows = direct.host_rows_of(im.patches) if host else None
            mine = direct.assemble(prepared)
            bad = [k for k in ref.keys() if k not in mine or ref[k].dtype != mine[k].dtype
                   or ref[k].shape != mine[k].shape or not torch.equal(ref[k], mine[k])]
            if set(mine) != set(ref.keys()) or bad:
                problems.append(f"{family.name} {cls} {w}x{h} host_rows={host}: differs in {bad or 'keys'}")
        checked.append(f"{w}x{h}")
    return {"image_processor": cls, "keys": sorted(ref.keys()), "pixel_dtype": str(ref["pixel_values"].dtype),
            "sizes": checked}


def check_vision(family, path: Path, problems: list) -> dict:
    import numpy as np
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from r1track.backends import hf_vision

    proc = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32).eval()
    tower = hf_vision.vision_tower(model)
    rng = np.random.default_rng(2)
    sides = family.data_crop_sides
    sets = {"equal": [family.default_crop_side] * 4,
            "ragged": [s for s in sides if (s // family.factor) % 4][:2] * 2 or [sides[0]],
            "mixed": list(sides)}
    out = {}
    for name, set_sides in sets.items():
        images = [Image.fromarray(rng.integers(0, 256, (s, s, 3), dtype=np.uint8)) for s in set_sides]
        inp = proc.image_processor(images=images, return_tensors="pt")
        with torch.inference_mode():
            hf_vision.remove_dense_attention(model)
            ref = tower(inp["pixel_values"], grid_thw=inp["image_grid_thw"])
            hf_vision.install_dense_attention(model)
            got = tower(inp["pixel_values"], grid_thw=inp["image_grid_thw"])
        diffs = {}
        for key in ("pooler_output", "last_hidden_state"):
            diffs[key] = (getattr(ref, key) - getattr(got, key)).abs().max().item()
        deep = getattr(ref, "deepstack_features", None) or []
        if deep:
            diffs["deepstack_features"] = max((a - b).abs().max().item() for a, b in zip(deep, got.deepstack_features))
        worst = max(diffs.values())
        if worst > TOL:
            problems.append(f"{family.name} vision {name} ({set_sides}): max abs difference {worst:.3g} > {TOL}")
        out[name] = {"sides": set_sides, "max_abs_diff": diffs}
    return out


def check_refusal(path: Path, problems: list) -> dict:
    """On a transformers version outside VERIFIED_TRANSFORMERS, ``auto`` keeps the stock attention and says why;
    ``dense`` installs the dense path anyway (after its self-check); ``stock`` never patches."""
    import torch
    import transformers
    from transformers import AutoModelForImageTextToText

    from r1track.backends import hf_vision

    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32).eval()
    real = transformers.__version__
    out = {}
    try:
        transformers.__version__ = "5.99.0"
        auto = hf_vision.setup_vision_attention(model, "auto")
        out["auto"] = auto.describe()
        if auto.implementation != "stock" or "5.99.0" in real or "not one the dense path was verified" not in auto.reason:
            problems.append(f"unverified version: auto chose {auto.describe()}")
        forced = hf_vision.setup_vision_attention(model, "dense")
        out["dense"] = forced.describe()
        if forced.implementation != "dense" or "NOT verified" not in forced.reason:
            problems.append(f"unverified version: dense chose {forced.describe()}")
    finally:
        transformers.__version__ = real
        hf_vision.remove_dense_attention(model)
    stock = hf_vision.setup_vision_attention(model, "stock")
    out["stock"] = stock.describe()
    if stock.implementation != "stock" or "forward" in hf_vision.vision_tower(model).blocks[0].attn.__dict__:
        problems.append("stock mode patched the model")
    return out


def tracker_requests(family) -> list:
    from r1track.testing.requests import fixed_requests
    from r1track.tracker import TrackerParams

    return fixed_requests(TrackerParams(model_family=family.name, max_tokens=18), n_sequences=3, n_frames=6, seed=200)


def ask(path: Path, requests: list, ahead: bool, **options) -> tuple[list[str], dict, float]:
    from r1track.backends import make_backend
    from r1track.testing.requests import ask_all_at_once

    backend = make_backend("transformers", model=str(path), batch_size=8, device="cpu", **options)
    t0 = time.perf_counter()
    texts = [reply.text for reply in ask_all_at_once(backend, requests, ahead=ahead)]
    return texts, backend.engine_report().to_json(per_batch=False), time.perf_counter() - t0


def check_replies(family, path: Path, problems: list) -> dict:
    requests = tracker_requests(family)
    before, rep_before, s_before = ask(path, requests, False, engine_inputs="processor", vision_attention="stock")
    after, rep_after, s_after = ask(path, requests, True)
    static, rep_static, s_static = ask(path, requests, True, decode_cache="static")
    for name, texts in (("new way", after), ("static cache", static)):
        differ = [i for i, (a, b) in enumerate(zip(before, texts)) if a != b]
        if differ or len(texts) != len(before):
            problems.append(f"{family.name} replies {name}: {len(differ)} of {len(before)} differ from before "
                            f"(first: {before[differ[0]]!r} vs {texts[differ[0]]!r})" if differ else "count")
    if not rep_after["settings"]["vision_attention"].startswith("dense"):
        problems.append(f"{family.name}: the new way did not use the dense path: {rep_after['settings']}")
    if rep_after["totals"].get("paths") != {"direct": rep_after["totals"]["batches"]}:
        problems.append(f"{family.name}: not every batch used direct inputs: {rep_after['totals']}")
    if rep_after["totals"].get("inline", 0):
        problems.append(f"{family.name}: {rep_after['totals']['inline']} requests were not prepared ahead")
    return {"n_requests": len(requests), "identical": before == after == static,
            "static_cache": rep_static["settings"]["decode_cache"],
            "distinct_replies": len(set(before)), "seconds": {"before": s_before, "after": s_after, "static": s_static},
            "report_after": rep_after, "sample": before[:3]}


def main() -> int:
    import torch
    import transformers

    from r1track.models import get_family

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("work", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--families", default=",".join(FAMILIES))
    args = ap.parse_args()
    torch.manual_seed(0)
    problems: list[str] = []
    out: dict = {"transformers": transformers.__version__, "torch": torch.__version__, "families": {}}
    for name in args.families.split(","):
        family = get_family(name)
        t0 = time.perf_counter()
        path = build_model(name, args.work)
        result: dict = {"inputs": [check_inputs(family, p, problems) for p in processors(path)]}
        result["vision"] = check_vision(family, path, problems)
        result["replies"] = check_replies(family, path, problems)
        result["refusal"] = check_refusal(path, problems)
        result["seconds"] = round(time.perf_counter() - t0, 1)
        out["families"][name] = result
        log(f"{name}: {len(result['inputs'])} image processor(s), vision {result['vision']}, replies identical: "
            f"{result['replies']['identical']} ({result['seconds']} s)")
    out["problems"] = problems
    args.out.write_text(json.dumps(out, indent=1))
    for p in problems:
        log("FAILED: " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
