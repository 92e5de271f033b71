"""``r1track eval``: track a whole benchmark, write results, score them."""

from __future__ import annotations

import argparse
import sys

from ..faults import FaultPolicy

DESCRIPTION = """\
Track every sequence of a dataset with a backend, write the results (got10k and PyTracking layouts, full
precision) and, when the dataset has ground truth for every frame, score them.

Datasets (ROOT, --dataset; auto-detected by default):
  got10k       ROOT holding train/ val/ test/ (or the split folder itself); --split val|test (default: val).
               val is scored with the GOT-10k protocol (AO, SR0.5, SR0.75); test -> 'r1track pack got10k'.
  lasot        ROOT holding class folders; --split test (default: the 280 test sequences, list shipped
               with r1track), all, or a FILE with one sequence name per line.
               Scored with the OTB/LaSOT protocol (success AUC, precision@20px, normalised precision@0.2).
  trackingnet  ROOT holding TEST/ (or TRAIN_n/); --split TEST -> 'r1track pack trackingnet'.
  generic      a folder of sequence folders with groundtruth.txt / groundtruth_rect.txt (OTB-style).

Backends:
  openai  an OpenAI-compatible server (vLLM serving an R1-Track checkpoint); --server URL, repeatable:
          sequences are balanced over the servers. --model, or asked from the server. API key from
          R1TRACK_API_KEY. Keep --concurrency high (hundreds) so vLLM batches.
  ncc     classical baseline (normalised cross-correlation), no GPU, no model.
  oracle  the ground truth mapped into each crop (checks geometry; needs ground truth).

The run is resumable: run the same command again and finished sequences are skipped, cut-off ones are
replayed from their logs without asking the model again.

A server that gives no reply (down, dying, unreachable) stops each sequence after --max-consecutive-faults
frames in a row or --max-fault-seconds without a reply: the sequence is reported failed, gets no result
file, and the exit status is 1; rerun the same command once the server is back. Every retry, fault (by
kind) and fallback frame (by reason) is counted in run.json and in the summary at the end.
"""


def add_tracker_arguments(p: argparse.ArgumentParser) -> None:
    """Tracker settings shared by ``eval`` and ``track`` (defaults: r1track.tracker.TrackerParams)."""
    g = p.add_argument_group("tracker")
    g.add_argument("--prompt-version", help="prompt version (default r1track-v1; see 'r1track prompts show')")
    g.add_argument("--think", action="store_true", help="think mode (R1-Track's think wrapper; answer read from <answer>)")
    g.add_argument("--crop-size", type=int, help="crop side in px, a multiple of 28 (default 336)")
    g.add_argument("--template-factor", type=float, help="template crop side / sqrt(target area) (default 4)")
    g.add_argument("--search-factor", type=float, help="search crop side / sqrt(target area) (default 4)")
    g.add_argument("--max-search-factor", type=float, help="widest search factor after consecutive failures (default 8)")
    g.add_argument("--memory", action="store_true", help="3 images: template, last confident crop, search (server needs image limit 3)")
    g.add_argument("--structured-output", action="store_true", help="force [x1,y1,x2,y2] with vLLM structured outputs (no-think only)")
    g.add_argument("--temperature", type=float, help="sampling temperature (default 0)")
    g.add_argument("--max-tokens", type=int, help="max reply tokens (default 48, or 1024 with --think)")
    g.add_argument("--model-max-pixels", type=int, help="the served processor's max_pixels, if not the Qwen2.5-VL default")


def tracker_params(args: argparse.Namespace):
    from dataclasses import replace

    from ..tracker import TrackerParams

    mapping = {
        "prompt_version": args.prompt_version,
        "crop_size": args.crop_size,
        "template_factor": args.template_factor,
        "search_factor": args.search_factor,
        "max_search_factor": args.max_search_factor,
        "temperature": args.temperature,
        "max_tokens": args.max_tokens,
        "model_max_pixels": args.model_max_pixels,
    }
    changes = {k: v for k, v in mapping.items() if v is not None}
    if args.think:
        changes["think"] = True
    if args.memory:
        changes["memory"] = True
    if args.structured_output:
        changes["structured_output"] = True
    if "search_factor" in changes and "max_search_factor" not in changes:
        changes["max_search_factor"] = max(TrackerParams().max_search_factor, changes["search_factor"])
    return replace(TrackerParams(), **changes)


def add_backend_arguments(p: argparse.ArgumentParser, *, oracle: bool = True) -> None:
    g = p.add_argument_group("backend")
    choices = ["openai", "ncc", "oracle"] if oracle else ["openai", "ncc"]
    g.add_argument("--backend", choices=choices, default="openai", help="who answers (default: openai)")
    g.add_argument("--server", action="append", default=[], metavar="URL",
                   help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (repeatable; default $R1TRACK_BASE_URL)")
    g.add_argument("--model", help="served model name (default: $R1TRACK_MODEL or the server's first model)")
    g.add_argument("--timeout", type=float, default=120.0, help="seconds per request attempt (default 120)")
    g.add_argument("--retries", type=int, default=3, help="retries per request on connection errors, 5xx and 429 (default 3)")
    d = FaultPolicy()
    g.add_argument("--max-consecutive-faults", type=int, default=d.max_consecutive_faults, metavar="N",
                   help=f"stop a sequence (failed, no result) after N frames in a row without a reply "
                        f"(default {d.max_consecutive_faults})")
    g.add_argument("--max-fault-seconds", type=float, default=d.max_fault_seconds, metavar="S",
                   help=f"... or S seconds since its last reply (default {d.max_fault_seconds:g})")


def fault_policy(args: argparse.Namespace) -> FaultPolicy:
    """The --max-consecutive-faults / --max-fault-seconds policy; CommandError when invalid."""
    from ..cli import CommandError

    try:
        return FaultPolicy(args.max_consecutive_faults, args.max_fault_seconds)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def failure_lines(failed: list, what: str = "sequence") -> list[str]:
    """The closing lines for failed sequences: how many, and why (stopped: naming the servers)."""
    if not failed:
        return []
    stopped = [o for o in failed if o.stopped]
    servers = sorted({o.server for o in stopped})
    lines = [f"{len(failed)} {what}(s) FAILED (no result files written):"]
    if stopped:
        lines.append(f"  {len(stopped)} stopped because the server gave no reply: {', '.join(servers)}")
    if len(failed) > len(stopped):
        lines.append(f"  {len(failed) - len(stopped)} failed on errors (listed above)")
    lines.append("rerun the same command to resume them (finished sequences are kept)")
    return lines


def backend_options(args: argparse.Namespace) -> dict:
    if args.backend == "openai":
        return {"timeout_s": args.timeout, "retries": args.retries}
    return {}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="track a benchmark, write results, score them", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="dataset folder")
    p.add_argument("--dataset", choices=["auto", "got10k", "lasot", "trackingnet", "generic"], default="auto",
                   help="layout of ROOT (default: detect)")
    p.add_argument("--split", help="GOT-10k split (val|test, default val), TrackingNet chunk (TEST), LaSOT split file")
    p.add_argument("--sequences", help="comma-separated sequence names to run (default: all)")
    p.add_argument("-o", "--out", help="output folder (default: runs/<dataset>-<split>-<backend>)")
    p.add_argument("--concurrency", type=int, default=256, help="sequences in flight (default 256)")
    p.add_argument("--init", choices=["box", "text"], default="box", help="initialise from the first box or the description (LaSOT)")
    p.add_argument("--max-frames", type=int, help="only the first N frames of each sequence (quick checks)")
    p.add_argument("--oracle-noise", type=float, default=0.0, help="oracle: Gaussian noise in model pixels")
    p.add_argument("--name", default="r1track", help="tracker name in reports and plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_backend_arguments(p)
    add_tracker_arguments(p)
    p.set_defaults(func=run)


def load_sequences(dataset: str, root: str, split: str | None, names: str | None):
    """(sequences, kind, split) of a dataset folder, filtered by comma-separated names."""
    from pathlib import Path

    from ..cli import CommandError
    from ..data.readers import detect_kind, read_dataset

    kind = detect_kind(root) if dataset == "auto" else dataset
    if kind == "got10k" and split is None:
        split = Path(root).name if (Path(root) / "list.txt").is_file() else "val"
    if kind == "lasot" and split is None:
        split = "test"
    seqs = list(read_dataset(kind, root, split=None if split == "all" else split))
    if names:
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        by_name = {s.name: s for s in seqs}
        missing = [n for n in wanted if n not in by_name]
        if missing:
            raise CommandError(f"sequences not in {root}: {', '.join(missing)}")
        seqs = [by_name[n] for n in wanted]
    if not seqs:
        raise CommandError(f"no sequences in {root}")
    return seqs, kind, split


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..cli import CommandError
    from ..data.sequences import DatasetError
    from ..evaluate import EvalAborted, EvalSettings, evaluate, has_ground_truth
    from ..faults import format_summary
    from ..scoring import format_table, score_results, write_report

    try:
        seqs, kind, split = load_sequences(args.dataset, args.root, args.split, args.sequences)
        params = tracker_params(args)
    except (DatasetError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    split_tag = Path(split).stem if split else ""
    out = Path(args.out) if args.out else Path("runs") / "-".join(x for x in (kind, split_tag, args.backend) if x)
    options = backend_options(args)
    if args.backend == "oracle":
        options["noise_px"] = args.oracle_noise
    try:
        settings = EvalSettings(
            out_dir=out, backend=args.backend, servers=tuple(args.server), model=args.model, concurrency=args.concurrency,
            params=params, init=args.init, backend_options=options, max_frames=args.max_frames,
            progress=not args.no_progress, faults=fault_policy(args),
        )
        print(f"tracking {len(seqs)} sequences of {args.root} ({kind}{' ' + split if split else ''}) with {args.backend} -> {out}",
              file=sys.stderr)
        result = evaluate(seqs, settings)
    except (EvalAborted, ValueError) as exc:
        raise CommandError(str(exc)) from None
    skipped = sum(o.status == "skipped" for o in result.outcomes)
    print(f"{len(result.outcomes) - skipped - len(result.failed)} sequences tracked, {skipped} already done, "
          f"{len(result.failed)} failed; {result.frames_tracked} frames asked in {result.seconds:.1f} s "
          f"({result.fps:.1f} frames/s)")
    for o in result.failed:
        print(f"  FAILED {o.name}: {o.error}")
    print(f"results: {out / 'results'} (got10k layout), {out / 'results_pytracking'} (PyTracking layout); run log {out / 'run.json'}")
    print(format_summary(result.record))
    if result.failed:
        print("\n".join(failure_lines(result.failed)))
        return 1
    if all(has_ground_truth(s) for s in seqs) and not args.max_frames:
        report = score_results(seqs, out / "results", tracker=args.name, dataset=f"{kind} {split or ''}".strip())
        paths = write_report(report, out / "report")
        print(format_table(report), end="")
        print(f"report: {paths['json']}, plots: {', '.join(str(p) for k, p in paths.items() if k not in ('json', 'table'))}")
    elif kind in ("got10k", "trackingnet"):
        server = "got10k" if kind == "got10k" else "trackingnet"
        print(f"no ground truth to score against: build the server zip with 'r1track pack {server} {out / 'results'} --dataset {args.root}'")
    return 0
