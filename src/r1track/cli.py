"""The ``r1track`` command line. Each sub-command lives in ``r1track.commands.<name>`` and registers
itself with ``add_parser``; heavy imports happen only when a command runs."""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from typing import Sequence

from . import __version__

# One entry per sub-command module, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "r1track.commands.demo",
    "r1track.commands.prompts",
    "r1track.commands.data",
    "r1track.commands.eval",
    "r1track.commands.track",
    "r1track.commands.report",
    "r1track.commands.pack",
    "r1track.commands.install",
)


class CommandError(Exception):
    """A user-facing error: printed as ``r1track: error: ...`` with exit status 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="r1track",
        description=(
            "r1track turns a multimodal LLM (Qwen2.5-VL) into a single-object tracker: build training pairs "
            "from tracking datasets, fine-tune with LLaMA-Factory or EasyR1/verl, serve with vLLM, track and "
            "evaluate. Run 'r1track COMMAND --help' for the options of a command."
        ),
    )
    parser.add_argument("--version", action="version", version=f"r1track {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # r1track refuses images over Pillow's pixel limit itself, naming the file (r1track.crop.MAX_FRAME_PIXELS);
    # Pillow's own DecompressionBombWarning for them would only add a second, file-less line.
    warnings.filterwarnings("ignore", message=r"Image size \(\d+ pixels\) exceeds limit")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        from .redact import redact

        print(f"r1track: error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("r1track: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout went away (`r1track ... | head`): stop quietly, as SIGPIPE would
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
