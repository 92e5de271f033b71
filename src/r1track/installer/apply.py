"""Carrying out an install plan: every folder it writes in is probed first (:func:`check_writable`), so nothing
is written unless all of it can be; then :func:`apply_plan` writes the manifest first and every file atomically.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..fsutil import atomic_write_bytes
from .plan import Action, Plan, manifest_bytes
from .safefiles import (
    BACKUP_SUFFIX,
    MANIFEST_NAME,
    InstallError,
    atomic_symlink,
    backup_file,
    dump_json,
    json_dest,
    json_layout,
    load_json_object,
    remove_pycache,
    safe_dest,
    writable,
)

__all__ = ["check_writable", "apply_plan"]


def _folders_written(plan: Plan) -> list[Path]:
    """Every existing folder ``apply_plan`` creates, replaces or removes something in."""
    root = plan.target
    out: set[Path] = set()
    for a in plan.actions:
        if not a.changes:
            continue
        dest = root / a.path
        if a.kind in ("merge-add", "merge-force", "restore") or (a.kind == "remove" and a.entry is not None):
            with contextlib.suppress(InstallError):
                dest = json_dest(root, a.path)
        folder = dest.parent
        while not folder.exists():
            folder = folder.parent
        out.add(folder)
        if a.kind == "rmdir" and (dest / "__pycache__").is_dir():
            out.add(dest / "__pycache__")
    return sorted(out)


def check_writable(plan: Plan, *, probe: bool = True) -> None:
    """InstallError naming every folder ``plan`` needs to write in that cannot be written; nothing is
    written then (:func:`apply_plan` calls it first). ``probe=False``: judge by permissions only, touching
    nothing (dry runs)."""
    folders = _folders_written(plan)
    files = [f for f in folders if not f.is_dir()]  # a file (or a link to one) where a folder must go
    if files:
        raise InstallError(f"{', '.join(str(f) for f in files)}: a file sits where r1track needs a folder; move or "
                           "remove it and run the install again; nothing was changed")
    bad = [f for f in folders if not writable(f, probe=False)]  # first touching nothing
    if not bad and probe:
        bad = [f for f in folders if not writable(f, probe=True)]
    if bad:
        raise InstallError(f"cannot write in {', '.join(str(f) for f in bad)} (permission denied or read-only); "
                           "nothing was changed")


def apply_plan(plan: Plan) -> None:
    """Carry out ``plan`` after checking that every folder it writes in is writable (nothing is written
    otherwise). The install manifest is written first; JSON merges once per file, atomically, in the
    file's own layout. ``rmdir`` actions get ``detail`` saying whether the folder went."""
    root = plan.target
    check_writable(plan)
    json_edits: dict[str, list[Action]] = {}
    manifest_path = root / MANIFEST_NAME
    if plan.mode == "install":
        data = manifest_bytes(plan)
        if not manifest_path.is_file() or manifest_path.read_bytes() != data:
            atomic_write_bytes(manifest_path, data)
    for a in plan.actions:
        if a.kind in ("merge-add", "merge-force", "restore") or (a.kind == "remove" and a.entry is not None):
            json_edits.setdefault(a.path, []).append(a)
            continue
        if a.kind == "manifest":
            continue
        dest = safe_dest(root, a.path)
        if a.kind in ("create", "update"):
            atomic_write_bytes(dest, a.data or b"")
        elif a.kind == "force":
            backup_file(dest)
            if a.link_to:
                atomic_symlink(dest, a.link_to)
            else:
                atomic_write_bytes(dest, a.data or b"")
        elif a.kind == "link":
            atomic_symlink(dest, a.link_to or "")
        elif a.kind == "remove":
            dest.unlink()
        elif a.kind == "restore-file":
            os.replace(dest.with_name(dest.name + BACKUP_SUFFIX), dest)
        elif a.kind == "rmdir":
            remove_pycache(dest)
            try:
                dest.rmdir()
                a.detail = "created by the install; removed"
            except OSError:
                a.detail = "kept: it holds files that are not r1track's"
    for rel, edits in json_edits.items():
        dest = json_dest(root, rel)
        text = dest.read_text(encoding="utf-8") if dest.exists() else "{\n}\n"
        value = load_json_object(dest) if dest.exists() else {}
        for a in edits:
            name, entry = a.entry  # type: ignore[misc]
            if a.kind == "remove":
                value.pop(name, None)
            else:
                value[name] = entry
        indent, newline = json_layout(text)
        atomic_write_bytes(dest, dump_json(value, 2 if indent is None and not dest.exists() else indent, newline))
    if plan.mode != "install" and manifest_path.exists():
        # Files kept because the user modified them are the user's from now on: a later install
        # reports them as conflicts instead of overwriting them.
        manifest_path.unlink()
