"""The square context crop used everywhere (training data, tracker, oracle) and its exact transform.

A crop is a square window of the original image, ``side`` original pixels wide, centred on the
target (plus optional jitter), resized to ``out_side x out_side`` crop pixels. Where the window
leaves the image it is padded with a fill colour (default black, as the reference R1-Track data
was made). Boxes map between the two frames with

    x_crop = (x_orig - x0) * out_side / side        x_orig = x_crop * side / out_side + x0

which is exact for continuous pixel coordinates (pixel i covers [i, i + 1)) because the resize maps
the window ``[x0, x0 + side)`` onto ``[0, out_side)``.

Steps, usable on their own: :func:`plan_window` (pure geometry), :func:`load_image` (decode, optionally
with JPEG DCT downscaling) or :func:`load_for_window` (decode what a window needs: a JPEG's decode stops at the
window's last row), :func:`render_crop` (cut, pad, resize). :func:`crop_square` chains the three.

Decoding (:class:`DecodeMode`) is **exact** by default: every frame is decoded at full resolution and the
window goes through one resize, so a frame gives bit-identical crops whether it arrives as a path, a PIL image
(lazy or loaded) or an RGB array. ``DecodeMode.FAST`` decodes a JPEG at the coarsest DCT scale (1/2, 1/4,
1/8) that still gives one decoded pixel per crop pixel: the same window, less CPU for large windows, but
slightly different pixels than a full decode (arrays, already decoded, are unaffected).
"""

from __future__ import annotations

import io
import math
import os
import random
import threading
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .boxes import BoxXYWH, BoxXYXY, xywh_to_xyxy, xyxy_to_xywh
from .images import MAX_FRAME_PIXELS, ImageSource
from .qwen import check_crop_side

__all__ = [
    "MAX_FRAME_PIXELS",
    "DecodeMode",
    "CropJitter",
    "CropWindow",
    "CropTransform",
    "DecodedImage",
    "Crop",
    "plan_window",
    "centred_window",
    "load_image",
    "load_for_window",
    "render_crop",
    "crop_square",
    "encode_jpeg",
]


class DecodeMode(str, Enum):
    """How a frame file (or a lazily opened PIL image) is decoded for a crop.

    * ``EXACT`` (``"exact"``, the default everywhere): full resolution; a JPEG's decode stops below the
      window's last row, which changes no pixel. A frame gives bit-identical crops as a path, a PIL image or
      an array.
    * ``FAST`` (``"fast"``): a JPEG is decoded at the coarsest DCT scale (1/2, 1/4, 1/8) that keeps at least
      one decoded pixel per crop pixel (libjpeg's scaled IDCT), then the window is resized from that. Less
      client CPU for windows over twice the crop side; the window is the same, the pixels are not those of a
      full decode (a DCT-scaled decode is not a resize of the full one), so a path and an array of the same
      frame can give different crops, and a model different answers.
    """

    EXACT = "exact"
    FAST = "fast"

    @classmethod
    def parse(cls, value: "DecodeMode | str") -> "DecodeMode":
        """The mode named ``value``; ValueError naming the modes for anything else."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"decode mode must be one of {', '.join(m.value for m in cls)}, got {value!r}") from None


@dataclass(frozen=True)
class CropJitter:
    """Training-time perturbation of a crop window.

    ``center``: the window centre moves by U(-center, center) * side on each axis (R1-Track: 0.2).
    ``scale``: the window side is multiplied by exp(U(log lo, log hi)) (1, 1 = no scale jitter).
    """

    center: float = 0.0
    scale: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        lo, hi = self.scale
        if not (self.center >= 0 and 0 < lo <= hi and math.isfinite(hi)):
            raise ValueError(f"invalid CropJitter: center={self.center}, scale={self.scale}")


@dataclass(frozen=True)
class CropTransform:
    """Maps boxes between the original-image frame and one crop frame.

    ``x0, y0``: top-left of the crop window in original pixels (may be negative or past the image);
    ``side``: window side in original pixels; ``out_side``: crop side in crop pixels.
    """

    x0: float
    y0: float
    side: float
    out_side: int

    @property
    def scale(self) -> float:
        """Crop pixels per original pixel."""
        return self.out_side / self.side

    def window_xyxy_orig(self) -> BoxXYXY:
        """The crop window in original pixels."""
        return BoxXYXY(self.x0, self.y0, self.x0 + self.side, self.y0 + self.side)

    def xyxy_orig_to_crop(self, box_xyxy_orig: Sequence[float]) -> BoxXYXY:
        x1, y1, x2, y2 = box_xyxy_orig
        s = self.scale
        return BoxXYXY((x1 - self.x0) * s, (y1 - self.y0) * s, (x2 - self.x0) * s, (y2 - self.y0) * s)

    def xyxy_crop_to_orig(self, box_xyxy_crop: Sequence[float]) -> BoxXYXY:
        x1, y1, x2, y2 = box_xyxy_crop
        k = self.side / self.out_side
        return BoxXYXY(x1 * k + self.x0, y1 * k + self.y0, x2 * k + self.x0, y2 * k + self.y0)

    def xywh_orig_to_crop(self, box_xywh_orig: Sequence[float]) -> BoxXYWH:
        return xyxy_to_xywh(self.xyxy_orig_to_crop(xywh_to_xyxy(box_xywh_orig)))

    def xywh_crop_to_orig(self, box_xywh_crop: Sequence[float]) -> BoxXYWH:
        return xyxy_to_xywh(self.xyxy_crop_to_orig(xywh_to_xyxy(box_xywh_crop)))


@dataclass(frozen=True)
class CropWindow:
    """A planned crop: integer window (x0, y0, side) in original pixels and the output side."""

    x0: int
    y0: int
    side: int
    out_side: int

    @property
    def transform(self) -> CropTransform:
        return CropTransform(float(self.x0), float(self.y0), float(self.side), self.out_side)


def plan_window(
    box_xywh_orig: Sequence[float],
    factor: float,
    out_side: int,
    *,
    jitter: CropJitter | None = None,
    rng: random.Random | np.random.Generator | None = None,
    check_side: bool = True,
) -> CropWindow:
    """Window of side ``ceil(sqrt(w * h) * factor)`` centred on the target (R1-Track / OSTrack
    rule), top-left rounded to whole pixels. With ``jitter`` the centre and side are perturbed using
    ``rng`` (required then; pass a seeded one for reproducible data).

    Raises ValueError for a non-finite or zero-area box, a non-positive factor, or an ``out_side``
    that is not a multiple of 28 (Qwen2.5-VL's rule; pass ``check_side=False`` when the side was checked
    against another model family, as ``TrackerParams`` and the data builder do).
    """
    if check_side:
        check_crop_side(out_side)
    x, y, w, h = (float(v) for v in box_xywh_orig)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise ValueError(f"target box must be finite, got {tuple(box_xywh_orig)!r}")
    if w <= 0 or h <= 0:
        raise ValueError(f"target box has zero or negative size: w={w}, h={h}")
    if not (factor > 0 and math.isfinite(factor)):
        raise ValueError(f"area factor must be positive and finite, got {factor}")
    side_f = math.sqrt(w * h) * factor
    cx, cy = x + 0.5 * w, y + 0.5 * h
    if jitter is not None:
        if rng is None:
            raise ValueError("jitter needs an rng (random.Random or numpy Generator)")
        uniform = rng.uniform
        lo, hi = jitter.scale
        side_f *= math.exp(uniform(math.log(lo), math.log(hi))) if hi > lo else lo
        cx += uniform(-jitter.center, jitter.center) * side_f
        cy += uniform(-jitter.center, jitter.center) * side_f
    return centred_window(cx, cy, side_f, out_side)


def centred_window(cx: float, cy: float, side_f: float, out_side: int) -> CropWindow:
    """The window of side ``ceil(side_f)`` (at least 1) original pixels centred on (``cx``, ``cy``) (original
    pixels), top-left rounded to whole pixels: the rule of :func:`plan_window`, for a centre and side chosen
    elsewhere (the motion-aware search windows of :mod:`r1track.window`). ValueError for a non-finite centre or
    side, or a side that is not positive."""
    if not (math.isfinite(cx) and math.isfinite(cy) and math.isfinite(side_f) and side_f > 0):
        raise ValueError(f"window centre and side must be finite (side > 0), got ({cx}, {cy}), {side_f}")
    side = max(1, math.ceil(side_f))
    return CropWindow(x0=round(cx - 0.5 * side), y0=round(cy - 0.5 * side), side=side, out_side=out_side)


@dataclass(frozen=True)
class DecodedImage:
    """An RGB PIL image decoded at 1/``reduce`` of the original resolution (JPEG DCT scaling).
    ``orig_size`` = (width, height) of the original image. After :func:`load_for_window` the image may
    hold only the top rows, the ones its window needs (see :attr:`complete`)."""

    image: Image.Image
    reduce: int
    orig_size: tuple[int, int]

    @property
    def complete(self) -> bool:
        """Whether every row of the frame was decoded (a DCT-scaled frame has ceil(H / reduce) rows)."""
        return self.image.size[1] >= math.ceil(self.orig_size[1] / self.reduce)


def _decoded_span(window: CropWindow, reduce: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the whole decoded pixels (of an image decoded at 1/``reduce``) that cover
    ``window``; the window itself lies at ``window.x0 / reduce`` ... inside them."""
    r = reduce
    return (math.floor(window.x0 / r), math.floor(window.y0 / r),
            math.ceil((window.x0 + window.side) / r), math.ceil((window.y0 + window.side) / r))


def load_image(source: ImageSource, *, min_scale: float = 1.0) -> DecodedImage:
    """Decode ``source`` as RGB. For a JPEG file or a not-yet-loaded JPEG PIL image, decode at the
    coarsest of 1, 1/2, 1/4, 1/8 resolution that still gives at least ``min_scale`` decoded pixels
    per original pixel (crop output side / window side): the crop then needs no more detail than
    what is decoded. Arrays must be H x W x 3 uint8 RGB. Raises ValueError on anything else, naming
    the file for paths -- also, before decoding, for an image over :data:`MAX_FRAME_PIXELS`."""
    return _load(source, min_scale, None)


def load_for_window(source: ImageSource, window: CropWindow, *,
                    decode: DecodeMode | str = DecodeMode.EXACT) -> DecodedImage:
    """Decode what :func:`render_crop` needs for ``window``: for a JPEG whose window ends above the image's
    bottom, only the rows down to the window's last one (libjpeg decodes top to bottom, so the rows below
    are never touched; the rows decoded are the same as a full decode's). ``decode``: :class:`DecodeMode`;
    with ``FAST`` a JPEG is also decoded at the coarsest DCT scale that keeps one decoded pixel per crop
    pixel (as :func:`load_image` with ``min_scale``). Errors as :func:`load_image`."""
    fast = DecodeMode.parse(decode) is DecodeMode.FAST
    return _load(source, window.out_side / window.side if fast else 1.0, window)


# Written into the last row a partial decode must produce; still there afterwards means the
# decoder stopped early (a broken stream): the full decode then runs and reports the error.
_SENTINEL = (1, 254, 3)


def _decode_top_rows(img: Image.Image, rows: int) -> Image.Image | None:
    """The top ``rows`` rows of a lazy (not yet loaded) RGB JPEG, decoded by Pillow's own libjpeg
    decoder told to stop there; None when that is not possible (not a plain single-tile RGB JPEG,
    a Pillow without the decoder hooks used, a truncated or broken stream), so the caller falls back
    to the full decode, which raises the proper error."""
    tile = getattr(img, "tile", None)
    fp = getattr(img, "fp", None)
    if img.mode != "RGB" or not tile or len(tile) != 1 or fp is None:
        return None
    codec, extents, offset, args = tuple(tile[0])[:4]
    width, height = img.size
    if codec != "jpeg" or tuple(extents) != (0, 0, width, height) or not 0 < rows < height:
        return None
    try:
        out = Image.new("RGB", (width, rows), None)  # every row is written by the decoder
        out.paste(_SENTINEL, (0, rows - 1, width, rows))
        decoder = Image._getdecoder(img.mode, codec, args, getattr(img, "decoderconfig", ()))
        decoder.setimage(out.im, (0, 0, width, rows))
        fp.seek(offset)
        data = fp.read()
        try:
            consumed, err = decoder.decode(data)
        finally:
            decoder.cleanup()
    except (AttributeError, TypeError, ValueError, OSError):
        return None
    # stopping before the last row ends in libjpeg's "too few scanlines" error (-2): expected, as
    # long as the last wanted row was written; consumed >= 0 means the data ran out (truncated file)
    if consumed >= 0 or err not in (0, -2):
        return None
    last = out.crop((0, rows - 1, width, rows)).getextrema()
    if all(lo == hi == s for (lo, hi), s in zip(last, _SENTINEL)):
        return None
    return out


def _load(source: ImageSource, min_scale: float, window: CropWindow | None) -> DecodedImage:
    if isinstance(source, np.ndarray):
        if source.ndim != 3 or source.shape[2] != 3 or source.dtype != np.uint8:
            raise ValueError(f"image array must be H x W x 3 uint8 RGB, got {source.shape} {source.dtype}")
        img = Image.fromarray(source)
        return DecodedImage(img, 1, img.size)
    path = None
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            source = Image.open(path)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise ValueError(f"{path}: cannot open image: {exc}") from exc
    if not isinstance(source, Image.Image):
        raise ValueError(f"unsupported image source: {type(source).__name__}")
    img = source
    orig_size = img.size
    if orig_size[0] * orig_size[1] > MAX_FRAME_PIXELS and getattr(img, "tile", None):
        if path is not None:
            img.close()
        where = f"{path}: " if path else ""
        raise ValueError(f"{where}{orig_size[0]}x{orig_size[1]} pixels, more than {MAX_FRAME_PIXELS} "
                         "(decompression-bomb limit); not decoded")
    reduce = 1
    try:
        lazy_jpeg = getattr(img, "format", None) == "JPEG" and bool(getattr(img, "tile", None))
        if lazy_jpeg and min_scale < 1.0:
            # tile is non-empty until the image is loaded: only then can the decoder still be told to downscale
            want = (max(1, math.ceil(img.size[0] * min_scale)), max(1, math.ceil(img.size[1] * min_scale)))
            img.draft("RGB", want)
            reduce = int(getattr(img, "decoderconfig", (1,))[0] or 1) if img.size != orig_size else 1
        if lazy_jpeg and window is not None:
            rows = max(_decoded_span(window, reduce)[3], 1)
            if rows < img.size[1]:
                top = _decode_top_rows(img, rows)
                if top is not None:
                    if path is not None:
                        img.close()
                    return DecodedImage(top, reduce, orig_size)
        if img.mode != "RGB":
            img = img.convert("RGB")
        else:
            img.load()
    except (OSError, ValueError, SyntaxError) as exc:
        where = f"{path}: " if path else ""
        raise ValueError(f"{where}cannot decode image: {exc}") from exc
    return DecodedImage(img, reduce, orig_size)


@dataclass(frozen=True)
class Crop:
    """A square crop (RGB PIL image, ``out_side`` pixels) and its transform to/from the original."""

    image: Image.Image
    transform: CropTransform

    def array(self) -> np.ndarray:
        """The crop as an H x W x 3 uint8 RGB array."""
        return np.asarray(self.image)


def render_crop(
    decoded: DecodedImage,
    window: CropWindow,
    *,
    fill: tuple[int, int, int] = (0, 0, 0),
    resample: int = Image.Resampling.BILINEAR,
) -> Crop:
    """Cut ``window`` out of ``decoded`` (padding with ``fill`` outside the image) and resize it to
    ``window.out_side``. The window is always exactly ``window`` (its transform is
    ``window.transform``) however the image was decoded: from a reduced decode (1/``reduce``) the
    window's edges fall between decoded pixels and the resize samples it there, so a frame gives the
    same window whether it arrives as a path, a PIL image or an array. Raises ValueError when
    ``decoded`` is a partial decode (:func:`load_for_window`) that stops above the window's last row."""
    r = decoded.reduce
    dx0, dy0, dx1, dy1 = _decoded_span(window, r)
    img = decoded.image
    if not decoded.complete and dy1 > img.size[1]:
        raise ValueError(f"window {window} needs rows below the {img.size[1]} decoded at 1/{r}; decode it with "
                         "load_for_window(image, window) or load_image")
    box = (dx0, dy0, dx1, dy1)
    inside = dx0 >= 0 and dy0 >= 0 and dx1 <= img.size[0] and dy1 <= img.size[1]
    if inside or tuple(fill) == (0, 0, 0):
        cut = img.crop(box)  # PIL pads outside the image with zeros (black)
    else:
        cut = Image.new("RGB", (dx1 - dx0, dy1 - dy0), tuple(int(c) for c in fill))
        ix0, iy0 = max(dx0, 0), max(dy0, 0)
        ix1, iy1 = min(dx1, img.size[0]), min(dy1, img.size[1])
        if ix1 > ix0 and iy1 > iy0:
            cut.paste(img.crop((ix0, iy0, ix1, iy1)), (ix0 - dx0, iy0 - dy0))
    # the window inside the cut, in decoded pixels (whole pixels when r == 1)
    sub = (window.x0 / r - dx0, window.y0 / r - dy0, (window.x0 + window.side) / r - dx0,
           (window.y0 + window.side) / r - dy0)
    out = window.out_side
    if cut.size != (out, out) or sub != (0, 0, out, out):
        cut = cut.resize((out, out), resample, box=sub if sub != (0, 0, *cut.size) else None)
    return Crop(cut, window.transform)


def crop_square(
    image: ImageSource,
    box_xywh_orig: Sequence[float],
    factor: float,
    out_side: int,
    *,
    fill: tuple[int, int, int] = (0, 0, 0),
    jitter: CropJitter | None = None,
    rng: random.Random | np.random.Generator | None = None,
    resample: int = Image.Resampling.BILINEAR,
    decode: DecodeMode | str = DecodeMode.EXACT,
) -> Crop:
    """Square context crop around ``box_xywh_orig`` (original pixels): window side
    ``ceil(sqrt(w*h) * factor)``, output ``out_side`` px (a multiple of 28), padded with ``fill``;
    ``decode``: :class:`DecodeMode` (exact by default).
    See :func:`plan_window`, :func:`load_for_window`, :func:`render_crop` for the rules and errors."""
    window = plan_window(box_xywh_orig, factor, out_side, jitter=jitter, rng=rng)
    decoded = load_for_window(image, window, decode=decode)
    return render_crop(decoded, window, fill=fill, resample=resample)


class _MemFile:
    """A Linux in-memory file (``memfd``) that Pillow's encoder writes into by descriptor: just what
    ``Image.save`` uses of a file object (``fileno``, ``flush``, ``write``). Closed, without a warning, when its
    thread's locals go."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def flush(self) -> None:
        pass

    def write(self, data: bytes) -> int:
        return os.write(self.fd, data)

    def __del__(self) -> None:
        try:
            os.close(self.fd)
        except Exception:  # interpreter shutdown
            pass


_SINKS = threading.local()


def _jpeg_sink() -> _MemFile | None:
    """This thread's in-memory file for the JPEG encoder, or None where the system has none."""
    sink = getattr(_SINKS, "file", None)
    if sink is not None and _SINKS.pid == os.getpid():
        return sink
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is None or not hasattr(os, "pread"):
        return None
    try:
        sink = _MemFile(memfd_create("r1track-jpeg", getattr(os, "MFD_CLOEXEC", 0)))
    except OSError:
        return None
    _SINKS.file, _SINKS.pid = sink, os.getpid()  # after a fork the inherited one is the parent's: a new one
    return sink


def encode_jpeg(image: Image.Image, quality: int = 95) -> bytes:
    """Baseline JPEG bytes of an RGB image (no EXIF, no timestamps, not optimised): the same pixels and
    quality always give the same bytes, which reproducible training sets and vLLM's caches rely on.

    Where the system has in-memory files (Linux ``memfd_create``) the encoder writes into one per thread, so
    Pillow encodes with the GIL released (its ``encode_to_file`` path; writing into a ``BytesIO`` holds the
    GIL for the whole encode, which made JPEG encoding the largest share of the GIL time per frame in
    ``r1track eval``: the event loop and the other decoding threads waited on it). The bytes are the same
    either way (the same libjpeg calls; only where the output goes differs). As with any Pillow ``save``, one
    image object must not be encoded by two threads at once (Pillow keeps the save options on the image)."""
    options = dict(format="JPEG", quality=quality, optimize=False, progressive=False)
    sink = _jpeg_sink()
    if sink is None:
        buf = io.BytesIO()
        image.save(buf, **options)
        return buf.getvalue()
    os.lseek(sink.fd, 0, os.SEEK_SET)
    os.ftruncate(sink.fd, 0)
    image.save(sink, **options)  # type: ignore[arg-type]
    return os.pread(sink.fd, os.lseek(sink.fd, 0, os.SEEK_CUR), 0)
