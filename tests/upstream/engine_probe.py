"""Send one fixed set of tracker requests to several engines and write every reply (run INSIDE the vllm venv).

    python tests/upstream/engine_probe.py MODEL_DIR OUT.json [--served URL NAME]... [--vllm] [--transformers]

The requests are real tracker requests on synthetic sequences (``r1track.synthetic``): per sequence one text
grounding request on the first frame, then one tracking request per frame, built by a tracker whose state
follows the ground truth (its reply is the true box), so every engine gets the very same requests whatever it
answers. Each request is asked twice: free text, and with the no-think answer regex (structured output).

Engines: ``--served URL NAME`` (an OpenAI-compatible server, through the ``openai`` backend; repeatable),
``--vllm`` (the in-process ``vllm`` backend, engine settings as the test server's) and ``--transformers``
(the in-process ``transformers`` backend on CPU, batched through the async path, and once more one request at
a time through the sync path). The transformers engine has no structured output: it answers the free-text set
only. OUT.json: ``{engine: {"free": [texts], "regex": [texts]}}`` plus ``"n_requests"``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
sys.path.insert(0, str(SRC))

N_SEQUENCES = 3
N_FRAMES = 8
CROP = 224  # the tiny serve model's processor leaves 224-px crops unresized (max_pixels 224^2)


def build_requests(regex: bool) -> list:
    from r1track.testing.requests import fixed_requests
    from r1track.tracker import TrackerParams

    params = TrackerParams(crop_size=CROP, redetect_crop_size=CROP, model_max_pixels=CROP * CROP,
                           structured_output=regex, grounding_max_pixels=CROP * CROP)
    return fixed_requests(params, n_sequences=N_SEQUENCES, n_frames=N_FRAMES, seed=100)


def ask_all(backend, *sets) -> list[list[str]]:
    """Every set's replies, all sets in one event loop (an in-process engine loads once)."""

    async def run():
        out = []
        for requests in sets:
            out.append([r.text for r in await asyncio.gather(*(backend.complete_async(r) for r in requests))])
        await backend.aclose()
        return out

    return asyncio.run(run())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--served", nargs=2, action="append", default=[], metavar=("URL", "NAME"))
    ap.add_argument("--vllm", action="store_true")
    ap.add_argument("--transformers", action="store_true")
    args = ap.parse_args()
    free, regex = build_requests(False), build_requests(True)
    out: dict = {"n_requests": len(free)}

    from r1track.backends import make_backend

    for url, name in args.served:
        texts = ask_all(make_backend("openai", base_url=url, model=name), free, regex)
        out[f"served:{name}"] = {"free": texts[0], "regex": texts[1]}
    if args.vllm:
        backend = make_backend("vllm", model=args.model, batch_size=8, dtype="bfloat16", max_model_len=2048,
                               enforce_eager=True, engine_args={"structured_outputs_config": {
                                   "backend": "xgrammar", "disable_any_whitespace": True}})
        texts = ask_all(backend, free, regex)
        out["vllm"] = {"free": texts[0], "regex": texts[1]}
        out["vllm_stats"] = dict(backend.stats)
    if args.transformers:
        backend = make_backend("transformers", model=args.model, batch_size=8, device="cpu")
        out["transformers_single"] = {"free": [backend.complete(r).text for r in free]}
        out["transformers"] = {"free": ask_all(backend, free)[0]}
        out["transformers_stats"] = dict(backend.stats)
    Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
