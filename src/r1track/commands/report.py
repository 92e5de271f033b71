"""``r1track report``: several runs of ``r1track eval`` in one table and one success / precision plot."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Put runs of 'r1track eval' side by side: one table (a row per run: AO, SR0.5, SR0.75 for GOT-10k;
success AUC, precision@20px, normalised precision for the OTB/LaSOT protocol) and one success plot (and
precision plot) with a curve per run, named by the run's checkpoint or preset; baseline runs (ncc) are
named as such. Each RUN is an eval output folder holding report/report.json (written when the dataset
has ground truth). The runs must have scored the same sequences with the same protocol.

  r1track report runs/got10k-val-R1-Track-GRPO-wo-Think-100k runs/got10k-val-ncc
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="compare eval runs: one table, one plot with a curve per run", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN", help="eval output folder (or its report.json)")
    p.add_argument("-o", "--out", help="output folder (default: RUN/report for one run, else "
                   "<parent of the first run>/compare-<run>-vs-<run>...)")
    p.set_defaults(func=run)


def report_path(run):
    """The ``report.json`` of an eval run folder (or the file itself); CommandError when missing."""
    from pathlib import Path

    from . import CommandError

    path = Path(run)
    if path.is_dir():
        path = path / "report" / "report.json"
    if not path.is_file():
        raise CommandError(f"{run}: no report ({path} is missing; 'r1track eval' writes it when the dataset has ground truth)")
    return path


def compare_runs(runs: list, out) -> None:
    """Write and print the comparison of ``runs`` (each a :class:`~r1track.scoring.Report` or a run folder /
    report.json path) to ``out``; CommandError on a missing or incomparable report."""
    from . import CommandError
    from ..scoring import Report, format_comparison, read_report, write_comparison

    try:
        reports = [r if isinstance(r, Report) else read_report(report_path(r)) for r in runs]
        written = write_comparison(reports, out)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    print(format_comparison(reports), end="")
    print(f"table: {written['table']}, plots: {', '.join(str(p) for k, p in written.items() if k not in ('json', 'table'))}")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    paths = [report_path(r) for r in args.runs]
    if args.out:
        out = Path(args.out)
    elif len(paths) == 1:
        out = paths[0].parent
    else:
        out = paths[0].parent.parent.parent / ("compare-" + "-vs-".join(p.parent.parent.name for p in paths))
    compare_runs(paths, out)
    return 0
