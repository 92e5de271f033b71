"""``r1track eval``: track a whole benchmark, write results, score them."""

from __future__ import annotations

import argparse
import sys

from ..exitcodes import ExitStatus
from ..faults import FaultPolicy

DESCRIPTION = """\
Track every sequence of a dataset with a backend, write the results (got10k and PyTracking layouts, full
precision) and, when the dataset has ground truth for every frame, score them.

Datasets (ROOT, --dataset; auto-detected by default from the most specific layout signature: an OTB-style folder
with a list.txt is generic; a --dataset the folder does not match is refused, naming the layout it looks like):
  got10k       ROOT holding train/ val/ test/ (or the split folder itself); --split val|test (default: val).
               val is scored with the GOT-10k protocol (AO, SR0.5, SR0.75) when every sequence has its
               cover.label (else with the OTB protocol, and the console says why); test -> 'r1track pack got10k'.
  lasot        ROOT holding class folders; --split test (default: the 280 test sequences, list shipped
               with r1track), all, or a FILE with one sequence name per line.
               Scored with the OTB/LaSOT protocol (success AUC, precision@20px, normalised precision@0.2).
  trackingnet  ROOT holding TEST/ (or TRAIN_n/); --split TEST -> 'r1track pack trackingnet'.
  generic      a folder of sequence folders with groundtruth.txt / groundtruth_rect.txt (OTB-style), or one
               such sequence folder. Scored with the OTB/LaSOT protocol (AUC, precisions and mean IoU).

Bad data: a missing or undecodable frame keeps the last box (counted by reason in run.json: missing_frame,
unreadable_frame, image_too_large); a sequence whose frames cannot be aligned with its ground truth, whose
first frame is unreadable or whose first box is unusable is reported and not tracked.

Exit status: 0 when every sequence was tracked; 1 when some failed or were not trackable, when the model
never answered usably, or when the output folder could not be written (a full disk: the message names the
folder; finished sequences are kept and a rerun resumes); 2 for a usage or dataset-file error; 3 when the
server refused the request on every attempt (HTTP 401 or 403: check the API key; a 3xx redirect: give the
final URL, r1track follows none).

Backends (--backend): openai (an OpenAI-compatible server; --server URL, repeatable: sequences are balanced
over the servers; API key from R1TRACK_API_KEY; keep --concurrency high so vLLM batches), transformers and
vllm (the --model checkpoint loaded in this process, no server; the requests of the sequences in flight go
to the engine in batches of --batch-size), ncc (the classical baseline), oracle (ground truth, checks geometry).

Settings: --model NAME of a published checkpoint picks its preset (printed at start; 'r1track eval
--help' lists the presets under --preset); --preset NAME picks one explicitly; any tracker flag wins.

The run is resumable: run the same command again and finished sequences are skipped, cut-off ones are
replayed from their logs without asking the model again. A setting that changes the boxes must be the saved
one (each difference is named); a folder of an earlier r1track resumes when the settings it lacks work as it did.

A server that gives no reply (down, dying, unreachable) stops each sequence after --max-consecutive-faults
frames in a row or --max-fault-seconds without a reply, counted from the first byte of every request (the
model listing, text initialisation, frames): the sequence is reported failed, gets no result file, and the
exit status is 1; rerun the same command once the server is back. A reply without any text (null content or
no choice: frame status no-content, the server's fault) counts as no reply. A sequence in which at least 90 %
of the frames asked got no usable reply is no result either ("the model never answered usably", the cause
named): failed, no result file, no score for it; a rerun asks its frames again. When the model family must be
asked of the server (no model family given and an unknown --model) and no server answers, nothing is tracked
and the exit status is 1 too (3 when the server refuses). Every request, retry and fault (by kind, per request
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
                   "with +SETTING=VALUE for each tracker flag given and every other setting that changes results, "
                   "e.g. +failures=... for --oracle-failures)")
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

    from . import CommandError
    from ..data.layouts import LayoutMismatch
    from ..data.readers import detect_kind, read_dataset

    kind = detect_kind(root) if dataset == "auto" else dataset
    if kind == "got10k" and split is None:
        split = Path(root).name if (Path(root) / "list.txt").is_file() else "val"
    if kind == "lasot" and split is None:
        split = "test"
    wanted = [n.strip() for n in names.split(",") if n.strip()] if names else None
    try:
        seqs = list(read_dataset(kind, root, split=None if split == "all" else split, names=wanted))
    except LayoutMismatch as exc:
        hint = f" (--dataset {exc.suggestion}, or --dataset auto to detect it)" if exc.suggestion else ""
        raise CommandError(f"{exc}{hint}") from None
    if wanted:
        found = {s.name for s in seqs}
        missing = [n for n in wanted if n not in found]
        if missing:
            raise CommandError(f"sequences not in {root}: {', '.join(missing)}")
    if not seqs:
        raise CommandError(f"no sequences in {root}")
    return seqs, kind, split


def _base_dir(kind: str, split: str | None, tag: str):
    """``runs/<dataset>-<split>-<tag>``: the default run folder before the settings the tag does not show
    (:func:`_default_out`)."""
    from pathlib import Path

    split_tag = Path(split).stem if split else ""
    return Path("runs") / "-".join(x for x in (kind, split_tag, tag) if x)


def _no_server(args: argparse.Namespace, exc, lookup, kind: str, split: str | None, started: str, t0: float) -> int:
    """The run could not start: no server answered the model lookup. Says so (cause first), records the
    lookup's attempts in the run folder's ``run.json`` and returns :attr:`ExitStatus.RUN_FAILED` (a rerun once the
    server answers starts the run); a server that answered but not usefully is a usage error, one that refused
    (:class:`~r1track.backends.ServerRefused`) exit status 3 (CommandError with the lookup's status). Without
    ``-o`` the record goes to the default folder before the settings the served model would add to its name
    (:func:`_base_dir`): the folder a rerun uses when the served model is of the preset's family."""
    import os
    import time
    from pathlib import Path

    from ..backends.openai import ENV_MODEL
    from ..evalfolder import record_failed_start
    from ..evalloop import lookup_record
    from ..exitcodes import ExitStatus
    from ..faults import format_summary
    from ..presets import resolve
    from . import CommandError
    from .tracking import tracker_overrides

    if not exc.retryable:
        raise CommandError(str(exc), status=exc.exit_status) from None
    requests = lookup_record(lookup)
    tag = resolve(args.preset, args.model or os.environ.get(ENV_MODEL) or None, tracker_overrides(args),
                  backend=args.backend).tag
    out = Path(args.out) if args.out else _base_dir(kind, split, tag)
    path = record_failed_start(out, started, time.perf_counter() - t0, str(exc), requests)
    print(f"r1track eval: {exc}", file=sys.stderr)
    print(format_summary(requests))
    print(f"nothing was tracked; the lookup's attempts are in {path}; rerun the same command once the server answers")
    return ExitStatus.RUN_FAILED


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from ..backends import get_backend_spec
    from ..backends.model_lookup import LookupFailed, ModelLookup
    from . import CommandError
    from ..data.sequences import DatasetError
    from ..evaluate import EvalAborted, EvalSettings, evaluate, has_ground_truth
    from ..faults import format_summary
    from ..scoring import format_table, score_results, write_report
    from ..tracker import SKIP_STATUSES
    from .report import report_path
    from .tracking import backend_options, fault_policy, resolve_settings

    started, t0 = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), time.perf_counter()
    policy = fault_policy(args)
    lookup = ModelLookup()  # the servers' model listings: asked once for the family, reused by the run
    try:
        seqs, kind, split = load_sequences(args.dataset, args.root, args.split, args.sequences)
        resolved = resolve_settings(args, lookup=lookup, deadline=time.monotonic() + policy.max_fault_seconds)
    except LookupFailed as exc:
        return _no_server(args, exc, lookup, kind, split, started, t0)
    except (DatasetError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    compare = [report_path(r) for r in args.compare]  # refuse a missing one before tracking
    params, backend = resolved.params, resolved.backend
    print(f"settings: {resolved.message}", file=sys.stderr)
    for line in ineffective_flags(args, resolved.backend):
        print(f"r1track eval: warning: {line}", file=sys.stderr)
    base = _base_dir(kind, split, resolved.tag)
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
            out_dir=Path(args.out) if args.out else base, backend=backend, servers=tuple(args.server), model=args.model,
            concurrency=args.concurrency, params=params, init=args.init, backend_options=options,
            max_frames=args.max_frames, workers=args.workers, progress=not args.no_progress, faults=policy,
            lookup=lookup,
        )
        if not args.out:
            settings.out_dir = _default_out(base, settings, resolved, args)
        out = settings.out_dir
        print(f"tracking {len(seqs)} sequences of {args.root} ({kind}{' ' + split if split else ''}) with {backend} -> {out}",
              file=sys.stderr)
        result = evaluate(seqs, settings)
    except (EvalAborted, ValueError) as exc:
        raise CommandError(str(exc), status=getattr(exc, "exit_status", ExitStatus.USAGE)) from None
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
    if result.engine:
        from ..backends.engine_report import format_engine_report

        print(format_engine_report(result.engine))
    if bad:
        print("a rerun skips the sequences not trackable as stored the same way: fix or remove their files first")
    status = ExitStatus.RUN_FAILED if result.failed or bad else ExitStatus.OK
    if result.output_error:  # a full disk: nothing more can be written, a score table included
        print(f"STOPPED: the run folder {out} could not be written: {result.output_error}\n"
              "finished sequences are kept and nothing is half-written: free space (or use another -o) and run the "
              "same command again to resume; not scored")
        return _closing(ExitStatus.RUN_FAILED, result)
    done = [s for s in seqs if s.name not in {o.name for o in (*result.failed, *bad)}]
    if args.max_frames:
        print(f"not scored: --max-frames {args.max_frames} tracked only part of each sequence")
        if compare:
            print("--compare: this run has no report to compare (--max-frames)")
        return _closing(status, result)
    if done and all(has_ground_truth(s) for s in done) and not (kind == "got10k" and split == "test"):
        protocol, why = choose_protocol(done, kind, split)
        report = score_results(done, out / "results", protocol=protocol, tracker=args.name or resolved.tag,
                               dataset=f"{kind} {split or ''}".strip(), baseline=get_backend_spec(backend).baseline,
                               windows_dir=out / "windows", min_inside_fraction=params.min_inside_fraction)
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


def _default_out(base, settings, resolved, args):
    """``base`` plus every result-changing setting the tag does not show (:mod:`r1track.runname`): the reference
    is the same tag with every other option at its default."""
    import dataclasses
    import os

    from ..backends import backend_option_defaults
    from ..backends.openai import ENV_MODEL
    from ..presets import resolve
    from ..runname import default_run_dir

    model = args.model or os.environ.get(ENV_MODEL) or None
    plain = resolve(args.preset, model, resolved.overrides, backend=args.backend)
    defaults = backend_option_defaults(settings.backend)
    reference = dataclasses.replace(
        settings,
        backend=settings.backend if resolved.named == "backend" else resolved.preset.backend,
        model=settings.model if resolved.named == "model" else None,
        params=plain.params,
        init="box",
        max_frames=None,
        backend_options={k: defaults[k] for k in settings.backend_options if k in defaults},
    )
    return default_run_dir(base, settings, reference)


def ineffective_flags(args: argparse.Namespace, backend: str) -> list[str]:
    """One line per flag given that the chosen backend makes do nothing."""
    from ..backends import get_backend_spec

    spec = get_backend_spec(backend)
    out = []
    if backend != "oracle":
        if args.oracle_noise:
            out.append(f"--oracle-noise does nothing with --backend {backend} (only the oracle answers from ground truth)")
        if args.oracle_failures is not None:
            out.append(f"--oracle-failures does nothing with --backend {backend} (only the oracle simulates failures)")
    if args.server and not spec.needs_server:
        out.append(f"--server does nothing with --backend {backend}, which asks no server")
    if not spec.in_process:
        given = [flag for flag, value, default in (("--batch-size", args.batch_size, None), ("--dtype", args.dtype, "auto"),
                                                    ("--device", args.device, "auto"))
                 if value != default]
        if given:
            out.append(f"{', '.join(given)} only set(s) the in-process engines (--backend transformers or vllm), "
                       f"not --backend {backend}")
    return out


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
