"""Install r1track's plugin files into upstream checkouts (LLaMA-Factory, EasyR1, PyTracking), safely.

Contract:

* A target is recognised by its real layout (``TargetSpec.markers``); anything else is refused.
* Files are copied (or symlinked with ``link=True``); LLaMA-Factory's ``data/dataset_info.json`` gets our
  entries merged in, every existing entry kept.
* Nothing is ever clobbered: a file or dataset entry that exists with other content and was not installed
  (unchanged) by us is a *conflict*, skipped and reported; ``force=True`` replaces it, keeping the user's
  file as ``<name>.r1track-backup`` (and the replaced dataset entry in the manifest, restored on uninstall).
  The first backup is the user's original and is never overwritten: a later ``--force`` over a file the user
  edited after installing keeps that edit as ``<name>.r1track-backup-2`` (``-3``...). Uninstall puts the
  original back; a replaced dataset entry the user edited since is restored too, the edit kept under
  ``<name>.r1track-edited`` in the same file; both are reported.
* Writability of every folder to be written is probed before anything is written: an install either
  happens whole or not at all (the manifest is written first, so even a crash mid-way can be uninstalled).
* ``dataset_info.json`` keeps its indentation, key order and trailing newline; a duplicate key (whose first
  copy a rewrite would drop) is refused. A symlinked ``dataset_info.json`` is written through (the link
  stays a link) when it points inside the target, refused otherwise.
* Uninstall removes Python's ``__pycache__`` folders inside the folders the install created, so those
  folders go too (a leftover ``tracker/r1track/__pycache__`` would make PyTracking find a broken tracker).
* Idempotent: a second run finds everything up to date and changes nothing.
* A manifest (``.r1track-install.json`` in the target root) records every file and entry written, with
  SHA-256 hashes; uninstall removes exactly those, keeping (and reporting) anything modified since.
* Nothing is written outside the target: destination names are checked for absolute paths and ``..``,
  and no write goes through a symlinked directory that leads outside the target.

The work is in the :mod:`r1track.installer` package (one installer per framework over a shared safe-file layer);
every public name is importable from here. Standard library only, so ``install_plugins.py`` can run it before
r1track's dependencies exist.
"""

from __future__ import annotations

from .installer.apply import apply_plan, check_writable
from .installer.plan import (  # noqa: F401 - manifest_bytes is importable from here too
    Action,
    FileMap,
    JsonMerge,
    Plan,
    TargetSpec,
    check_target,
    manifest_bytes,
    plan_install,
    plan_uninstall,
)
from .installer.safefiles import BACKUP_SUFFIX, EDITED_SUFFIX, MANIFEST_NAME, InstallError  # noqa: F401
from .installer.sources import r1track_import_check, repo_root
from .installer.targets import TARGETS

__all__ = [
    "MANIFEST_NAME",
    "FileMap",
    "JsonMerge",
    "TargetSpec",
    "Action",
    "Plan",
    "InstallError",
    "TARGETS",
    "repo_root",
    "check_target",
    "plan_install",
    "plan_uninstall",
    "apply_plan",
    "check_writable",
    "r1track_import_check",
]
