"""``r1track install``: put the plugin files into upstream checkouts (same as ``python install_plugins.py``)."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Install r1track's plugin files into your checkouts of LLaMA-Factory, EasyR1 and PyTracking (any subset).

  LLaMA-Factory: merges r1track's entries into data/dataset_info.json (every existing entry kept) and adds
                 the example yamls under examples/r1track/.
  EasyR1:        adds the reward function (examples/reward_function/), format prompts
                 (examples/format_prompt/) and launch scripts (examples/r1track/).
  PyTracking:    adds pytracking/tracker/r1track and pytracking/parameter/r1track.

Targets are recognised by their layout and anything else is refused. Nothing of yours is overwritten: a file or
dataset entry that exists with other content is reported and kept (--force replaces it, keeping a backup).
A manifest with hashes (.r1track-install.json) makes re-runs idempotent and --uninstall exact: files you
modified since are kept and reported. Exit status: 0 done, 1 some conflicts were skipped, 2 refused.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--llamafactory", metavar="DIR", help="LLaMA-Factory checkout (has src/llamafactory/ and data/dataset_info.json)")
    p.add_argument("--easyr1", metavar="DIR", help="EasyR1 checkout (has verl/ and examples/config.yaml)")
    p.add_argument("--pytracking", metavar="DIR", help="PyTracking checkout (has pytracking/tracker/base/basetracker.py)")
    p.add_argument("--dry-run", action="store_true", help="print every action, touch nothing")
    p.add_argument("--uninstall", action="store_true", help="remove exactly what an earlier install added (unmodified files only)")
    p.add_argument("--link", action="store_true", help="symlink the plugin files instead of copying them (for r1track developers)")
    p.add_argument("--force", action="store_true", help="replace conflicting files/entries (a user's file is kept as NAME.r1track-backup)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "install",
        help="install the plugins into LLaMA-Factory / EasyR1 / PyTracking checkouts",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=run)


VERBS = {
    "create": ("create", "would create"),
    "update": ("update", "would update"),
    "link": ("link", "would link"),
    "force": ("replace", "would replace"),
    "same": ("up to date", "up to date"),
    "conflict": ("CONFLICT", "CONFLICT"),
    "merge-add": ("merge", "would merge"),
    "merge-same": ("up to date", "up to date"),
    "merge-force": ("replace", "would replace"),
    "merge-conflict": ("CONFLICT", "CONFLICT"),
    "remove": ("remove", "would remove"),
    "keep": ("keep", "would keep"),
    "restore": ("restore", "would restore"),
    "restore-file": ("restore", "would restore"),
    "rmdir": ("rmdir", "would rmdir"),
    "manifest": ("write manifest", "would write manifest"),
}


def run(args: argparse.Namespace, out=None) -> int:
    from ..install import TARGETS, InstallError, apply_plan, check_writable, plan_install, plan_uninstall, r1track_import_check

    out = out or sys.stdout
    chosen = [(name, getattr(args, name)) for name in TARGETS if getattr(args, name)]
    if not chosen:
        print("nothing to do: name at least one of --llamafactory DIR, --easyr1 DIR, --pytracking DIR (see --help)", file=out)
        return 2
    status = 0
    if not args.uninstall:
        problem = r1track_import_check()
        if problem:
            print(f"warning: {problem}", file=out)
    for name, target in chosen:
        spec = TARGETS[name]
        try:
            plan = plan_uninstall(spec, target) if args.uninstall else plan_install(spec, target, link=args.link, force=args.force)
        except InstallError as exc:
            print(f"{spec.title}: refused: {exc}", file=out)
            status = 2
            continue
        failure = ""
        if not args.dry_run and plan.changes:
            try:  # applied first, printed after: what is printed is what happened
                apply_plan(plan)
            except (InstallError, OSError) as exc:
                failure = str(exc)
        if failure:
            print(f"{spec.title} at {plan.target}: failed: {failure}", file=out)
            status = 2
            continue
        print(f"{spec.title} at {plan.target}{' (dry run: nothing is changed)' if args.dry_run else ''}:", file=out)
        if not plan.changes:
            same = sum(a.kind in ("same", "merge-same") for a in plan.actions)
            what = f"{same} item(s) already up to date" if not args.uninstall else "nothing installed by r1track here"
            print(f"  nothing to do: {what}", file=out)
        for a in plan.actions:
            if a.kind in ("same", "merge-same") and plan.changes is False:
                continue
            verb = VERBS.get(a.kind, (a.kind, a.kind))[1 if args.dry_run else 0]
            if a.kind == "manifest" and args.uninstall:
                verb = "would remove manifest" if args.dry_run else "remove manifest"
            detail = f"  ({a.detail})" if a.detail else ""
            print(f"  {verb:<14} {a.path}{detail}", file=out)
        if args.dry_run and plan.changes:
            try:
                check_writable(plan, probe=False)
            except InstallError as exc:
                print(f"  the install would fail: {exc}", file=out)
                status = 2
        for note in plan.notes:
            print(f"  note: {note}", file=out)
        if plan.conflicts:
            status = max(status, 1)
            print(f"  {len(plan.conflicts)} conflict(s) skipped; nothing of yours was changed for them", file=out)
    return status
