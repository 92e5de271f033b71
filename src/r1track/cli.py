"""The ``r1track`` command line. Each sub-command lives in ``r1track.commands.<name>`` and registers
itself with ``add_parser``; heavy imports happen only when a command runs."""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
import textwrap
import warnings
from typing import Sequence

from . import __version__
from .commands import CommandError  # noqa: F401 - defined with the commands that raise it; importable from here too
from .exitcodes import ExitStatus, describe as describe_exit_statuses

_UNWRITABLE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}

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


WORKFLOW = """\
workflow (docs/ has a page per step):
  r1track demo                                    the whole pipeline on this machine: no GPU, model or data
  r1track data build got10k:/data/GOT-10k@train   1. training pairs for LLaMA-Factory, EasyR1 and verl
  llamafactory-cli train examples/r1_track_lora_sft.yaml
                                                  2. train: SFT with LLaMA-Factory, then GRPO with EasyR1 or
                                                     verl (plugins/, 'r1track install')
  vllm serve MODEL --port 8000                    3. serve -- or load it in process: --backend {in_process}
  r1track eval /data/GOT-10k --split val --model MODEL
                                                  4. track and score; 'r1track report' compares runs
"""


def describe() -> str:
    """The top of ``r1track --help``: what r1track is today, from the registries (families, in-process engines,
    the default server URL), then the workflow."""
    from .backends import BACKENDS
    from .backends.openai import DEFAULT_BASE_URL, ENV_BASE_URL
    from .models import DEFAULT_FAMILY, FAMILIES

    families = ", ".join(f"{name}{' (default; the published R1-Track checkpoints)' if name == DEFAULT_FAMILY else ''}"
                         for name in FAMILIES)
    in_process = [name for name, spec in BACKENDS.items() if spec.in_process]
    intro = textwrap.fill(width=100, text=
        "r1track turns a multimodal LLM into a single-object tracker, the way R1-Track did with Qwen2.5-VL-3B: "
        "training pairs from tracking datasets, fine-tuning with LLaMA-Factory (SFT) and EasyR1 / verl (GRPO), "
        f"then tracking and scoring. Model families: {families}; each has its own crop rule and box coordinates, "
        "followed by every command (--model-family, or inferred from --model). The model answers from an "
        f"OpenAI-compatible server (vLLM; default {DEFAULT_BASE_URL}, or ${ENV_BASE_URL}, or --server) or from an "
        f"engine in the tracking process ({' or '.join(f'--backend {n}' for n in in_process)}, no server). "
        "Run 'r1track COMMAND --help' for the options of a command."
    )
    return intro + "\n\n" + WORKFLOW.format(in_process="|".join(in_process))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="r1track",
        description=describe(),
        epilog=describe_exit_statuses(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        return ExitStatus.OK if args.command is None else ExitStatus.USAGE
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        from .redact import redact

        print(f"r1track: error: {redact(str(exc))}", file=sys.stderr)
        return ExitStatus(exc.exit_status)
    except KeyboardInterrupt:
        print("r1track: interrupted", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    except BrokenPipeError:  # the reader of stdout went away (`r1track ... | head`): stop quietly, as SIGPIPE would
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return ExitStatus.BROKEN_PIPE
    except OSError as exc:  # out of space (or quota, or a read-only folder) where a command writes: no traceback
        if exc.errno not in _UNWRITABLE:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        print(f"r1track: error: cannot write{where}: {exc.strerror or exc}; files are written whole or not at all: "
              "free space (or choose another output folder) and run the command again", file=sys.stderr)
        return ExitStatus.RUN_FAILED
    except Exception as exc:  # an error that says its own status (r1track.backends.ServerRefused): no traceback
        status = getattr(exc, "exit_status", None)
        if not isinstance(status, ExitStatus):
            raise
        from .redact import redact

        print(f"r1track: error: {redact(str(exc))}", file=sys.stderr)
        return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
