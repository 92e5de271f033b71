"""``r1track demo``: the zero-setup main job (no GPU, no model, no data)."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Run the whole r1track pipeline on this machine in under a minute, with nothing to download:
synthetic sequences (GOT-10k layout) -> a training set in LLaMA-Factory, EasyR1 and verl formats ->
tracking with the embedded ncc baseline (standing in for a vLLM server) -> GOT-10k scores, plots and an
annotated GIF. Everything goes under --out (default r1track-demo/; an earlier demo there is replaced).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on synthetic data (no GPU, no model)", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--out", default="r1track-demo", help="output folder (default r1track-demo)")
    p.add_argument("--sequences", type=int, default=4, help="sequences per split (default 4)")
    p.add_argument("--frames", type=int, default=50, help="frames per sequence (default 50)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from . import CommandError
    from ..demo import run_demo

    if args.sequences < 1 or args.frames < 2:
        raise CommandError("--sequences must be >= 1 and --frames >= 2")
    try:
        r = run_demo(args.out, sequences=args.sequences, frames=args.frames, seed=args.seed, progress=not args.no_progress)
    except FileExistsError as exc:
        raise CommandError(str(exc)) from None
    print()
    print("Scores of the ncc baseline (a classical tracker, not an MLLM) on the synthetic val split:")
    print(r.table)
    print(f"Done in {r.seconds:.1f} s. Everything is under {r.out}/:")
    print("  data/GOT10k/{train,val}/          synthetic sequences in GOT-10k layout")
    counts = ", ".join(f"{n} {split}" for split, n in r.samples.items())
    print(f"  train_data/                        training set ({counts} samples): llamafactory/ (+ its dataset_info.json), easyr1/, verl/, stats.json")
    print("  run/results/, run/results_pytracking/  tracking results (got10k and PyTracking layouts)")
    print("  run/report/                        report.json, report.txt, success_plot.png")
    print("  run/demo.gif                       one sequence, tracker box in green, ground truth in yellow")
    print("Next: serve an R1-Track checkpoint with vLLM and run 'r1track eval' with --backend openai (see docs/tracking_and_serving.md).")
    return 0
