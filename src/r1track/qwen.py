"""The Qwen-VL input frame: smart_resize and the crop-side rule, for any patch factor.

Every Qwen-VL processor rounds each image side to a multiple of its factor (patch x spatial merge: 28
for Qwen2.5-VL, 32 for Qwen3-VL and Qwen3.5) and keeps the pixel count inside ``[min_pixels,
max_pixels]``. A square crop whose side is a multiple of the factor and whose area lies in those
bounds reaches the model unchanged, so the crop frame *is* the model-input frame. Anything else is
resized silently and every box label in the prompt and the answer is off.

The defaults here are Qwen2.5-VL's; :mod:`r1track.models` holds every family's values and calls these
functions with them.
"""

from __future__ import annotations

import math

__all__ = [
    "FACTOR",
    "MIN_PIXELS",
    "MAX_PIXELS",
    "nearest_valid_sides",
    "check_crop_side",
    "smart_resize",
    "model_input_size",
]

FACTOR = 28
"""Patch size 14 x spatial merge 2."""

MIN_PIXELS = 3136
"""Qwen2.5-VL-3B-Instruct processor default (4 * 28 * 28)."""

MAX_PIXELS = 12845056
"""Qwen2.5-VL-3B-Instruct processor default (16384 * 28 * 28)."""


def nearest_valid_sides(side: float, factor: int = FACTOR) -> tuple[int, int]:
    """The multiples of ``factor`` just below and just above ``side`` (the lower one is at least ``factor``)."""
    lo = max(factor, int(math.floor(side / factor)) * factor)
    hi = max(factor, int(math.ceil(side / factor)) * factor)
    if hi == lo:
        hi = lo + factor
    return lo, hi


def check_crop_side(
    side: int, *, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS, factor: int = FACTOR,
    label: str = "Qwen2.5-VL patch 14 x merge 2", common: tuple[int, ...] = (112, 224, 336, 448),
) -> int:
    """Return ``side`` if a ``side x side`` crop reaches the model unresized (a multiple of ``factor`` whose
    area lies in ``[min_pixels, max_pixels]``); else raise ValueError naming the nearest valid sizes.
    ``label`` names the model's patch rule and ``common`` the usual sides in the message."""
    if isinstance(side, bool) or not isinstance(side, int) and not (isinstance(side, float) and side.is_integer()):
        raise ValueError(f"crop side must be an integer number of pixels, got {side!r}")
    side = int(side)
    if side <= 0 or side % factor != 0:
        lo, hi = nearest_valid_sides(max(side, 1), factor)
        raise ValueError(
            f"crop side {side} px is not a multiple of {factor} ({label}): the model "
            f"would see a resized image and every box label would be wrong. Nearest valid sizes: {lo} or {hi} "
            f"(common choices: {', '.join(str(c) for c in common)})."
        )
    if not (min_pixels <= side * side <= max_pixels):
        raise ValueError(
            f"crop side {side} px gives {side * side} pixels, outside the processor bounds "
            f"[{min_pixels}, {max_pixels}]: the model would see a resized image."
        )
    return side


def smart_resize(
    height: int, width: int, *, factor: int = FACTOR, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS
) -> tuple[int, int]:
    """(height, width) a Qwen-VL processor turns an image into (qwen-vl-utils / transformers
    rule: round each side to a multiple of ``factor`` with Python's banker's rounding, then scale
    into ``[min_pixels, max_pixels]``). Raises ValueError on an aspect ratio >= 200."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if max(height, width) / min(height, width) >= 200:
        raise ValueError(f"aspect ratio of {width}x{height} is >= 200, which Qwen-VL processors reject")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def model_input_size(
    width: int, height: int, *, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS
) -> tuple[int, int]:
    """(width, height) of the model-input frame for an image of ``width x height``; boxes map from
    the image to the model frame by x * w'/w, y * h'/h."""
    h, w = smart_resize(height, width, min_pixels=min_pixels, max_pixels=max_pixels)
    return w, h
