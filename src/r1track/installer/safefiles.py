"""The safe-file layer under every installer: nothing outside the target, nothing of the user's lost.

* :func:`safe_dest`: a destination name inside the target, never through a symlinked folder leading out;
  :func:`json_dest`: the same for a JSON file, written through when it is a link inside the target.
* The manifest (:data:`MANIFEST_NAME` in the target root, :func:`read_manifest`) records what an install wrote,
  with SHA-256 hashes (:func:`sha256`, :func:`entry_hash`).
* Backups: a replaced user file becomes ``NAME.r1track-backup`` (the first one is the user's original and is never
  overwritten; later ones are ``-2``, ``-3``...), replaced dataset entries are restored as ``NAME.r1track-edited``.
* Writes are atomic: files through :func:`r1track.fsutil.atomic_write_bytes`, links through :func:`atomic_symlink`;
  JSON keeps the user's indentation, key order and trailing newline and refuses duplicate keys.
* :func:`writable` probes a folder before anything is written, so an install happens whole or not at all.

Standard library only, like the whole installer.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

__all__ = [
    "MANIFEST_NAME",
    "BACKUP_SUFFIX",
    "EDITED_SUFFIX",
    "InstallError",
    "sha256",
    "entry_hash",
    "safe_dest",
    "read_manifest",
    "current_state",
    "load_json_object",
    "atomic_symlink",
    "force_detail",
    "backup_file",
    "json_dest",
    "json_layout",
    "dump_json",
    "writable",
    "remove_pycache",
]

MANIFEST_NAME = ".r1track-install.json"
BACKUP_SUFFIX = ".r1track-backup"
EDITED_SUFFIX = ".r1track-edited"


class InstallError(Exception):
    """A refusal with a user-facing message (wrong target, unsafe path, unreadable manifest...)."""


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data`` (what the manifest records per file)."""
    return hashlib.sha256(data).hexdigest()


def entry_hash(value: object) -> str:
    """Hex SHA-256 of a JSON value in canonical form (what the manifest records per dataset entry)."""
    return sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode())


def safe_dest(root: Path, rel: str) -> Path:
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


def read_manifest(target: Path) -> dict | None:
    """The install manifest in ``target`` (None when there is none); InstallError when it is unreadable."""
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


def current_state(dest: Path) -> tuple[str, bytes | None, str | None]:
    """('missing'|'link'|'file'|'other', content, link target)."""
    if dest.is_symlink():
        return "link", None, os.readlink(dest)
    if not dest.exists():
        return "missing", None, None
    if dest.is_file():
        return "file", dest.read_bytes(), None
    return "other", None, None


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    seen: dict = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key!r} (rewriting the file would drop its first copy; remove one)")
        seen[key] = value
    return seen


def load_json_object(path: Path) -> dict:
    """The JSON object in ``path``; InstallError when it is not valid JSON, not an object, or repeats a key."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicates)
    except ValueError as exc:
        raise InstallError(f"{path}: not valid JSON ({exc}); fix it before installing") from exc
    if not isinstance(value, dict):
        raise InstallError(f"{path}: expected a JSON object")
    return value


def atomic_symlink(path: Path, to: str) -> None:
    """Make ``path`` a symlink to ``to``, replacing what is there in one rename."""
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


def force_detail(path: Path) -> str:
    """What a forced replacement of ``path`` says about the user's file."""
    return f"yours kept as {_backup_name(path).name}"


def backup_file(path: Path) -> None:
    """Move the user's ``path`` (a file or a link) to its backup name, if it exists."""
    if path.is_symlink() or path.exists():
        os.replace(path, _backup_name(path))


def json_dest(root: Path, rel: str) -> Path:
    """The file a JSON merge writes: ``rel`` itself, or -- when it is a symlink -- the file it points to,
    so the link stays a link. A link leading outside the target is refused."""
    dest = safe_dest(root, rel)
    if not dest.is_symlink():
        return dest
    real = Path(os.path.realpath(dest))
    if os.path.commonpath([str(real), os.path.realpath(root)]) != os.path.realpath(root):
        raise InstallError(f"{dest} is a symlink to {real}, outside {root}; refusing to write through it "
                           "(replace the link with a copy, or install into the checkout it points to)")
    return real


def json_layout(text: str) -> tuple[str | int | None, bool]:
    """(indent, trailing newline) of a JSON object file as the user wrote it: the first member line's
    leading whitespace (None for a one-line file)."""
    for line in text.splitlines()[1:]:
        stripped = line.lstrip(" \t")
        if stripped:
            lead = line[: len(line) - len(stripped)]
            return (len(lead) if lead and set(lead) == {" "} else lead or None), text.endswith("\n")
    return None, text.endswith("\n")


def dump_json(value: dict, indent: str | int | None, newline: bool) -> bytes:
    """``value`` as JSON bytes in the layout :func:`json_layout` read."""
    text = json.dumps(value, indent=indent, ensure_ascii=False, separators=None if indent is not None else (", ", ": "))
    return (text + ("\n" if newline else "")).encode()


def writable(folder: Path, probe: bool = True) -> bool:
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


def remove_pycache(folder: Path) -> None:
    """Delete ``folder/__pycache__`` when it holds only compiled Python files (``*.pyc``)."""
    cache = folder / "__pycache__"
    if cache.is_dir() and not cache.is_symlink():
        entries = list(cache.iterdir())
        if all(e.is_file() and not e.is_symlink() and e.suffix in (".pyc", ".pyo") for e in entries):
            for e in entries:
                e.unlink()
            cache.rmdir()
