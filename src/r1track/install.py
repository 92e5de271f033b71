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

This module is stdlib-only, so ``install_plugins.py`` can run it before r1track's dependencies exist.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .fsutil import atomic_write_bytes

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

MANIFEST_NAME = ".r1track-install.json"
BACKUP_SUFFIX = ".r1track-backup"
EDITED_SUFFIX = ".r1track-edited"
_SKIP_NAMES = {"__pycache__", ".DS_Store"}
_SKIP_SUFFIXES = (".pyc", ".pyo")


class InstallError(Exception):
    """A refusal with a user-facing message (wrong target, unsafe path, unreadable manifest...)."""


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


def repo_root() -> Path:
    """Where the plugin sources are (``plugins/``, ``examples/``, ``datasets_info/`` relative to it):
    ``R1TRACK_HOME`` when set; else the copy an installed wheel carries (``r1track/_bundle``, made by
    ``setup.py`` at build time); else the checkout this file sits in (``src/r1track/install.py``)."""
    env = os.environ.get("R1TRACK_HOME")
    here = Path(__file__).resolve().parent
    candidates = [Path(env)] if env else [here / "_bundle", here.parents[1]]
    for root in candidates:
        if (root / "plugins").is_dir():
            return root
    raise InstallError(
        f"no r1track plugins found at {candidates[0] / 'plugins'}: install r1track from a wheel or a clone of the "
        "r1track repository (python install_plugins.py ...), or set R1TRACK_HOME to a clone"
    )


def _pytracking_notes(target: Path) -> list[str]:
    if (target / "pytracking" / "evaluation" / "local.py").is_file():
        return []
    return [
        "pytracking/evaluation/local.py is missing (PyTracking creates a template on first run and stops). "
        "r1track needs nothing special in it; add at least, with your own paths:\n"
        "    from pytracking.evaluation.environment import EnvSettings\n\n"
        "    def local_env_settings():\n"
        "        settings = EnvSettings()\n"
        "        settings.results_path = '/path/to/pytracking/results'\n"
        "        settings.result_plot_path = '/path/to/pytracking/result_plots'\n"
        "        settings.got10k_path = '/path/to/GOT-10k'\n"
        "        settings.lasot_path = '/path/to/LaSOT'\n"
        "        settings.trackingnet_path = '/path/to/TrackingNet'\n"
        "        settings.otb_path = '/path/to/OTB100'\n"
        "        return settings\n"
        "(r1track never writes local.py.)"
    ]


TARGETS: dict[str, TargetSpec] = {
    "llamafactory": TargetSpec(
        name="llamafactory",
        title="LLaMA-Factory",
        markers=("src/llamafactory", "data/dataset_info.json"),
        files=(
            FileMap(
                "examples/r1_track_lora_sft.yaml",
                "examples/r1track/r1_track_lora_sft.yaml",
                replace=(("dataset_dir: datasets_info", "dataset_dir: data"),),
            ),
            FileMap("examples/r1_track_lora_merge.yaml", "examples/r1track/r1_track_lora_merge.yaml"),
            FileMap("plugins/llamafactory", "examples/r1track"),
        ),
        merges=(JsonMerge("datasets_info/dataset_info.json", "data/dataset_info.json"),),
    ),
    "easyr1": TargetSpec(
        name="easyr1",
        title="EasyR1",
        markers=("verl", "examples/config.yaml"),
        files=(
            FileMap("plugins/easyr1/reward_function", "examples/reward_function"),
            FileMap("plugins/easyr1/format_prompt", "examples/format_prompt"),
            FileMap("plugins/easyr1/examples", "examples/r1track"),
        ),
    ),
    "pytracking": TargetSpec(
        name="pytracking",
        title="PyTracking",
        markers=("pytracking/tracker/base/basetracker.py",),
        files=(
            FileMap("plugins/pytracking/tracker/r1track", "pytracking/tracker/r1track"),
            FileMap("plugins/pytracking/parameter/r1track", "pytracking/parameter/r1track"),
        ),
        notes=_pytracking_notes,
    ),
}


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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _entry_hash(value: object) -> str:
    return _sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode())


def _safe_dest(root: Path, rel: str) -> Path:
    """``root / rel`` after checking that the name cannot escape ``root``: no absolute path, no ``..``,
    and no existing directory on the way that is a symlink leading outside."""
    rel_path = Path(rel)
    if rel_path.is_absolute() or any(part in ("..", "") for part in rel_path.parts) or "\x00" in rel:
        raise InstallError(f"refusing unsafe destination name {rel!r}")
    dest = root / rel_path
    real_root = os.path.realpath(root)
    parent = dest.parent
    while True:
        if parent.exists() or parent.is_symlink():
            real = os.path.realpath(parent)
            if os.path.commonpath([real, real_root]) != real_root:
                raise InstallError(f"refusing to write {rel}: {parent} leads outside {root} (symlink)")
            break
        parent = parent.parent
    return dest


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


def _read_manifest(target: Path) -> dict | None:
    path = target / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InstallError(f"{path}: unreadable r1track manifest ({exc}); remove it or fix it by hand") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files", {}), dict):
        raise InstallError(f"{path}: not an r1track manifest")
    manifest.setdefault("files", {})
    manifest.setdefault("entries", {})
    manifest.setdefault("dirs", [])
    return manifest


def _current(dest: Path) -> tuple[str, bytes | None, str | None]:
    """('missing'|'link'|'file'|'other', content, link target)."""
    if dest.is_symlink():
        return "link", None, os.readlink(dest)
    if not dest.exists():
        return "missing", None, None
    if dest.is_file():
        return "file", dest.read_bytes(), None
    return "other", None, None


def plan_install(spec: TargetSpec, target: Path, *, link: bool = False, force: bool = False, source: Path | None = None) -> Plan:
    """Work out every action of an install without touching anything."""
    root = check_target(spec, target)
    source = Path(source) if source else repo_root()
    old = _read_manifest(root) or {"files": {}, "entries": {}, "dirs": []}
    manifest = {"r1track_install": 1, "framework": spec.name, "source": str(source), "files": {}, "entries": {}, "dirs": []}
    plan = Plan(spec, root, "install", manifest=manifest)
    dirs: set[str] = set()
    for fmap in spec.files:
        for src_path, rel in _source_files(source, fmap):
            dest = _safe_dest(root, rel)
            d = Path(rel).parent
            while str(d) not in ("", "."):
                if not (root / d).exists():
                    dirs.add(d.as_posix())
                d = d.parent
            state, content, link_target = _current(dest)
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
                    or (state == "file" and recorded.get("sha256") == _sha256(content or b""))
                )
                kind = "link" if state == "missing" or ours else ("force" if force else "conflict")
                if kind == "conflict":
                    plan.actions.append(Action("conflict", rel, "exists with other content; kept (use --force)"))
                    if recorded:
                        manifest["files"][rel] = recorded
                    continue
                detail = f"-> {want}" + (f"; {_force_detail(dest)}" if kind == "force" else "")
                plan.actions.append(Action(kind, rel, detail, link_to=want))
                manifest["files"][rel] = dict(record, backup=True) if kind == "force" else record
                continue
            data = src_path.read_bytes()
            for old_text, new_text in fmap.replace:
                data = data.replace(old_text.encode(), new_text.encode())
            record = {"sha256": _sha256(data)}
            if recorded and recorded.get("backup"):
                record["backup"] = True  # the user's original is still in NAME.r1track-backup
            if state == "file" and content == data:
                plan.actions.append(Action("same", rel))
                manifest["files"][rel] = record
                continue
            ours = recorded is not None and (
                (state == "file" and recorded.get("sha256") == _sha256(content or b""))
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
            detail = _force_detail(dest) if kind == "force" else ""
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


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    seen: dict = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key!r} (rewriting the file would drop its first copy; remove one)")
        seen[key] = value
    return seen


def _load_json_object(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicates)
    except ValueError as exc:
        raise InstallError(f"{path}: not valid JSON ({exc}); fix it before installing") from exc
    if not isinstance(value, dict):
        raise InstallError(f"{path}: expected a JSON object")
    return value


def _plan_merge(plan: Plan, source: Path, merge: JsonMerge, old: dict, force: bool) -> None:
    ours = _load_json_object(source / merge.src)
    dest = _json_dest(plan.target, merge.dst)  # refuses a symlink leading outside the target
    theirs = _load_json_object(dest) if dest.exists() else {}
    recorded = old["entries"].get(merge.dst, {})
    entries = {}
    for name, value in ours.items():
        h = _entry_hash(value)
        rec = recorded.get(name)
        if name not in theirs:
            plan.actions.append(Action("merge-add", merge.dst, f"entry {name!r}", entry=(name, value)))
            entries[name] = {"sha256": h}
        elif theirs[name] == value:
            plan.actions.append(Action("merge-same", merge.dst, f"entry {name!r}"))
            entries[name] = dict(rec or {}, sha256=h)
        elif rec and rec.get("sha256") == _entry_hash(theirs[name]):
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
    manifest = _read_manifest(root)
    plan = Plan(spec, root, "uninstall")
    if manifest is None:
        plan.notes.append(f"nothing to uninstall: no {MANIFEST_NAME} in {root}")
        return plan
    for rel, rec in sorted(manifest["files"].items()):
        dest = _safe_dest(root, rel)
        state, content, link_target = _current(dest)
        if state == "missing":
            continue
        if (state == "link" and rec.get("link") == link_target) or (
            state == "file" and rec.get("sha256") == _sha256(content or b"")
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
        dest = _safe_dest(root, dst)
        theirs = _load_json_object(dest) if dest.exists() else {}
        for name, rec in sorted(entries.items()):
            if name not in theirs:
                continue
            edited = _entry_hash(theirs[name]) != rec.get("sha256")
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


def _atomic_symlink(path: Path, to: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.r1track-link")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(to, tmp)
    os.replace(tmp, path)


def _backup_name(path: Path) -> Path:
    """``NAME.r1track-backup``, or the first free ``NAME.r1track-backup-N`` when that one holds an earlier
    backup (the user's original, which is never overwritten)."""
    backup = path.with_name(path.name + BACKUP_SUFFIX)
    k = 2
    while backup.exists() or backup.is_symlink():
        backup = path.with_name(f"{path.name}{BACKUP_SUFFIX}-{k}")
        k += 1
    return backup


def _force_detail(path: Path) -> str:
    return f"yours kept as {_backup_name(path).name}"


def _backup(path: Path) -> None:
    if path.is_symlink() or path.exists():
        os.replace(path, _backup_name(path))


def _json_dest(root: Path, rel: str) -> Path:
    """The file a JSON merge writes: ``rel`` itself, or -- when it is a symlink -- the file it points to,
    so the link stays a link. A link leading outside the target is refused."""
    dest = _safe_dest(root, rel)
    if not dest.is_symlink():
        return dest
    real = Path(os.path.realpath(dest))
    if os.path.commonpath([str(real), os.path.realpath(root)]) != os.path.realpath(root):
        raise InstallError(f"{dest} is a symlink to {real}, outside {root}; refusing to write through it "
                           "(replace the link with a copy, or install into the checkout it points to)")
    return real


def _json_layout(text: str) -> tuple[str | int | None, bool]:
    """(indent, trailing newline) of a JSON object file as the user wrote it: the first member line's
    leading whitespace (None for a one-line file)."""
    for line in text.splitlines()[1:]:
        stripped = line.lstrip(" \t")
        if stripped:
            lead = line[: len(line) - len(stripped)]
            return (len(lead) if lead and set(lead) == {" "} else lead or None), text.endswith("\n")
    return None, text.endswith("\n")


def _dump_json(value: dict, indent: str | int | None, newline: bool) -> bytes:
    text = json.dumps(value, indent=indent, ensure_ascii=False, separators=None if indent is not None else (", ", ": "))
    return (text + ("\n" if newline else "")).encode()


def _writable(folder: Path, probe: bool = True) -> bool:
    """Whether a file can be created in ``folder``: probed with a temporary file (right for root on
    read-only mounts and for ACLs that ``os.access`` misjudges; it touches the folder's mtime), or with
    ``os.access`` when ``probe`` is False (dry runs, which must touch nothing)."""
    if not probe:
        return os.access(folder, os.W_OK | os.X_OK)
    try:
        fd, name = tempfile.mkstemp(prefix=".r1track-probe-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


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
                dest = _json_dest(root, a.path)
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
    bad = [f for f in folders if not _writable(f, probe=False)]  # first touching nothing
    if not bad and probe:
        bad = [f for f in folders if not _writable(f, probe=True)]
    if bad:
        raise InstallError(f"cannot write in {', '.join(str(f) for f in bad)} (permission denied or read-only); "
                           "nothing was changed")


def _remove_pycache(folder: Path) -> None:
    """Delete ``folder/__pycache__`` when it holds only compiled Python files (``*.pyc``)."""
    cache = folder / "__pycache__"
    if cache.is_dir() and not cache.is_symlink():
        entries = list(cache.iterdir())
        if all(e.is_file() and not e.is_symlink() and e.suffix in (".pyc", ".pyo") for e in entries):
            for e in entries:
                e.unlink()
            cache.rmdir()


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
        dest = _safe_dest(root, a.path)
        if a.kind in ("create", "update"):
            atomic_write_bytes(dest, a.data or b"")
        elif a.kind == "force":
            _backup(dest)
            if a.link_to:
                _atomic_symlink(dest, a.link_to)
            else:
                atomic_write_bytes(dest, a.data or b"")
        elif a.kind == "link":
            _atomic_symlink(dest, a.link_to or "")
        elif a.kind == "remove":
            dest.unlink()
        elif a.kind == "restore-file":
            os.replace(dest.with_name(dest.name + BACKUP_SUFFIX), dest)
        elif a.kind == "rmdir":
            _remove_pycache(dest)
            try:
                dest.rmdir()
                a.detail = "created by the install; removed"
            except OSError:
                a.detail = "kept: it holds files that are not r1track's"
    for rel, edits in json_edits.items():
        dest = _json_dest(root, rel)
        text = dest.read_text(encoding="utf-8") if dest.exists() else "{\n}\n"
        value = _load_json_object(dest) if dest.exists() else {}
        for a in edits:
            name, entry = a.entry  # type: ignore[misc]
            if a.kind == "remove":
                value.pop(name, None)
            else:
                value[name] = entry
        indent, newline = _json_layout(text)
        atomic_write_bytes(dest, _dump_json(value, 2 if indent is None and not dest.exists() else indent, newline))
    if plan.mode != "install" and manifest_path.exists():
        # Files kept because the user modified them are the user's from now on: a later install
        # reports them as conflicts instead of overwriting them.
        manifest_path.unlink()


def manifest_bytes(plan: Plan) -> bytes:
    """The manifest an install plan writes."""
    return (json.dumps(plan.manifest, indent=2, sort_keys=True) + "\n").encode()


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
