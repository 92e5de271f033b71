"""The exit statuses of the ``r1track`` command line: one table, used by every sub-command and documented in
``r1track --help``.

A status always tells the truth about the run: 0 only when every requested piece of work finished and its
results were written; a rerun of the same command can fix what a 1 or a 3 reports.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitStatus", "describe"]


class ExitStatus(IntEnum):
    """Exit statuses of ``r1track``; the values are a public contract (scripts test them)."""

    OK = 0
    #: the run did not complete: a server stopped answering, a sequence failed, results are missing or unusable.
    RUN_FAILED = 1
    #: a usage or input error: a bad flag, an unreadable dataset or file, a refused setting; nothing was run.
    USAGE = 2
    #: a server answered but refused the work (authentication, permission, redirect): fix the key or URL.
    SERVER_REFUSED = 3
    #: interrupted by the user (Ctrl-C / SIGINT); finished sequences are kept and a rerun resumes.
    INTERRUPTED = 130
    #: the reader of standard output went away (``r1track ... | head``).
    BROKEN_PIPE = 141


_TEXT = {
    ExitStatus.OK: "success",
    ExitStatus.RUN_FAILED: "the run did not complete (a server stopped answering or a sequence failed); rerun to resume",
    ExitStatus.USAGE: "usage or input error; nothing was run",
    ExitStatus.SERVER_REFUSED: "the server refused the request (authentication, permission or redirect)",
    ExitStatus.INTERRUPTED: "interrupted; rerun to resume",
    ExitStatus.BROKEN_PIPE: "standard output was closed",
}


def describe() -> str:
    """The table as ``--help`` epilog text, one status per line."""
    return "exit status:\n" + "\n".join(f"  {int(s):>3}  {_TEXT[s]}" for s in ExitStatus)
