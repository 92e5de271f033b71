"""Search-window policies measured by geometry: target-in-crop rate, AO and SR0.5 per policy (no GPU, no model).

Every policy of :class:`r1track.window.WindowPolicy` tracks the same sequences with the ``oracle`` backend, which
answers the ground truth whenever enough of it is in the search crop, so what changes between policies is only
*where the window goes*:

* ``oracle``: the plain oracle. A frame fails only when less than ``min_inside_fraction`` (0.5) of the target lies
  in the crop (its answer is then refused as ``outside-crop``): pure geometry.
* ``failures``: the oracle with a SIMULATED failure model (:class:`r1track.backends.oracle.FailureModel`: misses,
  jumps to a wrong place, jitter in model pixels; a wrong place whenever less than half the target is in the crop).
  A simulation of a model's mistakes, not a measurement of any model; jitter is in crop pixels, so a larger window
  costs precision as it would a model.

Sequences: the real ones (``R1TRACK_REALSEQ``, default ``../shared/data/realseq``; 6 sequences, every frame
visible) and synthetic fast-motion ones (``r1track.synthetic`` motion profile ``fast``: accelerations, direction
changes, small targets), each at frame skip 1 and 3 (every 3rd frame: a slower camera, a faster target).

Columns: ``in crop`` = share of frames 2..N (visible target) with at least half the target's box inside the search
window; ``full`` = the whole box inside; ``target px`` = mean sqrt(w*h) of the target in crop pixels (what the
model sees; a larger window shows it smaller); AO and SR0.5 by GOT-10k's rule on the same frames
(``r1track.metrics``); ``dAO`` = AO minus ``last-box``'s on the same row group.

    python benchmarks/window_policies.py                       # the full table (a few minutes on 2 cores)
    python benchmarks/window_policies.py --no-real --skips 3 --synthetic 4 --frames 90    # a quick look
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from r1track.backends.oracle import FailureModel
from r1track.data.readers import read_dataset
from r1track.evaluate import EvalSettings, evaluate
from r1track.fsutil import atomic_write_text
from r1track.metrics import got10k_scores, got10k_sequence_ious, window_coverage, window_frames
from r1track.results import read_result, read_windows
from r1track.synthetic import write_got10k_split
from r1track.tracker import TrackerParams
from r1track.window import WINDOW_POLICIES
from realseq import real_sequences


def subsample(seqs, skip: int, dest: Path) -> list:
    """The sequences with every ``skip``-th frame (frame 1 kept), as a GOT-10k-style folder of renumbered links
    under ``dest`` (frames are linked, never copied), read back."""
    dest.mkdir(parents=True, exist_ok=True)
    for s in seqs:
        folder = dest / s.name
        folder.mkdir()
        keep = list(range(0, len(s.frames), skip))
        for n, i in enumerate(keep, start=1):
            (folder / f"{n:08d}{s.frames[i].suffix}").symlink_to(Path(s.frames[i]).resolve())
        atomic_write_text(folder / "groundtruth.txt", "".join(",".join(repr(float(v)) for v in s.boxes_xywh_orig[i]) + "\n"
                                                             for i in keep))
        if s.cover is not None:
            atomic_write_text(folder / "cover.label", "".join(f"{int(s.cover[i])}\n" for i in keep))
            atomic_write_text(folder / "absence.label", "".join(f"{int(not s.visible[i])}\n" for i in keep))
    atomic_write_text(dest / "list.txt", "".join(s.name + "\n" for s in seqs))
    return list(read_dataset("got10k", dest))


def measure(seqs, run_dir: Path, min_inside_fraction: float) -> dict[str, float]:
    """in_crop, in_crop_full, target_px, ao, sr50 of one run, pooled over its sequences' frames 2..N with a visible
    target."""
    ious, frames = [], []
    for s in seqs:
        boxes, _ = read_result(run_dir / "results", s.name)
        with Image.open(s.frames[0]) as im:
            size = im.size
        ious.append(got10k_sequence_ious(boxes, s.boxes_xywh_orig, s.visible.astype(int), size))
        win = read_windows(run_dir / "windows", s.name)
        frames.append(window_frames(win[:, :4], win[:, 4], s.boxes_xywh_orig, s.visible))
    cov = window_coverage(frames, min_inside_fraction)
    sc = got10k_scores(np.concatenate(ious))
    return {"in_crop": cov.in_crop, "full": cov.in_crop_full, "px": cov.crop_target_px, "ao": sc.ao, "sr50": sc.sr50,
            "frames": sc.n_frames}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policies", default=",".join(WINDOW_POLICIES), help="comma-separated (default: all)")
    ap.add_argument("--skips", default="1,3", help="frame skips, comma-separated (default 1,3)")
    ap.add_argument("--miss", type=float, default=0.05, help="simulated failures: miss rate (default 0.05)")
    ap.add_argument("--jump", type=float, default=0.05, help="simulated failures: jump rate (default 0.05)")
    ap.add_argument("--jitter", type=float, default=2.0, help="simulated failures: jitter, crop px (default 2)")
    ap.add_argument("--synthetic", type=int, default=12, help="synthetic fast-motion sequences (default 12)")
    ap.add_argument("--frames", type=int, default=150, help="frames per synthetic sequence at skip 1 (default 150)")
    ap.add_argument("--size", default="640x480", help="synthetic frame size WxH (default 640x480)")
    ap.add_argument("--object-scale", default="0.04,0.07", help="synthetic object width / shorter image side, LO,HI")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-real", action="store_true", help="synthetic sequences only")
    ap.add_argument("--no-synthetic", action="store_true", help="real sequences only")
    args = ap.parse_args(argv)
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    for p in policies:
        TrackerParams(window_policy=p)  # ValueError naming the known policies
    skips = [int(k) for k in args.skips.split(",")]
    failures = FailureModel(args.miss, args.jump, args.jitter)
    min_inside = TrackerParams().min_inside_fraction
    t_start = time.perf_counter()
    tracked = 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sources = {}
        if not args.no_synthetic:
            size = tuple(int(v) for v in args.size.lower().split("x"))
            scale = tuple(float(v) for v in args.object_scale.split(","))
            write_got10k_split(tmp / "syn", "val", n_sequences=args.synthetic, n_frames=args.frames, size=size,
                               seed=args.seed + 23, object_scale=scale, motion="fast")
            sources[f"synthetic fast {args.size}, object {args.object_scale} ({args.synthetic})"] = \
                list(read_dataset("got10k", tmp / "syn", split="val"))
        real = real_sequences(not args.no_real)
        if real:
            sources[f"real ({len(real)})"] = real
        models = {"oracle": None, f"failures (miss {args.miss:g}, jump {args.jump:g}, jitter {args.jitter:g} px)": failures}
        print("SIMULATED failures are a simulation of a model's mistakes, not a measurement of any model.")
        print("| sequences | skip | answers | policy | in crop | full | target px | AO | SR0.5 | dAO |")
        print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|")
        best = []
        for k, (set_name, seqs) in enumerate(sources.items()):
            for skip in skips:
                run_seqs = seqs if skip == 1 else subsample(seqs, skip, tmp / f"skip{skip}-{k}")
                for m, (model_name, model) in enumerate(models.items()):
                    rows = {}
                    for policy in policies:
                        out = tmp / f"run-{k}-{skip}-{m}-{policy}"
                        options = {"seed": args.seed} if model is None else {"failures": model, "seed": args.seed}
                        settings = EvalSettings(out, backend="oracle", params=TrackerParams(window_policy=policy),
                                                concurrency=8, progress=False, backend_options=options)
                        run = evaluate(run_seqs, settings)
                        if run.failed:
                            raise SystemExit(f"{policy}: {len(run.failed)} sequences failed: {run.failed[0].error}")
                        tracked += run.frames_tracked
                        rows[policy] = measure(run_seqs, out, min_inside)
                    base = rows.get("last-box", {}).get("ao", float("nan"))
                    for policy, r in rows.items():
                        print(f"| {set_name} | {skip} | {model_name} | {policy} | {r['in_crop']:.3f} | {r['full']:.3f} | "
                              f"{r['px']:.1f} | {r['ao']:.3f} | {r['sr50']:.3f} | {r['ao'] - base:+.3f} |", flush=True)
                    top = max(rows, key=lambda p: rows[p]["ao"])
                    best.append((set_name, skip, model_name, top, rows[top]["ao"] - base,
                                 rows[top]["in_crop"] - rows.get("last-box", rows[top])["in_crop"]))
        print()
        print("| sequences | skip | answers | best policy by AO | dAO vs last-box | d in crop |")
        print("|---|---:|---|---|---:|---:|")
        for set_name, skip, model_name, top, dao, dcrop in best:
            print(f"| {set_name} | {skip} | {model_name} | {top} | {dao:+.3f} | {dcrop:+.3f} |")
    seconds = time.perf_counter() - t_start
    print(f"\n{tracked} frames tracked in {seconds:.0f} s ({tracked / max(seconds, 1e-9):.0f} frames/s, "
          f"{os.cpu_count()} cores; load average at the end {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
