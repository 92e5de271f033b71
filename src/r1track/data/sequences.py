"""One in-memory form for an annotated tracking sequence, and the low-level file readers every
dataset reader shares (frame listing, ground-truth and label files).

All boxes are 0-based continuous ``xywh`` in original-image pixels (see docs/conventions.md).
Malformed files raise :class:`DatasetError` naming the file and the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "IMAGE_EXTENSIONS",
    "DatasetError",
    "Sequence",
    "list_frames",
    "frame_number",
    "read_boxes_file",
    "read_label_file",
    "read_text_file",
    "GOT10K_LABELS",
    "LASOT_LABELS",
    "VISIBILITY_LABELS",
    "Visibility",
    "read_visibility",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class DatasetError(ValueError):
    """Malformed dataset input; the message names the file (and line when there is one)."""


@dataclass
class Sequence:
    """An annotated sequence.

    ``frames``: image paths in temporal order. ``boxes_xywh_orig``: (N, 4) float64 for the N
    annotated frames (N may be 1 on test splits; NaN rows mark frames without annotation).
    ``visible``: (N,) bool, False where the target is absent/fully occluded/out of view.
    ``cover``: GOT-10k visible eighths (0..8) when the dataset has them. ``image_size``: (W, H) when
    known from metadata. ``text``: a language description (LaSOT ``nlp.txt``). ``labels``: the visibility
    label files ``visible`` was read from (:data:`VISIBILITY_LABELS`; empty when the folder has none), so
    an invisible frame of a labelled sequence is a target that is absent, not a missing annotation.
    """

    name: str
    frames: list[Path]
    boxes_xywh_orig: np.ndarray
    visible: np.ndarray
    dataset: str = "generic"
    cover: np.ndarray | None = None
    image_size: tuple[int, int] | None = None
    text: str | None = None
    meta: dict[str, str] = field(default_factory=dict)
    labels: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def init_box_xywh_orig(self) -> np.ndarray:
        return self.boxes_xywh_orig[0]


_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def read_text_file(path: str | Path, what: str = "file") -> str:
    """The text of an annotation file: UTF-8 (ASCII included), or UTF-8/UTF-16 with a byte-order mark.
    Raises DatasetError naming the file -- and the line and byte for text that is not UTF-8 (a latin-1
    comment, a stray ``\\xff``) -- instead of a bare ``UnicodeDecodeError``; ``what`` names the file's role
    in the message (``ground truth``, ``labels``)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read {what}: {exc.strerror or exc}") from exc
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                raise DatasetError(f"{path}: {what} starts with a {codec} byte-order mark but is not {codec} text") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        byte = data[exc.start : exc.start + 1].hex()
        raise DatasetError(f"{path}:{line}: {what} is not UTF-8 text (byte 0x{byte} at column {col}); "
                           "save it as UTF-8 or ASCII") from None


_NUM_SPLIT = re.compile(r"[,\t ;]+")


def frame_number(path: Path) -> int | None:
    """The last number in a frame's file name (``00000012.jpg`` -> 12, ``img_3.png`` -> 3), or None."""
    digits = re.findall(r"\d+", path.stem)
    return int(digits[-1]) if digits else None


def _frame_key(path: Path) -> tuple[int, str]:
    n = frame_number(path)
    return (-1 if n is None else n, path.name)


def list_frames(folder: str | Path, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> list[Path]:
    """Image files of ``folder`` sorted numerically by the last number in their name (``2.jpg``
    before ``10.jpg``; zero-padded names sort the same). DatasetError if the folder is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: frame folder not found")
    frames = [p for p in folder.iterdir() if p.suffix.lower() in extensions and p.is_file()]
    return sorted(frames, key=_frame_key)


def read_boxes_file(path: str | Path, *, allow_empty: bool = False) -> np.ndarray:
    """Read one box per line, values separated by commas, tabs, spaces or semicolons. 4 values are
    ``x,y,w,h``; 8 values are a polygon (VOT) turned into its enclosing axis-aligned ``xywh``.
    ``NaN`` values are kept (frames without annotation). Blank lines at the end are ignored; any
    other malformed line raises DatasetError naming file and line."""
    path = Path(path)
    text = read_text_file(path, "ground truth")
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    rows = []
    for lineno, line in enumerate(lines, start=1):
        parts = [p for p in _NUM_SPLIT.split(line.strip()) if p]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise DatasetError(f"{path}:{lineno}: expected numbers, got {line.strip()[:80]!r}") from None
        if len(values) == 4:
            rows.append(values)
        elif len(values) == 8:
            xs, ys = values[0::2], values[1::2]
            rows.append([min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)])
        else:
            raise DatasetError(f"{path}:{lineno}: expected 4 values (x,y,w,h) or 8 (polygon), got {len(values)}")
    if not rows and not allow_empty:
        raise DatasetError(f"{path}: no boxes")
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def read_label_file(path: str | Path, *, length: int | None = None) -> np.ndarray:
    """Read integer labels: one per line (GOT-10k ``absence.label``/``cover.label``) or one
    comma-separated row (LaSOT ``full_occlusion.txt``). DatasetError naming file and line on a
    non-integer value, or when ``length`` is given and does not match."""
    path = Path(path)
    text = read_text_file(path, "labels")
    values = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        for part in (p for p in _NUM_SPLIT.split(line.strip()) if p):
            try:
                values.append(int(float(part)))
            except ValueError:
                raise DatasetError(f"{path}:{lineno}: expected an integer label, got {part[:40]!r}") from None
    arr = np.asarray(values, dtype=np.int64)
    if length is not None and len(arr) != length:
        raise DatasetError(f"{path}: {len(arr)} labels for {length} frames")
    return arr


GOT10K_LABELS = ("absence.label", "cover.label")
"""GOT-10k's visibility labels, one integer per frame: ``absence.label`` 1 = the target is absent;
``cover.label`` 0..8 = visible eighths of the target (0 = fully covered)."""

LASOT_LABELS = ("full_occlusion.txt", "out_of_view.txt")
"""LaSOT's visibility labels, one comma-separated row: 1 = fully occluded / out of view."""

VISIBILITY_LABELS = GOT10K_LABELS + LASOT_LABELS
"""Every visibility label file a sequence folder may hold, whatever its dataset's layout."""


@dataclass(frozen=True)
class Visibility:
    """What a sequence folder's label files say. ``visible``: (N,) bool, True where no label marks the target
    absent, fully covered, fully occluded or out of view (all True without label files). ``cover``: the
    ``cover.label`` values (None without it). ``files``: the label files read, in :data:`VISIBILITY_LABELS`
    order."""

    visible: np.ndarray
    cover: np.ndarray | None
    files: tuple[str, ...]


def read_visibility(folder: str | Path, n: int) -> Visibility:
    """The visibility labels of the sequence in ``folder`` (``n`` ground-truth rows), from whichever of
    :data:`VISIBILITY_LABELS` it holds -- every reader calls this, so a GOT-10k sequence read through another
    layout's reader keeps its ``absence.label`` / ``cover.label`` (and a LaSOT one its occlusion labels).
    visible = ``absence`` 0, ``cover`` > 0, ``full_occlusion`` 0 and ``out_of_view`` 0. A label file whose
    length differs from ``n`` is malformed input: DatasetError naming it."""
    folder = Path(folder)
    visible = np.ones(n, dtype=bool)
    cover = None
    files = []
    for name in VISIBILITY_LABELS:
        path = folder / name
        if not path.is_file():
            continue
        values = read_label_file(path, length=n)
        files.append(name)
        if name == "cover.label":
            cover = values
            visible &= values > 0
        else:
            visible &= values == 0
    return Visibility(visible, cover, tuple(files))
