"""Frames decoded to RGB pixels: whole, or only the part a crop window needs.

:func:`load_image` decodes a whole frame (a path, a PIL image or an RGB array). :func:`load_region` decodes what
a region of the frame needs and keeps only that: a JPEG's decode stops at the region's last row (libjpeg decodes
top to bottom, so the rows below are never touched), and of the rows decoded only the region's pixels are kept.
The pixels kept are the same as a full decode's (the same libjpeg calls; only where the rows go differs).

Where the rows go: a new image of the rows, or, when many rows are decoded and little of them is kept
(:data:`SCRATCH_MIN_PIXELS`), the thread's scratch image (:func:`_scratch`), out of which the region is copied.
Pillow zero-fills every new image, which on a 1920 x 1080 frame costs more than the copy: a new image of 1000 rows
is 7.7 MB to zero, and the rows decoded into it then miss the CPU caches. Decoding the rows of a 1080p frame into
the scratch took 4.0-4.4 ms against 5.0-5.2 for a new image (the same frame and rows, interleaved), and
``benchmarks/client_overhead.py --decode fast`` went from 5.5-5.6 to 5.2-5.3 ms per frame. The scratch never
leaves this module: what a caller gets is its own copy.

:class:`DecodeMode` names the two decoding rules (exact: full resolution; fast: a JPEG at a reduced DCT scale).
Cropping the decoded pixels is :mod:`r1track.crop`'s.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .images import MAX_FRAME_PIXELS, ImageSource

__all__ = ["DecodeMode", "DecodedImage", "decoded_span", "load_image", "load_region", "SCRATCH_MIN_PIXELS",
           "SCRATCH_MAX_PIXELS"]


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
class DecodedImage:
    """RGB pixels of a frame decoded at 1/``reduce`` of its original resolution (JPEG DCT scaling).

    ``orig_size``: (width, height) of the original frame. ``image`` holds the decoded frame's pixels from
    ``origin`` (x, y in decoded pixels) on: the whole frame after :func:`load_image` (``origin`` (0, 0)), and
    after :func:`load_region` only the part of the frame that region covers (see :attr:`complete`)."""

    image: Image.Image
    reduce: int
    orig_size: tuple[int, int]
    origin: tuple[int, int] = (0, 0)

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) of the whole frame in decoded pixels (a DCT-scaled frame has ceil(W / reduce) x
        ceil(H / reduce))."""
        return math.ceil(self.orig_size[0] / self.reduce), math.ceil(self.orig_size[1] / self.reduce)

    @property
    def complete(self) -> bool:
        """Whether every pixel of the frame was decoded and kept."""
        return self.origin == (0, 0) and self.image.size == self.frame_size

    def covers(self, span: tuple[int, int, int, int]) -> bool:
        """Whether the pixels kept hold every pixel of the frame inside ``span`` (x0, y0, x1, y1; decoded pixels;
        it may reach past the frame): a crop of ``span`` then needs nothing that was left out."""
        fw, fh = self.frame_size
        x0, y0, x1, y1 = max(span[0], 0), max(span[1], 0), min(span[2], fw), min(span[3], fh)
        if x1 <= x0 or y1 <= y0:
            return True  # no pixel of the frame is needed
        ox, oy = self.origin
        return ox <= x0 and oy <= y0 and x1 <= ox + self.image.size[0] and y1 <= oy + self.image.size[1]


def decoded_span(region_xyxy_orig: Sequence[float], reduce: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the whole decoded pixels (of a frame decoded at 1/``reduce``) that cover the region
    ``region_xyxy_orig`` (original pixels, x1 and y1 exclusive; it may reach past the frame)."""
    r = reduce
    x0, y0, x1, y1 = region_xyxy_orig
    return math.floor(x0 / r), math.floor(y0 / r), math.ceil(x1 / r), math.ceil(y1 / r)


def load_image(source: ImageSource, *, min_scale: float = 1.0) -> DecodedImage:
    """Decode ``source`` as RGB. For a JPEG file or a not-yet-loaded JPEG PIL image, decode at the
    coarsest of 1, 1/2, 1/4, 1/8 resolution that still gives at least ``min_scale`` decoded pixels
    per original pixel (crop output side / window side): the crop then needs no more detail than
    what is decoded. Arrays must be H x W x 3 uint8 RGB. Raises ValueError on anything else, naming
    the file for paths -- also, before decoding, for an image over :data:`MAX_FRAME_PIXELS`."""
    return _load(source, min_scale, None)


def load_region(source: ImageSource, region_xyxy_orig: Sequence[float], *,
                min_scale: float = 1.0) -> DecodedImage:
    """Decode what ``region_xyxy_orig`` (original pixels, x1 and y1 exclusive; it may reach past the frame)
    needs, decoding as :func:`load_image` with ``min_scale``. For a plain RGB JPEG (a path or a lazily opened
    PIL image) the decode stops at the region's last row; of a large frame (:data:`SCRATCH_MIN_PIXELS`) only the
    frame's pixels inside the region's :func:`decoded_span` are kept (:attr:`DecodedImage.origin` says where they
    lie), of a smaller one every row down to it. Anything else is decoded whole. The pixels are those of a full
    decode either way. Errors as :func:`load_image`."""
    return _load(source, min_scale, region_xyxy_orig)


SCRATCH_MIN_PIXELS = 1 << 20
"""Fewest pixels (width x rows decoded) for which :func:`load_region` decodes into the thread's scratch image,
when it keeps at most half of them. Below, a new image is cheaper than the copy out of the scratch (its memory
comes back warm from the allocator): measured on 640 x 480 frames, the scratch made decoding 2 % slower; on
1920 x 1080 frames, 2-5 % faster in the fast mode."""

SCRATCH_MAX_PIXELS = 3840 * 2160
"""Most pixels (width x rows decoded) that go through the thread's scratch image (4K UHD: at most 33 MB kept per
decoding thread); more are decoded into a new image, as Pillow does."""

_SCRATCH = threading.local()


def _scratch(width: int, rows: int) -> Image.Image:
    """This thread's scratch image, at least ``width`` x ``rows`` (made, or made larger, when it is not; the caller
    keeps ``width * rows`` within :data:`SCRATCH_MAX_PIXELS`, and so does the scratch)."""
    img = getattr(_SCRATCH, "image", None)
    if img is None or img.size[0] < width or img.size[1] < rows:
        w, h = (max(width, img.size[0]), max(rows, img.size[1])) if img is not None else (width, rows)
        if w * h > SCRATCH_MAX_PIXELS:  # frames of other shapes: just this one's
            w, h = width, rows
        img = _SCRATCH.image = Image.new("RGB", (w, h), None)
    return img


# Written into the last row a partial decode must produce; still there afterwards means the
# decoder stopped early (a broken stream): the full decode then runs and reports the error.
_SENTINEL = (1, 254, 3)


def _decode_rows(img: Image.Image, rows: int, keep: tuple[int, int, int, int] | None) -> Image.Image | None:
    """The top ``rows`` rows of a lazy (not yet loaded) RGB JPEG, decoded by Pillow's own libjpeg decoder told to
    stop there (all of them: a full decode), in a new image; with ``keep`` (x0, y0, x1, y1, inside those rows)
    the rows go into the thread's scratch image and only the pixels ``keep`` are copied out. None when that is
    not possible (not a plain single-tile RGB JPEG, a Pillow without the decoder hooks used, a truncated or
    broken stream), so the caller falls back to the full decode, which raises the proper error."""
    tile = getattr(img, "tile", None)
    fp = getattr(img, "fp", None)
    if img.mode != "RGB" or not tile or len(tile) != 1 or fp is None:
        return None
    codec, extents, offset, args = tuple(tile[0])[:4]
    width, height = img.size
    if codec != "jpeg" or tuple(extents) != (0, 0, width, height) or not 0 < rows <= height:
        return None
    try:
        # every row up to ``rows`` is written by the decoder
        out = Image.new("RGB", (width, rows), None) if keep is None else _scratch(width, rows)
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
    # consumed >= 0: the data ran out (a truncated file). A full decode must end cleanly (err 0, as Pillow's own
    # load requires); stopping before the last row ends in libjpeg's "too few scanlines" error (-2): expected,
    # as long as the last wanted row was written
    if consumed >= 0 or err not in ((0,) if rows == height else (0, -2)):
        return None
    last = out.crop((0, rows - 1, width, rows)).getextrema()
    if all(lo == hi == s for (lo, hi), s in zip(last, _SENTINEL)):
        return None
    return out if keep is None else out.crop(keep)


def _load(source: ImageSource, min_scale: float, region: Sequence[float] | None) -> DecodedImage:
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
        if lazy_jpeg and region is not None:
            fw, fh = img.size
            x0, y0, x1, y1 = decoded_span(region, reduce)
            kx0, ky0 = min(max(x0, 0), fw - 1), min(max(y0, 0), fh - 1)
            keep = (kx0, ky0, max(min(x1, fw), kx0 + 1), max(min(y1, fh), ky0 + 1))  # the frame's part; never empty
            rows = keep[3]
            # the scratch pays where many rows are decoded and little of them is kept (a new image of the rows
            # costs its zero-filling; the scratch, a copy of what is kept); else the rows are the new image
            into_scratch = (SCRATCH_MIN_PIXELS <= fw * rows <= SCRATCH_MAX_PIXELS
                            and (keep[2] - kx0) * (keep[3] - ky0) * 2 <= fw * rows)
            if into_scratch or rows < fh:
                part = _decode_rows(img, rows, keep if into_scratch else None)
                if part is not None:
                    if path is not None:
                        img.close()
                    return DecodedImage(part, reduce, orig_size, (kx0, ky0) if into_scratch else (0, 0))
        if img.mode != "RGB":
            img = img.convert("RGB")
        else:
            img.load()
    except (OSError, ValueError, SyntaxError) as exc:
        where = f"{path}: " if path else ""
        raise ValueError(f"{where}cannot decode image: {exc}") from exc
    return DecodedImage(img, reduce, orig_size)
