"""Ctrl-C and the worker processes r1track starts: only the parent hears it.

A terminal sends Ctrl-C (SIGINT) to every process of the foreground group, the parent and its workers alike.
The parent is the one that acts on it (it stops its workers and cleans up, then prints ``r1track: interrupted``
once); a worker that heard it too would print its own traceback, and a freshly spawned worker, still importing
r1track, cannot even install a handler that keeps it quiet. :func:`ctrl_c_held` closes that gap: the processes
started inside it begin life with SIGINT blocked (a blocked signal stays blocked across fork and exec), so a
Ctrl-C never reaches them, while the parent gets its own Ctrl-C as soon as the block ends (a blocked signal is
held pending, not lost).

CPython's own ``multiprocessing`` resource tracker starts its process the same way (Python 3.11,
``multiprocessing/resource_tracker.py``, ``ensure_running``: SIGINT and SIGTERM blocked around the spawn), but it
then *unblocks* them rather than restoring the mask it found. The first semaphore or queue of a process starts
that tracker, a ``multiprocessing`` pool makes one, and a pool made inside a plain block would so start its
workers with SIGINT unblocked again (measured: every worker's ``SigBlk`` was 0). :func:`ctrl_c_held` therefore
starts the tracker before it blocks; once running, the tracker is not started again.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator

__all__ = ["ctrl_c_held"]


@contextmanager
def ctrl_c_held() -> Iterator[None]:
    """Block SIGINT in the calling thread for the ``with`` block; worker processes (and threads) started inside it
    keep it blocked for their whole life, so Ctrl-C reaches only this process. A Ctrl-C that arrives during the
    block is this process's all the same: raised as :class:`KeyboardInterrupt` when the block ends, or inside it
    when another thread of this process (one that does not block SIGINT) took the signal; a caller keeps what
    it starts in a variable its cleanup sees. Where the platform has no ``pthread_sigmask`` (Windows), nothing
    is blocked."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()  # starting it later, inside the block, would unblock SIGINT
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
