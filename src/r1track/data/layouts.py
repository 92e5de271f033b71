"""Which dataset layout a folder has: each layout's signature, auto-detection, and the check every reader makes
before it reads.

A folder read with the wrong reader would lose what only its own reader knows (a GOT-10k split read as LaSOT
would lose which frames are absent), so each reader first calls :func:`check_layout`: it refuses a folder that
lacks its layout's signature, and one that carries a more specific layout's, naming that layout.

Signatures, most specific first (``strong`` ones decide auto-detection; a ``weak`` one only lets an explicit
choice through):

============ ============================================================================= ========
layout       signature                                                                     strength
============ ============================================================================= ========
trackingnet  ``anno/`` and ``frames/`` in the folder (one chunk) or in ``TRAIN_<k>`` / ``TEST`` strong
             sub-folders
got10k       a split folder -- ``list.txt`` naming sequence folders -- whose sequences hold strong
             GOT-10k files (``absence.label``, ``cover.label``, ``cut_by_image.label``,
             ``meta_info.ini``) or carry GOT-10k names (``GOT-10k_Val_000001``); or a folder
             holding such ``train`` / ``val`` / ``test`` split folders
got10k       a ``list.txt`` naming sequence folders that have none of the above (an           weak
             OTB-style folder with a list)
lasot        sequence folders with LaSOT's labels (``full_occlusion.txt``, ``out_of_view.txt``)  strong
             or nested as LaSOT nests them: ``<class>/<class>-<n>/groundtruth.txt``
lasot        flattened ``<class>-<n>/groundtruth.txt`` folders without labels                weak
generic      sequence folders with ``groundtruth.txt`` or ``groundtruth_rect.txt``, or one    weak
             such folder (OTB style)
============ ============================================================================= ========

Only a few sequence folders are looked at (:data:`SAMPLE`, the first ones in name or list order), so detection
stays instant on a 10 000-sequence split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from .sequences import GOT10K_LABELS, LASOT_LABELS, DatasetError, read_text_file

__all__ = [
    "Layout",
    "LAYOUTS",
    "Evidence",
    "LayoutMismatch",
    "GT_NAMES",
    "GOT10K_FILES",
    "GOT10K_SPLITS",
    "SAMPLE",
    "layout_evidence",
    "detect_kind",
    "check_layout",
    "describe_layout",
]


class Layout(str, Enum):
    """The dataset layouts r1track reads, most specific first."""

    TRACKINGNET = "trackingnet"
    GOT10K = "got10k"
    LASOT = "lasot"
    GENERIC = "generic"


LAYOUTS: tuple[str, ...] = tuple(k.value for k in Layout)
"""Layout names, most specific first."""

GT_NAMES = ("groundtruth.txt", "groundtruth_rect.txt")
"""Ground-truth file names of a generic (OTB-style) sequence folder."""

GOT10K_FILES = GOT10K_LABELS + ("cut_by_image.label", "meta_info.ini")
"""Files only a GOT-10k sequence folder holds."""

GOT10K_SPLITS = ("train", "val", "test")

_GOT10K_NAME = re.compile(r"^GOT-10k_(Train|Val|Test)_\d+$")
_LASOT_NAME = re.compile(r"^(?P<cls>.+)-\d+$")

SAMPLE = 5
"""Sequence folders examined per folder (the first in name or list order)."""

_LABELS = {
    Layout.TRACKINGNET: "TrackingNet data",
    Layout.GOT10K: "GOT-10k data",
    Layout.LASOT: "LaSOT data",
    Layout.GENERIC: "an OTB-style (generic) folder",
}

_EXPECTED = {
    Layout.TRACKINGNET: "anno/ and frames/ here or in TRAIN_<k> folders",
    Layout.GOT10K: "list.txt naming sequence folders, here or in train/ val/ test/",
    Layout.LASOT: "<class>/<class>-<n>/groundtruth.txt folders, or sequence folders with full_occlusion.txt",
    Layout.GENERIC: f"sequence folders with {' or '.join(GT_NAMES)}, or one such folder",
}


def describe_layout(kind: str | Layout) -> str:
    """``a GOT-10k split``, ``an OTB-style (generic) folder``, ..."""
    return _LABELS[Layout(kind)]


@dataclass(frozen=True)
class Evidence:
    """A layout's signature found in a folder: ``kind``, ``what`` was seen (for messages), and whether it is
    ``strong`` enough to decide auto-detection (see the module docstring)."""

    kind: Layout
    what: str
    strong: bool


class LayoutMismatch(DatasetError):
    """A folder read as one layout has another's signature (``found``: that layout, None when it has none
    at all). The message names both and says which layout to read it as."""

    def __init__(self, root: Path, asked: Layout, found: Evidence | None):
        self.root, self.asked, self.found = root, asked, found
        if found is None:
            msg = (f"{root} does not look like {describe_layout(asked)} (expected {_EXPECTED[asked]}), nor like any "
                   f"layout r1track reads ({', '.join(LAYOUTS)})")
        elif found.kind is asked:  # a weaker signature of the asked layout only: cannot happen from check_layout
            msg = f"{root} does not look like {describe_layout(asked)}"
        else:
            msg = (f"{root} looks like {describe_layout(found.kind)} ({found.what}), not {describe_layout(asked)}: "
                   f"read it as {found.kind.value}")
        super().__init__(msg)

    @property
    def suggestion(self) -> str | None:
        """The layout to read the folder as, or None."""
        return self.found.kind.value if self.found is not None and self.found.kind is not self.asked else None


def _subdirs(folder: Path) -> list[Path]:
    try:
        return sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.name)
    except OSError:
        return []


def _has_gt(folder: Path) -> bool:
    return any((folder / g).is_file() for g in GT_NAMES)


def _listed(split_dir: Path) -> list[Path]:
    """The first :data:`SAMPLE` existing folders named in ``split_dir/list.txt``."""
    try:
        names = [ln.strip() for ln in read_text_file(split_dir / "list.txt", "sequence list").splitlines() if ln.strip()]
    except DatasetError:
        return []
    return [split_dir / n for n in names if (split_dir / n).is_dir()][:SAMPLE]


def _got10k_split(split_dir: Path) -> Evidence | None:
    if not (split_dir / "list.txt").is_file():
        return None
    seqs = _listed(split_dir)
    files = sorted({f for s in seqs for f in GOT10K_FILES if (s / f).is_file()}, key=GOT10K_FILES.index)
    if files:
        return Evidence(Layout.GOT10K, f"list.txt, and {', '.join(files)} in its sequence folders", True)
    if seqs and all(_GOT10K_NAME.match(s.name) for s in seqs):
        return Evidence(Layout.GOT10K, f"list.txt naming GOT-10k sequences ({seqs[0].name})", True)
    return Evidence(Layout.GOT10K, "list.txt, but no GOT-10k label files in its sequence folders", False)


def _got10k(root: Path) -> Evidence | None:
    own = _got10k_split(root)
    if own is not None:
        return own
    splits = [(s, _got10k_split(root / s)) for s in GOT10K_SPLITS]
    found = [(s, e) for s, e in splits if e is not None]
    strong = [(s, e) for s, e in found if e.strong]
    if strong:
        s, e = strong[0]
        return Evidence(Layout.GOT10K, f"{s}/{e.what}", True)
    if found:
        s, e = found[0]
        return Evidence(Layout.GOT10K, f"{s}/{e.what}", False)
    return None


def _trackingnet(root: Path, subdirs: list[Path]) -> Evidence | None:
    if (root / "anno").is_dir() and (root / "frames").is_dir():
        return Evidence(Layout.TRACKINGNET, "anno/ and frames/", True)
    chunks = [p.name for p in subdirs if (p.name.upper().startswith("TRAIN_") or p.name.upper() == "TEST")
              and (p / "anno").is_dir()]
    if chunks:
        return Evidence(Layout.TRACKINGNET, f"chunk folders {', '.join(chunks[:3])} with anno/", True)
    return None


def _lasot(subdirs: list[Path]) -> Evidence | None:
    weak = None
    for p in subdirs[: 4 * SAMPLE]:
        if any((p / f).is_file() for f in LASOT_LABELS):
            return Evidence(Layout.LASOT, f"{p.name}/ holds {' or '.join(LASOT_LABELS)}", True)
        m = _LASOT_NAME.match(p.name)
        if m and _has_gt(p) and weak is None:
            weak = Evidence(Layout.LASOT, f"sequence folders named <class>-<n> ({p.name})", False)
        for q in _subdirs(p)[:SAMPLE] if not _has_gt(p) else []:
            if any((q / f).is_file() for f in LASOT_LABELS):
                return Evidence(Layout.LASOT, f"{p.name}/{q.name}/ holds {' or '.join(LASOT_LABELS)}", True)
            mq = _LASOT_NAME.match(q.name)
            if mq and mq.group("cls") == p.name and (q / "groundtruth.txt").is_file():
                return Evidence(Layout.LASOT, f"class folders with <class>-<n> sequences ({p.name}/{q.name})", True)
    return weak


def _generic(root: Path, subdirs: list[Path]) -> Evidence | None:
    if _has_gt(root):
        return Evidence(Layout.GENERIC, f"{next(g for g in GT_NAMES if (root / g).is_file())} (one sequence)", False)
    seqs = _listed(root) if (root / "list.txt").is_file() else []
    for p in seqs or subdirs:
        if _has_gt(p):
            return Evidence(Layout.GENERIC, f"sequence folders with {' or '.join(GT_NAMES)} ({p.name})", False)
    return None


def layout_evidence(root: str | Path) -> list[Evidence]:
    """Every layout signature ``root`` carries, most specific layout first (see the module docstring).
    DatasetError when ``root`` is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    subdirs = _subdirs(root)
    found = [_trackingnet(root, subdirs), _got10k(root), _lasot(subdirs), _generic(root, subdirs)]
    return [e for e in found if e is not None]


def detect_kind(root: str | Path) -> str:
    """The layout of ``root``: the most specific strong signature it carries, else ``generic`` (which the
    generic reader then checks). An OTB-style folder that happens to hold a ``list.txt`` is ``generic``;
    a GOT-10k split (``list.txt`` and GOT-10k's label files) is ``got10k``."""
    strong = [e for e in layout_evidence(root) if e.strong]
    return strong[0].kind.value if strong else Layout.GENERIC.value


def check_layout(root: str | Path, kind: str | Layout) -> None:
    """Refuse to read ``root`` as ``kind`` (:class:`LayoutMismatch`, a DatasetError) when it carries a strong
    signature of a more specific layout (a GOT-10k split asked for as LaSOT or generic), or none of
    ``kind``'s own. A folder whose only signatures are weaker ones of other layouts passes when it has
    ``kind``'s own (an OTB-style folder with a ``list.txt`` may be read as got10k or generic)."""
    root = Path(root)
    asked = Layout(kind)
    evidence = layout_evidence(root)
    own = next((e for e in evidence if e.kind is asked), None)
    order = list(Layout)
    for e in evidence:
        if e.kind is asked:
            break
        if e.strong and order.index(e.kind) < order.index(asked):
            raise LayoutMismatch(root, asked, e)
    if own is None:
        detected = detect_kind(root)
        raise LayoutMismatch(root, asked, next((e for e in evidence if e.kind.value == detected), None))
