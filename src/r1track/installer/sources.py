"""Where the plugin files come from (:func:`repo_root`), and whether a framework's Python can import r1track
(:func:`r1track_import_check`), which the installed plugin files need at run time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .safefiles import InstallError

__all__ = ["repo_root", "r1track_import_check"]


def repo_root() -> Path:
    """Where the plugin sources are (``plugins/``, ``examples/``, ``datasets_info/`` relative to it):
    ``R1TRACK_HOME`` when set; else the copy an installed wheel carries (``r1track/_bundle``, made by
    ``setup.py`` at build time); else the checkout this file sits in (``src/r1track/installer/sources.py``)."""
    env = os.environ.get("R1TRACK_HOME")
    here = Path(__file__).resolve().parents[1]  # the r1track package folder
    candidates = [Path(env)] if env else [here / "_bundle", here.parents[1]]
    for root in candidates:
        if (root / "plugins").is_dir():
            return root
    raise InstallError(
        f"no r1track plugins found at {candidates[0] / 'plugins'}: install r1track from a wheel or a clone of the "
        "r1track repository (python install_plugins.py ...), or set R1TRACK_HOME to a clone"
    )


def r1track_import_check(python: str | None = None) -> str | None:
    """None if ``import r1track`` works in ``python`` (default: this interpreter, run afresh, outside
    the checkout's ``src``); else a message saying how to install it."""
    python = python or sys.executable
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    try:
        proc = subprocess.run(
            [python, "-c", "import r1track"], capture_output=True, text=True, env=env, cwd=tempfile.gettempdir(), timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"could not run {python}: {exc}"
    if proc.returncode == 0:
        return None
    try:
        where = repo_root()
    except InstallError:
        where = Path("/path/to/r1track")
    return (
        f"'import r1track' fails in {python}; the plugin files import it at run time. Install it into the "
        f"framework's environment with:\n    {python} -m pip install -e {where}"
    )
