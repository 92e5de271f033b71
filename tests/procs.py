"""Running the command line in a child process and watching the worker processes it spawns (Linux ``/proc``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

CLI_DRIVER = ("import signal, sys\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
              "from r1track.cli import main\nsys.exit(main(sys.argv[1:]))")
"""``python -c CLI_DRIVER args...`` runs ``r1track args...``. A background job may inherit SIGINT ignored (and
Python then leaves it so): the driver gives it Python's own handler, as an interactive shell would."""

PROC = Path("/proc")
SIGINT_BIT = 1 << 1  # bit (signal number - 1) of /proc/<pid>/status signal masks


def on_linux_proc() -> bool:
    return sys.platform.startswith("linux") and (PROC / "self" / "status").is_file()


def _status(pid: int) -> dict[str, str]:
    try:
        text = (PROC / str(pid) / "status").read_text()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def spawned_workers(pid: int) -> list[int]:
    """Pids of ``pid``'s children that are ``multiprocessing`` spawn workers (not its resource tracker)."""
    kids: list[int] = []
    for f in (PROC / str(pid) / "task").glob("*/children"):
        try:
            kids += [int(k) for k in f.read_text().split()]
        except OSError:
            continue
    out = []
    for k in kids:
        try:
            if b"spawn_main" in (PROC / str(k) / "cmdline").read_bytes():
                out.append(k)
        except OSError:
            continue
    return out


def python_is_up(pid: int) -> bool:
    """Whether the Python in ``pid`` has set up its SIGINT disposition (its KeyboardInterrupt handler, or an
    ignore): from then until its own code runs, it is importing what its target needs."""
    st = _status(pid)
    return bool(st) and bool((int(st.get("SigCgt", "0"), 16) | int(st.get("SigIgn", "0"), 16)) & SIGINT_BIT)


def sigint_blocked(pid: int) -> bool:
    return bool(int(_status(pid).get("SigBlk", "0"), 16) & SIGINT_BIT)


def wait_for_starting_workers(proc, n: int, timeout_s: float = 60.0) -> list[int]:
    """Wait until ``proc`` (a Popen) has ``n`` spawn workers whose Python is up (see :func:`python_is_up`);
    their pids, or AssertionError (with the process's output when it ended first)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before its workers started: {proc.communicate()}")
        workers = [k for k in spawned_workers(proc.pid) if python_is_up(k)]
        if len(workers) >= n:
            return workers
        time.sleep(0.002)
    raise AssertionError(f"no {n} starting workers within {timeout_s} s")
