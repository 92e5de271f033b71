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
               val is scored with the GOT-10k protocol (AO, SR0.5, SR0.75) when every sequence has its
               cover.label (else with the OTB protocol, and the console says why); test -> 'r1track pack got10k'.
  lasot        ROOT holding class folders; --split test (default: the 280 test sequences, list shipped
               with r1track), all, or a FILE with one sequence name per line.
               Scored with the OTB/LaSOT protocol (success AUC, precision@20px, normalised precision@0.2).
  trackingnet  ROOT holding TEST/ (or TRAIN_n/); --split TEST -> 'r1track pack trackingnet'.
  generic      a folder of sequence folders with groundtruth.txt / groundtruth_rect.txt (OTB-style), or one
               such sequence folder.

Bad data: a missing or undecodable frame keeps the last box (counted by reason in run.json: missing_frame,
unreadable_frame, image_too_large); a sequence whose frames cannot be aligned with its ground truth, whose
first frame is unreadable or whose first box is unusable is reported and not tracked. Exit status: 0 when
every sequence was tracked, 1 when some failed or were not trackable, 2 for a usage or dataset-file error.

Backends (--backend): openai (an OpenAI-compatible server; --server URL, repeatable: sequences are balanced
over the servers; API key from R1TRACK_API_KEY; keep --concurrency high so vLLM batches), transformers and
vllm (the --model checkpoint loaded in this process, no server; the requests of the sequences in flight go
to the engine in batches of --batch-size), ncc (the classical baseline), oracle (ground truth, checks geometry).

Settings: --model NAME of a published checkpoint picks its preset (printed at start; 'r1track eval
--help' lists the presets under --preset); --preset NAME picks one explicitly; any tracker flag wins.

The run is resumable: run the same command again and finished sequences are skipped, cut-off ones are
replayed from their logs without asking the model again.

A server that gives no reply (down, dying, unreachable) stops each sequence after --max-consecutive-faults
frames in a row or --max-fault-seconds without a reply: the sequence is reported failed, gets no result
file, and the exit status is 1; rerun the same command once the server is back. Every retry, fault (by
kind) and fallback frame (by reason) is counted in run.json and in the summary at the end.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    from .tracking import add_backend_arguments, add_tracker_arguments

    p = sub.add_parser("eval", help="track a benchmark, write results, score them", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="dataset folder")
    p.add_argument("--dataset", choices=["auto", "got10k", "lasot", "trackingnet", "generic"], default="auto",
                   help="layout of ROOT (default: detect)")
    p.add_argument("--split", help="GOT-10k split (val|test, default val), TrackingNet chunk (TEST), LaSOT split file")
    p.add_argument("--sequences", help="comma-separated sequence names to run (default: all)")
    p.add_argument("-o", "--out", help="output folder (default: runs/<dataset>-<split>-<checkpoint or preset>, "
                   "with +SETTING for each explicit tracker flag)")
    p.add_argument("--concurrency", type=int, default=256, help="sequences in flight (default 256; split over the workers)")
    p.add_argument("--workers", type=int, default=1, help="client processes, sequences shared out among them, for "
                   "servers faster than one core can feed (a few hundred frames/s); same results as 1 (default 1)")
    p.add_argument("--init", choices=["box", "text"], default="box", help="initialise from the first box or the description (LaSOT)")
    p.add_argument("--max-frames", type=int, help="only the first N frames of each sequence (quick checks)")
    p.add_argument("--oracle-noise", type=float, default=0.0, help="oracle: Gaussian noise in model pixels")
    p.add_argument("--oracle-failures", default=None, metavar="miss=R,jump=R,jitter=PX",
                   help="oracle: SIMULATED model mistakes -- says [] (visibility prompts) or answers a wrong place "
                        "when the target is invisible or out of the crop, misses (rate), jumps to a wrong place "
                        "(rate), jitter in model pixels (r1track.backends.oracle.FailureModel)")
    p.add_argument("--name", help="tracker name in reports and plots (default: the checkpoint or preset, as in the run folder)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--compare", action="append", default=[], metavar="RUN",
                   help="another eval run folder to put beside this one in REPORT/comparison/ (repeatable; as 'r1track report')")
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
    wanted = [n.strip() for n in names.split(",") if n.strip()] if names else None
    seqs = list(read_dataset(kind, root, split=None if split == "all" else split, names=wanted))
    if wanted:
        found = {s.name for s in seqs}
        missing = [n for n in wanted if n not in found]
        if missing:
            raise CommandError(f"sequences not in {root}: {', '.join(missing)}")
    if not seqs:
        raise CommandError(f"no sequences in {root}")
    return seqs, kind, split


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..backends import get_backend_spec
    from ..cli import CommandError
    from ..data.sequences import DatasetError
    from ..evaluate import EvalAborted, EvalSettings, evaluate, has_ground_truth
    from ..faults import format_summary
    from ..scoring import format_table, score_results, write_report
    from ..tracker import SKIP_STATUSES
    from .report import report_path
    from .tracking import backend_options, fault_policy, resolve_settings

    try:
        seqs, kind, split = load_sequences(args.dataset, args.root, args.split, args.sequences)
        resolved = resolve_settings(args)
    except (DatasetError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    compare = [report_path(r) for r in args.compare]  # refuse a missing one before tracking
    params, backend = resolved.params, resolved.backend
    print(f"settings: {resolved.message}", file=sys.stderr)
    split_tag = Path(split).stem if split else ""
    out = Path(args.out) if args.out else Path("runs") / "-".join(x for x in (kind, split_tag, resolved.tag) if x)
    options = backend_options(args, backend, params)
    if backend == "oracle":
        options["noise_px"] = args.oracle_noise
        if args.oracle_failures is not None:
            from ..backends.oracle import FailureModel

            try:
                options["failures"] = FailureModel.parse(args.oracle_failures)
            except ValueError as exc:
                raise CommandError(f"--oracle-failures: {exc}") from None
    try:
        settings = EvalSettings(
            out_dir=out, backend=backend, servers=tuple(args.server), model=args.model, concurrency=args.concurrency,
            params=params, init=args.init, backend_options=options, max_frames=args.max_frames, workers=args.workers,
            progress=not args.no_progress, faults=fault_policy(args),
        )
        print(f"tracking {len(seqs)} sequences of {args.root} ({kind}{' ' + split if split else ''}) with {backend} -> {out}",
              file=sys.stderr)
        result = evaluate(seqs, settings)
    except (EvalAborted, ValueError) as exc:
        raise CommandError(str(exc)) from None
    skipped = sum(o.status == "skipped" for o in result.outcomes)
    bad = result.bad_data
    tracked = len(result.outcomes) - skipped - len(result.failed) - len(bad)
    print(f"{tracked} sequences tracked, {skipped} already done, {len(result.failed)} failed, "
          f"{len(bad)} not trackable as stored; {result.frames_tracked} frames asked in {result.seconds:.1f} s "
          f"({result.fps:.1f} frames/s)")
    data_faults = {k: v for k, v in result.record.fallbacks.items() if k in SKIP_STATUSES}
    if data_faults:
        print(f"frames not sent (the last box kept): {dict(sorted(data_faults.items()))}; per sequence in {out / 'run.json'}")
    for o in bad:
        print(f"  NOT TRACKED {o.error}")
    for o in result.failed:
        print(f"  FAILED {o.name}: {o.error}")
    print(f"results: {out / 'results'} (got10k layout), {out / 'results_pytracking'} (PyTracking layout); run log {out / 'run.json'}")
    print(format_summary(result.record))
    if bad:
        print("a rerun skips the sequences not trackable as stored the same way: fix or remove their files first")
    status = 1 if result.failed or bad else 0
    done = [s for s in seqs if s.name not in {o.name for o in (*result.failed, *bad)}]
    if args.max_frames:
        print(f"not scored: --max-frames {args.max_frames} tracked only part of each sequence")
        if compare:
            print("--compare: this run has no report to compare (--max-frames)")
        return _closing(status, result)
    if done and all(has_ground_truth(s) for s in done) and not (kind == "got10k" and split == "test"):
        protocol, why = choose_protocol(done, kind, split)
        report = score_results(done, out / "results", protocol=protocol, tracker=args.name or resolved.tag,
                               dataset=f"{kind} {split or ''}".strip(), baseline=get_backend_spec(backend).baseline)
        paths = write_report(report, out / "report")
        if why:
            print(f"note: {why}")
        if len(done) < len(seqs):
            print(f"scored {len(done)} of {len(seqs)} sequences (the others were not tracked; see above)")
        print(format_table(report), end="")
        print(f"report: {paths['json']}, plots: {', '.join(str(p) for k, p in paths.items() if k not in ('json', 'table'))}")
        if compare:
            from .report import compare_runs

            compare_runs([report, *compare], out / "report" / "comparison")
        return _closing(status, result)
    if compare:
        print("--compare: this run has no report to compare (no ground truth for every frame, or --max-frames)")
    if kind in ("got10k", "trackingnet"):
        server = "got10k" if kind == "got10k" else "trackingnet"
        print(f"no ground truth to score against: build the server zip with 'r1track pack {server} {out / 'results'} --dataset {args.root}'")
    else:
        print("not scored: some sequences have no ground truth for every frame")
    return _closing(status, result)


def _closing(status: int, result) -> int:
    """The run's last lines: the failed sequences, how many and why (naming the servers that gave no reply)."""
    from .tracking import failure_lines

    lines = failure_lines(result.failed)
    if lines:
        print("\n".join(lines))
    return status


def choose_protocol(seqs, kind: str, split: str | None) -> tuple[str, str]:
    """(protocol, why it is not the dataset's own) for scoring ``seqs``: ``got10k`` when every sequence
    has GOT-10k cover labels, else ``otb`` -- with a reason when a GOT-10k split falls back to it."""
    missing = [s.name for s in seqs if s.cover is None]
    if not missing:
        return "got10k", ""
    if kind == "got10k":
        return "otb", (f"{len(missing)} of {len(seqs)} sequences have no cover.label (e.g. {missing[0]}), so the GOT-10k "
                       "protocol (AO, SR) cannot be applied: scored with the OTB protocol (success AUC, precision), "
                       "whose numbers are not comparable with AO")
    return "otb", ""
