"""Installing as a plan: every action is worked out first, touching nothing (:func:`plan_install`,
:func:`plan_uninstall`), then carried out by :func:`r1track.installer.apply.apply_plan`.

A framework is a :class:`TargetSpec` (its layout markers, the files to copy as :class:`FileMap`, the JSON files to
merge into as :class:`JsonMerge`); each has a module of its own in this package. Every decision -- create, update,
same, conflict, force with a backup, merge an entry, keep what the user modified -- is an :class:`Action`; the
manifest the install will write is part of the :class:`Plan`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .safefiles import (
    BACKUP_SUFFIX,
    EDITED_SUFFIX,
    MANIFEST_NAME,
    InstallError,
    current_state,
    entry_hash,
    force_detail,
    json_dest,
    load_json_object,
    read_manifest,
    safe_dest,
    sha256,
)
from .sources import repo_root

__all__ = ["FileMap", "JsonMerge", "TargetSpec", "Action", "Plan", "check_target", "plan_install", "plan_uninstall",
           "manifest_bytes"]

_SKIP_NAMES = {"__pycache__", ".DS_Store"}
_SKIP_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class FileMap:
    """Copy ``src`` (a file or a folder, relative to the r1track checkout) to ``dst`` (relative to the
    target). ``replace`` = text substitutions applied to copied text files (not to links)."""

    src: str
    dst: str
    replace: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class JsonMerge:
    """Merge the top-level entries of ``src`` (r1track checkout) into the JSON object file ``dst``."""

    src: str
    dst: str


@dataclass(frozen=True)
class TargetSpec:
    name: str
    title: str
    markers: tuple[str, ...]
    files: tuple[FileMap, ...]
    merges: tuple[JsonMerge, ...] = ()
    notes: Callable[[Path], list[str]] | None = None


@dataclass
class Action:
    """One step. ``kind``: create, update, link, same, conflict, force (replace, keeping a backup),
    merge-add, merge-same, merge-conflict, merge-force, remove, keep, restore (a dataset entry),
    restore-file (a backed-up user file), rmdir, manifest."""

    kind: str
    path: str
    detail: str = ""
    data: bytes | None = None
    link_to: str | None = None
    entry: tuple[str, object] | None = None

    @property
    def changes(self) -> bool:
        return self.kind not in ("same", "merge-same", "conflict", "merge-conflict", "keep")


@dataclass
class Plan:
    spec: TargetSpec
    target: Path
    mode: str  # install | uninstall
    actions: list[Action] = field(default_factory=list)
    manifest: dict | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return any(a.changes for a in self.actions)

    @property
    def conflicts(self) -> list[Action]:
        return [a for a in self.actions if a.kind in ("conflict", "merge-conflict")]


def check_target(spec: TargetSpec, target: Path) -> Path:
    """The target's resolved root, or InstallError saying which layout was expected."""
    target = Path(target)
    if not target.is_dir():
        raise InstallError(f"{spec.title} checkout not found: {target} is not a directory")
    missing = [m for m in spec.markers if not (target / m).exists()]
    if missing:
        needs = "" if len(spec.markers) == len(missing) else f" (a {spec.title} checkout has {', '.join(spec.markers)})"
        raise InstallError(f"{target} does not look like a {spec.title} checkout: it has no {', '.join(missing)}{needs}")
    return target.resolve()


def _source_files(root: Path, fmap: FileMap) -> list[tuple[Path, str]]:
    src = root / fmap.src
    if src.is_file():
        return [(src, fmap.dst)]
    if not src.is_dir():
        raise InstallError(f"plugin source {src} is missing from the r1track checkout")
    out = []
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if path.is_dir() or any(p in _SKIP_NAMES for p in rel.parts) or path.name.endswith(_SKIP_SUFFIXES):
            continue
        out.append((path, f"{fmap.dst}/{rel.as_posix()}"))
    return out


def plan_install(spec: TargetSpec, target: Path, *, link: bool = False, force: bool = False, source: Path | None = None) -> Plan:
    """Work out every action of an install without touching anything."""
    root = check_target(spec, target)
    source = Path(source) if source else repo_root()
    old = read_manifest(root) or {"files": {}, "entries": {}, "dirs": []}
    manifest = {"r1track_install": 1, "framework": spec.name, "source": str(source), "files": {}, "entries": {}, "dirs": []}
    plan = Plan(spec, root, "install", manifest=manifest)
    dirs: set[str] = set()
    for fmap in spec.files:
        for src_path, rel in _source_files(source, fmap):
            dest = safe_dest(root, rel)
            d = Path(rel).parent
            while str(d) not in ("", "."):
                if not (root / d).exists():
                    dirs.add(d.as_posix())
                d = d.parent
            state, content, link_target = current_state(dest)
            recorded = old["files"].get(rel)
            if link:
                want = str(src_path.resolve())
                record = {"link": want}
                if recorded and recorded.get("backup"):
                    record["backup"] = True
                if state == "link" and link_target == want:
                    plan.actions.append(Action("same", rel))
                    manifest["files"][rel] = record
                    continue
                ours = recorded is not None and (
                    (state == "link" and recorded.get("link") == link_target)
                    or (state == "file" and recorded.get("sha256") == sha256(content or b""))
                )
                kind = "link" if state == "missing" or ours else ("force" if force else "conflict")
                if kind == "conflict":
                    plan.actions.append(Action("conflict", rel, "exists with other content; kept (use --force)"))
                    if recorded:
                        manifest["files"][rel] = recorded
                    continue
                detail = f"-> {want}" + (f"; {force_detail(dest)}" if kind == "force" else "")
                plan.actions.append(Action(kind, rel, detail, link_to=want))
                manifest["files"][rel] = dict(record, backup=True) if kind == "force" else record
                continue
            data = src_path.read_bytes()
            for old_text, new_text in fmap.replace:
                data = data.replace(old_text.encode(), new_text.encode())
            record = {"sha256": sha256(data)}
            if recorded and recorded.get("backup"):
                record["backup"] = True  # the user's original is still in NAME.r1track-backup
            if state == "file" and content == data:
                plan.actions.append(Action("same", rel))
                manifest["files"][rel] = record
                continue
            ours = recorded is not None and (
                (state == "file" and recorded.get("sha256") == sha256(content or b""))
                or (state == "link" and recorded.get("link") == link_target)
            )
            if state == "missing":
                kind = "create"
            elif ours:
                kind = "update"
            elif state == "other":
                raise InstallError(f"{root / rel} exists and is not a file; refusing to touch it")
            else:
                kind = "force" if force else "conflict"
            if kind == "conflict":
                plan.actions.append(Action("conflict", rel, "exists with other content; kept (use --force to replace, keeping a backup)"))
                if recorded:
                    manifest["files"][rel] = recorded
                continue
            detail = force_detail(dest) if kind == "force" else ""
            plan.actions.append(Action(kind, rel, detail, data=data))
            manifest["files"][rel] = dict(record, backup=True) if kind == "force" else record
    for merge in spec.merges:
        _plan_merge(plan, source, merge, old, force)
    manifest["dirs"] = sorted(set(old.get("dirs", [])) | dirs)
    path = root / MANIFEST_NAME
    if not path.is_file() or path.read_bytes() != manifest_bytes(plan):
        plan.actions.append(Action("manifest", MANIFEST_NAME))
    if spec.notes:
        plan.notes.extend(spec.notes(root))
    return plan


def _plan_merge(plan: Plan, source: Path, merge: JsonMerge, old: dict, force: bool) -> None:
    ours = load_json_object(source / merge.src)
    dest = json_dest(plan.target, merge.dst)  # refuses a symlink leading outside the target
    theirs = load_json_object(dest) if dest.exists() else {}
    recorded = old["entries"].get(merge.dst, {})
    entries = {}
    for name, value in ours.items():
        h = entry_hash(value)
        rec = recorded.get(name)
        if name not in theirs:
            plan.actions.append(Action("merge-add", merge.dst, f"entry {name!r}", entry=(name, value)))
            entries[name] = {"sha256": h}
        elif theirs[name] == value:
            plan.actions.append(Action("merge-same", merge.dst, f"entry {name!r}"))
            entries[name] = dict(rec or {}, sha256=h)
        elif rec and rec.get("sha256") == entry_hash(theirs[name]):
            plan.actions.append(Action("merge-add", merge.dst, f"entry {name!r} (updated)", entry=(name, value)))
            entries[name] = dict(rec, sha256=h)
        elif force and rec and "replaced" in rec:
            # forced before, edited by the user since: the original stays recorded, the edit is kept too
            plan.actions.append(Action("merge-force", merge.dst, f"entry {name!r} replaced (your original stays in the manifest; "
                                       f"this edit of it is restored as {name + EDITED_SUFFIX!r} on uninstall)", entry=(name, value)))
            entries[name] = {"sha256": h, "replaced": rec["replaced"], "edited": theirs[name]}
        elif force:
            plan.actions.append(Action("merge-force", merge.dst, f"entry {name!r} replaced (the old one is kept in the manifest and restored on uninstall)", entry=(name, value)))
            entries[name] = {"sha256": h, "replaced": theirs[name]}
        else:
            plan.actions.append(
                Action("merge-conflict", merge.dst, f"entry {name!r} exists with different content; kept (use --force)")
            )
    plan.manifest["entries"][merge.dst] = entries  # type: ignore[index]


def plan_uninstall(spec: TargetSpec, target: Path) -> Plan:
    """Work out the removal of exactly what the manifest records (unchanged files and entries)."""
    root = check_target(spec, target)
    manifest = read_manifest(root)
    plan = Plan(spec, root, "uninstall")
    if manifest is None:
        plan.notes.append(f"nothing to uninstall: no {MANIFEST_NAME} in {root}")
        return plan
    for rel, rec in sorted(manifest["files"].items()):
        dest = safe_dest(root, rel)
        state, content, link_target = current_state(dest)
        if state == "missing":
            continue
        if (state == "link" and rec.get("link") == link_target) or (
            state == "file" and rec.get("sha256") == sha256(content or b"")
        ):
            plan.actions.append(Action("remove", rel))
            backup = dest.with_name(dest.name + BACKUP_SUFFIX)
            if rec.get("backup") and (backup.exists() or backup.is_symlink()):
                plan.actions.append(Action("restore-file", rel, f"your original, from {backup.name}"))
            for later in sorted(dest.parent.glob(f"{dest.name}{BACKUP_SUFFIX}-*")):
                plan.actions.append(Action("keep", f"{Path(rel).parent.as_posix()}/{later.name}".lstrip("./"),
                                           "your edit saved by a later --force; kept"))
        else:
            backup = dest.with_name(dest.name + BACKUP_SUFFIX)
            extra = f"; your original is still in {backup.name}" if rec.get("backup") and backup.exists() else ""
            plan.actions.append(Action("keep", rel, f"modified since it was installed; kept{extra}"))
    for dst, entries in sorted(manifest["entries"].items()):
        dest = safe_dest(root, dst)
        theirs = load_json_object(dest) if dest.exists() else {}
        for name, rec in sorted(entries.items()):
            if name not in theirs:
                continue
            edited = entry_hash(theirs[name]) != rec.get("sha256")
            if "replaced" in rec:
                plan.actions.append(Action("restore", dst, f"entry {name!r} (your original, which --force replaced)", entry=(name, rec["replaced"])))
                keep = theirs[name] if edited else rec.get("edited")
                if keep is not None:
                    plan.actions.append(Action("restore", dst, f"entry {name + EDITED_SUFFIX!r}: your edit of the installed entry",
                                               entry=(name + EDITED_SUFFIX, keep)))
            elif edited:
                plan.actions.append(Action("keep", dst, f"entry {name!r} modified since it was installed; kept"))
            else:
                plan.actions.append(Action("remove", dst, f"entry {name!r}", entry=(name, None)))
    for d in sorted(manifest.get("dirs", []), key=lambda p: -len(Path(p).parts)):
        if (root / d).is_dir():
            plan.actions.append(Action("rmdir", d, "created by the install; removed when nothing else is left in it"))
    plan.actions.append(Action("manifest", MANIFEST_NAME))
    return plan


def manifest_bytes(plan: Plan) -> bytes:
    """The manifest an install plan writes."""
    return (json.dumps(plan.manifest, indent=2, sort_keys=True) + "\n").encode()
