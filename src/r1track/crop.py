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
window's last row and keeps only the window's pixels; :mod:`r1track.decoding`), :func:`render_crop` (cut, pad,
resize). :func:`crop_square` chains the three.

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
from typing import Sequence

import numpy as np
from PIL import Image

from .boxes import BoxXYWH, BoxXYXY, xywh_to_xyxy, xyxy_to_xywh
from .decoding import DecodedImage, DecodeMode, decoded_span, load_image, load_region
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


def load_for_window(source: ImageSource, window: CropWindow, *,
                    decode: DecodeMode | str = DecodeMode.EXACT) -> DecodedImage:
    """Decode what :func:`render_crop` needs for ``window`` (:func:`r1track.decoding.load_region`): for a JPEG the
    decode stops at the window's last row and only the frame's pixels inside the window are kept; they are the
    same as a full decode's. ``decode``: :class:`DecodeMode`; with ``FAST`` a JPEG is also decoded at the
    coarsest DCT scale that keeps one decoded pixel per crop pixel (as :func:`load_image` with ``min_scale``).
    Errors as :func:`load_image`."""
    fast = DecodeMode.parse(decode) is DecodeMode.FAST
    min_scale = window.out_side / window.side if fast else 1.0
    return load_region(source, window.transform.window_xyxy_orig(), min_scale=min_scale)


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
    ``decoded`` is a partial decode (:func:`load_for_window` of another window) that lacks pixels this window
    needs."""
    r = decoded.reduce
    dx0, dy0, dx1, dy1 = decoded_span(window.transform.window_xyxy_orig(), r)
    if not decoded.covers((dx0, dy0, dx1, dy1)):
        raise ValueError(f"window {window} needs pixels of the frame that were not decoded (kept: "
                         f"{decoded.image.size[0]}x{decoded.image.size[1]} at {decoded.origin}, 1/{r}); decode it with "
                         "load_for_window(image, window) or load_image")
    img = decoded.image
    ox, oy = decoded.origin
    fw, fh = decoded.frame_size
    box = (dx0 - ox, dy0 - oy, dx1 - ox, dy1 - oy)  # in the kept pixels; outside them lies only what is outside the frame
    inside = dx0 >= 0 and dy0 >= 0 and dx1 <= fw and dy1 <= fh
    if inside and box == (0, 0, *img.size):
        cut = img  # exactly the pixels kept: resized below, or copied
    elif inside or tuple(fill) == (0, 0, 0):
        cut = img.crop(box)  # PIL pads outside the image with zeros (black)
    else:
        cut = Image.new("RGB", (dx1 - dx0, dy1 - dy0), tuple(int(c) for c in fill))
        ix0, iy0 = max(dx0, 0), max(dy0, 0)
        ix1, iy1 = min(dx1, fw), min(dy1, fh)
        if ix1 > ix0 and iy1 > iy0:
            cut.paste(img.crop((ix0 - ox, iy0 - oy, ix1 - ox, iy1 - oy)), (ix0 - dx0, iy0 - dy0))
    # the window inside the cut, in decoded pixels (whole pixels when r == 1)
    sub = (window.x0 / r - dx0, window.y0 / r - dy0, (window.x0 + window.side) / r - dx0,
           (window.y0 + window.side) / r - dy0)
    out = window.out_side
    if cut.size != (out, out) or sub != (0, 0, out, out):
        cut = cut.resize((out, out), resample, box=sub if sub != (0, 0, *cut.size) else None)
    elif cut is img:
        cut = img.copy()  # the crop never shares its pixels with ``decoded``
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
