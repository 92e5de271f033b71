"""Image files before any pixel is decoded: the forms a frame may take, the pixel limit, and the header check.

Every command reads frames through here first: :func:`read_image_header` gives a file's size from its header
(nothing is decoded) or the reason it cannot be used (:class:`r1track.reasons.Reason`: ``unreadable_frame``,
``image_too_large``), so an oversized or broken file is refused, naming it, before a decoder or a resampler
sees it. Decoding and cropping are :mod:`r1track.crop`'s.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image

from .reasons import Reason

__all__ = ["MAX_FRAME_PIXELS", "ImageSource", "read_image_header", "image_size_of"]

MAX_FRAME_PIXELS = 89_478_485
"""Largest image (width x height) r1track decodes: Pillow's own decompression-bomb limit
(``PIL.Image.MAX_IMAGE_PIXELS``, about 9459 x 9459), fixed here so a program that changes Pillow's
global does not change what r1track accepts. Checked from the header, before any decoding."""

ImageSource = Union[np.ndarray, Image.Image, str, os.PathLike]
"""An RGB uint8 H x W x 3 array, a PIL image (opened lazily or loaded), or a path to an image file."""


def read_image_header(path: str | Path) -> tuple[tuple[int, int] | None, Reason | None, str]:
    """``((W, H), None, "")`` from the image header (nothing is decoded), or ``(None, reason, detail)``:
    ``image_too_large`` above :data:`MAX_FRAME_PIXELS` (Pillow's decompression-bomb error included),
    ``unreadable_frame`` when the file cannot be opened as an image. Never raises."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                size = im.size
    except Image.DecompressionBombError as exc:
        return None, Reason.IMAGE_TOO_LARGE, str(exc)
    except (OSError, ValueError, SyntaxError) as exc:
        return None, Reason.UNREADABLE_FRAME, f"cannot read the image header: {exc}"
    if size[0] * size[1] > MAX_FRAME_PIXELS:
        return None, Reason.IMAGE_TOO_LARGE, f"{size[0]}x{size[1]} pixels, more than {MAX_FRAME_PIXELS} (decompression-bomb limit)"
    return (int(size[0]), int(size[1])), None, ""


def image_size_of(path: Path) -> tuple[int, int] | None:
    """(W, H) from the image header, or None when the file cannot be opened or is too large."""
    return read_image_header(path)[0]
