#!/usr/bin/env python3
"""Speed of `r1track data build` against the reference way of making training pairs.

Both sides make the same pairs from the same synthetic 1920x1080 JPEG frames in one run:

* reference way (as R1-Track's generation_data/sampling_data.py works, written here with PIL/numpy):
  one process; per image a full-resolution decode, a numpy crop with black padding, a resize of the
  whole window to the output side, a JPEG write and a box file;
* r1track: the real builder (`r1track.data.build.build`: read, check, plan, render, write the
  LLaMA-Factory set, stats) with --workers 1 and --workers N, in each --decode mode: exact (the default: full
  resolution, the pixels the tracker sends by default) and fast (JPEGs decoded at reduced DCT scale when the crop
  needs less resolution, the smaller image resized); both decode only down to the window's last row.

The reference way renders exactly the windows the builder planned (taken from its samples.jsonl),
so both do the same crops. Each method runs --repeat times and the fastest run counts (the
machine may be shared). "per core" divides by the number of rendering processes (capped at the
number of cores). Run from the repository root:

    python benchmarks/data_build.py                 # default: 12 sequences x 40 frames, 288 pairs, both profiles
    python benchmarks/data_build.py --sequences 4 --frames 20 --profile r1track
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from r1track.data.build import Source, build
from r1track.data.profiles import get_profile
from r1track.synthetic import write_got10k_split


def make_frames(root: Path, sequences: int, frames: int, seed: int) -> float:
    t = time.perf_counter()
    write_got10k_split(root, "train", n_sequences=sequences, n_frames=frames, size=(1920, 1080), seed=seed)
    return time.perf_counter() - t


def warm_cache(root: Path) -> tuple[int, int]:
    n = size = 0
    for p in root.rglob("*.jpg"):
        size += len(p.read_bytes())
        n += 1
    return n, size


def reference_way(samples: list[dict], out: Path) -> float:
    """Full decode, numpy crop + black padding, resize, JPEG write, box file: one process."""
    t = time.perf_counter()
    for s in samples:
        folder = out / f"pair_{s['index']:06d}"
        folder.mkdir(parents=True)
        for k, (frame, win, box) in enumerate(zip(s["frames"], s["windows"], s["boxes_xywh_orig"]), start=1):
            with Image.open(frame) as im:  # full-resolution decode (cv2.imread in the reference)
                im.load()
                img = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
            x0, y0, side, out_side = int(win["x0"]), int(win["y0"]), int(win["side"]), int(win["out_side"])
            h_img, w_img = img.shape[:2]
            crop = np.zeros((side, side, 3), np.uint8)  # black padding where the window leaves the frame
            ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + side, w_img), min(y0 + side, h_img)
            if ix1 > ix0 and iy1 > iy0:
                crop[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = img[iy0:iy1, ix0:ix1]
            resized = Image.fromarray(crop).resize((out_side, out_side), Image.Resampling.BILINEAR)
            resized.save(folder / f"image_{k}.jpg", quality=95)
            f = out_side / side
            x, y, w, h = box
            bb = [(x - x0) * f, (y - y0) * f, (x + w - x0) * f, (y + h - y0) * f]
            (folder / f"bbox_{k}.txt").write_text(",".join(str(int(v)) for v in bb))
    return time.perf_counter() - t


def decode_scales(samples: list[dict]) -> dict[str, int]:
    """How many crops the builder decoded at 1/1, 1/2, 1/4, 1/8 (from the window/output ratio)."""
    mix: dict[str, int] = {}
    for s in samples:
        for w in s["windows"]:
            need = w["out_side"] / w["side"]
            r = max([r for r in (1, 2, 4, 8) if 1 / r >= need] or [1])
            mix[f"1/{r}"] = mix.get(f"1/{r}", 0) + 1
    return dict(sorted(mix.items(), key=lambda kv: int(kv[0].split("/")[1])))


def run_profile(profile: str, data: Path, work: Path, workers_list: list[int], per_seq: int, seed: int, repeat: int,
                modes: list[str]) -> list[dict]:
    rows = []
    samples = None
    for mode in modes:
        cfg = get_profile(profile).replace(samples_per_sequence=per_seq, val_fraction=0.0, decode=mode)
        if profile == "r1track-5k":  # one pair per video is the recipe; more pairs keep the timing stable
            cfg = cfg.replace(num_samples=10**9)
        for workers in workers_list:
            best = math.inf
            for r in range(repeat):
                out = work / f"{profile}-{mode}-w{workers}-{r}" / "set"
                res = build([Source("got10k", data, "train")], out, cfg, seed=seed, workers=workers, progress=False,
                            log=lambda m: None)
                best = min(best, res.elapsed_s)
                n = res.stats["samples"]["written"]["train"]
                if samples is None:
                    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
                shutil.rmtree(out.parent)
            rows.append({"method": f"r1track builder --decode {mode} --workers {workers}", "procs": workers, "pairs": n,
                         "seconds": best, "mode": mode})
    secs = math.inf
    for r in range(repeat):
        secs = min(secs, reference_way(samples, work / f"{profile}-reference-{r}"))
        shutil.rmtree(work / f"{profile}-reference-{r}")
    rows.insert(0, {"method": "reference way (full decode, 1 process)", "procs": 1, "pairs": len(samples), "seconds": secs})
    rows[0]["decode"] = "1/1 always"
    rows[1]["decode"] = ", ".join(f"{k}: {v}" for k, v in decode_scales(samples).items())  # fast mode's scales
    return rows


def print_table(profile: str, rows: list[dict], cores: int) -> None:
    ref = rows[0]["pairs"] / rows[0]["seconds"]
    print(f"\nprofile {profile}  ({rows[0]['pairs']} pairs = {2 * rows[0]['pairs']} crops from 1920x1080 JPEG frames)")
    print("| method | processes | pairs | seconds | pairs/s | pairs/s per core | ratio per core | ratio total |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        rate = r["pairs"] / r["seconds"]
        per_core = rate / min(r["procs"], cores)
        print(f"| {r['method']} | {r['procs']} | {r['pairs']} | {r['seconds']:.2f} | {rate:.1f} | {per_core:.1f} | "
              f"{per_core / ref:.2f}x | {rate / ref:.2f}x |")
    print(f"decode scales of the builder's crops in --decode fast (exact: 1/1 always): {rows[1]['decode']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sequences", type=int, default=12)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--pairs-per-sequence", type=int, default=24)
    ap.add_argument("--profile", action="append", help="r1track and/or r1track-5k (default: both)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="the parallel run's worker count")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=2, help="runs per method; the fastest counts (default 2)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--decode", default="exact,fast",
                    help="the builder's decode modes to time, comma-separated (default exact,fast; exact is the default)")
    args = ap.parse_args(argv)
    modes = [m.strip() for m in args.decode.split(",") if m.strip()]
    cores = os.cpu_count() or 1
    tmp = Path(tempfile.mkdtemp(prefix="r1track-bench-"))
    try:
        data = tmp / "got10k"
        t_gen = make_frames(data, args.sequences, args.frames, args.seed)
        n, size = warm_cache(data)
        print(f"{n} synthetic 1920x1080 JPEG frames ({size / n / 1024:.0f} KiB each) in {t_gen:.1f} s; "
              f"{cores} cores; Python {sys.version.split()[0]}, Pillow {Image.__version__}")
        workers_list = sorted({1, max(1, args.workers)})
        for profile in args.profile or ["r1track", "r1track-5k"]:
            rows = run_profile(profile, data, tmp / "out", workers_list, args.pairs_per_sequence, args.seed, args.repeat,
                               modes)
            print_table(profile, rows, cores)
    finally:
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
