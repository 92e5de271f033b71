"""AO and long-term F-score of three tracking policies under the SAME SIMULATED model failures (no GPU).

The oracle backend with a :class:`r1track.backends.oracle.FailureModel` stands in for a model: it answers the
ground truth with jitter, misses and jumps to wrong places at the given rates, and when the target is invisible
(labels) or out of the search crop it answers ``[]`` to a visibility prompt and a wrong place otherwise. This is
a simulation of failure modes, not a measurement of any model. Policies:

* ``box-only``: prompt ``r1track-v1`` (what R1-Track's checkpoints know), no re-detection;
* ``vis``: prompt ``r1track-vis-v1`` (absent answer), no re-detection;
* ``vis+redetect``: the ``vis`` preset (re-detection over the whole frame after 3 absent/failed frames).

Sequences: the real ones (``R1TRACK_REALSEQ``, default ``../shared/data/realseq``; every frame visible) and
synthetic ones with full-occlusion and out-of-view spans. AO = mean IoU over frames 2..N whose target is
visible (GOT-10k's rule); F = the long-term F-score over presence thresholds (``r1track.metrics``; a box-only
tracker claims presence 1 on every frame).

    python benchmarks/visibility_policies.py [--miss 0.05 --jump 0.05 --jitter 2 --synthetic 8 --frames 60]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from r1track.backends.oracle import FailureModel
from r1track.data.readers import read_dataset
from r1track.evaluate import EvalSettings, evaluate
from r1track.metrics import got10k_sequence_ious, longterm_scores
from r1track.presets import get_preset
from r1track.results import read_presence, read_result
from r1track.synthetic import write_got10k_split
from r1track.tracker import TrackerParams
from realseq import real_sequences

POLICIES = {
    "box-only": TrackerParams(),
    "vis": TrackerParams(prompt_version="r1track-vis-v1"),
    "vis+redetect": get_preset("vis").params,
}


def scores(seqs, run_dir: Path) -> tuple[float, float, float, float]:
    """(AO, F, precision, recall)."""
    ious, lt = [], {}
    for s in seqs:
        boxes, _ = read_result(run_dir / "results", s.name)
        presence = read_presence(run_dir / "results", s.name)
        if presence is None:
            presence = np.ones(len(boxes))
        cover = s.visible.astype(int)
        ious.append(got10k_sequence_ious(boxes, s.boxes_xywh_orig, cover, (1e9, 1e9)))
        lt[s.name] = (boxes, s.boxes_xywh_orig, s.visible, presence)
    sc = longterm_scores(lt)
    return float(np.concatenate(ious).mean()), sc.f_score, sc.precision, sc.recall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--miss", type=float, default=0.05)
    ap.add_argument("--jump", type=float, default=0.05)
    ap.add_argument("--jitter", type=float, default=2.0)
    ap.add_argument("--synthetic", type=int, default=8, help="synthetic sequences (half with occlusion, half out of view)")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", default="320x240", help="synthetic frame size WxH")
    ap.add_argument("--object-scale", default="0.14,0.26", help="synthetic object width / shorter image side, LO,HI")
    ap.add_argument("--no-real", action="store_true", help="synthetic sequences only")
    args = ap.parse_args(argv)
    failures = FailureModel(args.miss, args.jump, args.jitter)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        size = tuple(int(v) for v in args.size.lower().split("x"))
        scale = tuple(float(v) for v in args.object_scale.split(","))
        write_got10k_split(tmp / "syn", "val", n_sequences=args.synthetic, n_frames=args.frames, size=size,
                           seed=args.seed + 11, full_occlusion_every=2, out_of_view_every=2, object_scale=scale)
        sets = {f"synthetic {args.size}, object {args.object_scale} (occlusion, out of view)":
                list(read_dataset("got10k", tmp / "syn", split="val"))}
        real = real_sequences(not args.no_real)
        if real:
            sets["real (all visible)"] = real
        print(f"SIMULATED failures: {failures} (plus: [] or a wrong place when the target is invisible or out of "
              f"the crop); not a model's measurement")
        print("| sequences | policy | AO | F-score | precision | recall | absent answers | re-detections |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for set_name, seqs in sets.items():
            for name, params in POLICIES.items():
                out = tmp / f"run-{len(set_name)}-{name}"
                settings = EvalSettings(out, backend="oracle", params=params, concurrency=8, progress=False,
                                        backend_options={"failures": failures, "seed": args.seed})
                run = evaluate(seqs, settings)
                ao, f, p, r = scores(seqs, out)
                absent = run.record.absent
                redetections = run.record.redetections
                print(f"| {set_name} ({len(seqs)}) | {name} | {ao:.3f} | {f:.3f} | {p:.3f} | {r:.3f} | {absent} | {redetections} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
