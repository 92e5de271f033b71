"""File output that never leaves a half-written file, with the permissions a user expects, and the open-file limit.

* :func:`atomic_output` (and :func:`atomic_write_bytes` / :func:`atomic_write_text`): a file either
  appears complete or not at all (temp file beside it, fsync, rename). The temp file is created 0600 by
  :func:`tempfile.mkstemp`; before the rename it gets the mode a plain ``open(path, "w")`` would give:
  ``0666 & ~umask`` (0644 under the usual umask 022), or the replaced file's own mode when ``path``
  already exists — colleagues on a shared cluster can read results, and an installer never changes the
  permissions of a file it updates.
* :func:`append_line` / :func:`append_lines`: append lines to a log and close it again (no file held open between
  appends).
* :func:`raise_open_file_limit`: raise the soft ``RLIMIT_NOFILE`` towards the hard one (a run with hundreds
  of sequences in flight holds a socket per request).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import IO, Iterator

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_output", "append_line", "append_lines", "current_umask",
           "raise_open_file_limit"]

_UMASK_LOCK = threading.Lock()
_UMASK_RE = re.compile(rb"^Umask:\s*([0-7]+)\s*$", re.M)


def current_umask() -> int:
    """The process's umask, read without changing it where the system tells (Linux ``/proc``), else
    by setting and restoring it under a lock."""
    try:
        with open("/proc/self/status", "rb") as f:
            m = _UMASK_RE.search(f.read())
        if m:
            return int(m.group(1), 8)
    except OSError:
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _target_mode(path: Path) -> int:
    try:
        st = os.stat(path)
        if not os.path.isdir(path):
            return st.st_mode & 0o7777
    except OSError:
        pass
    return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temp file beside ``path``; on success it is flushed, fsynced, given ``path``'s mode
    (see the module docstring) and renamed onto ``path``; on any exception it is removed and ``path``
    is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), _target_mode(path))
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_output(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_output(path, "w") as f:
        f.write(text)


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append ``line`` and a newline to ``path`` (created with the umask's mode; its folder must exist)
    and close it. One ``write`` call: a crash leaves at most a torn last line, which readers must skip."""
    append_lines(path, [line])


def append_lines(path: str | os.PathLike, lines: list[str]) -> None:
    """Append each of ``lines`` and a newline to ``path`` (as :func:`append_line`), in one ``write`` call."""
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))


def raise_open_file_limit() -> int | None:
    """Raise the soft limit on open files to the hard limit (where the system has one) and return the
    soft limit now in force; None where there is no such limit (Windows)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    elif hard == resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY and soft < 65536:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (65536, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else int(soft)
