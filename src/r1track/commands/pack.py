"""``r1track pack``: build the GOT-10k / TrackingNet server zip from tracking results."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Zip tracking results for an evaluation server.

  got10k       {seq}/{seq}_001.txt + {seq}/{seq}_time.txt per sequence (deterministic tracker: run 001 only)
  trackingnet  {seq}.txt per sequence, flat

Results may be in the got10k layout ({seq}/{seq}_001.txt, what 'r1track eval' writes) or PyTracking's
({seq}.txt). With --dataset, every sequence of the split must be present with one box per frame (frames
counted up to the highest frame number, so a missing frame file still needs its box); otherwise nothing
is written and each problem is listed with its sequence and file. The zip is deterministic and written atomically.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pack", help="zip results for the GOT-10k or TrackingNet server", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("server", choices=["got10k", "trackingnet"], help="which server the zip is for")
    p.add_argument("results", help="folder of tracking results")
    p.add_argument("-o", "--out", help="output zip (default: RESULTS.zip beside the folder)")
    p.add_argument("--dataset", help="dataset root to check completeness against (GOT-10k root or its test/ folder; TrackingNet root or TEST/)")
    p.add_argument("--layout", choices=["auto", "got10k", "pytracking"], default="auto", help="layout of the results folder (default: detect)")
    p.set_defaults(func=run)


def _expected(server: str, dataset: str) -> dict[str, int]:
    """Frame count of every sequence of the test split in ``dataset``: the highest frame number in the
    file names, so a missing frame file still counts (``r1track eval`` writes a fallback box for it)."""
    from ..data.checks import frame_slots
    from ..data.readers import read_got10k, read_trackingnet

    seqs = read_got10k(dataset, "test") if server == "got10k" else read_trackingnet(dataset, chunks=["TEST"])
    out = {}
    for s in seqs:
        slots = frame_slots(s)
        out[s.name] = len(slots) if slots is not None else len(s.frames)
    return out


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import CommandError
    from ..data import DatasetError
    from ..pack import PackError, pack_results

    results = Path(args.results)
    out = Path(args.out) if args.out else results.with_name(results.name.rstrip("/") + ".zip")
    try:
        expected = _expected(args.server, args.dataset) if args.dataset else None
        report = pack_results(args.server, results, out, layout=args.layout, expected=expected)
    except (PackError, DatasetError) as exc:
        raise CommandError(str(exc)) from None
    print(f"wrote {report.path}: {report.sequences} sequences, {report.frames} frames")
    if expected is None:
        print("note: not checked against the dataset (pass --dataset to check every sequence and frame count)")
    return 0
