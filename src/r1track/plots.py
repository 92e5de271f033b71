"""Success and precision plots as PNG, drawn with Pillow (no plotting library needed)."""

from __future__ import annotations

import io
import os
from typing import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .fsutil import atomic_write_bytes

__all__ = ["line_plot"]

COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75), (227, 119, 194), (23, 190, 207)]


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def line_plot(
    path: str | os.PathLike,
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    xlim: tuple[float, float],
    ylim: tuple[float, float] = (0.0, 1.0),
    size: tuple[int, int] = (640, 480),
) -> None:
    """Draw one line per curve (label -> (x values, y values)) with axes, grid and a legend, and write
    a PNG atomically."""
    w, h = size
    left, right, top, bottom = 70, 20, 40, 60
    img = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(img)
    f, fs = _font(14), _font(12)
    pw, ph = w - left - right, h - top - bottom

    def px(x: float, y: float) -> tuple[float, float]:
        fx = (x - xlim[0]) / (xlim[1] - xlim[0])
        fy = (y - ylim[0]) / (ylim[1] - ylim[0])
        return left + fx * pw, top + (1 - fy) * ph

    for k in range(11):
        gx = xlim[0] + (xlim[1] - xlim[0]) * k / 10
        gy = ylim[0] + (ylim[1] - ylim[0]) * k / 10
        x0, _ = px(gx, ylim[0])
        _, y0 = px(xlim[0], gy)
        d.line([(x0, top), (x0, top + ph)], fill=(225, 225, 225))
        d.line([(left, y0), (left + pw, y0)], fill=(225, 225, 225))
        d.text((x0, top + ph + 6), f"{gx:g}", fill=(0, 0, 0), font=fs, anchor="ma")
        d.text((left - 6, y0), f"{gy:.1f}", fill=(0, 0, 0), font=fs, anchor="rm")
    d.rectangle([left, top, left + pw, top + ph], outline=(0, 0, 0))
    d.text((left + pw / 2, 12), title, fill=(0, 0, 0), font=f, anchor="ma")
    d.text((left + pw / 2, h - 22), xlabel, fill=(0, 0, 0), font=f, anchor="ma")
    label_img = Image.new("RGB", (ph, 20), (255, 255, 255))
    ImageDraw.Draw(label_img).text((ph / 2, 2), ylabel, fill=(0, 0, 0), font=f, anchor="ma")
    img.paste(label_img.rotate(90, expand=True), (8, top))
    for i, (label, (xs, ys)) in enumerate(curves.items()):
        colour = COLOURS[i % len(COLOURS)]
        pts = [px(float(x), float(y)) for x, y in zip(np.asarray(xs), np.asarray(ys)) if np.isfinite(x) and np.isfinite(y)]
        if len(pts) > 1:
            d.line(pts, fill=colour, width=2)
        ly = top + 10 + 18 * i
        d.line([(left + pw - 190, ly + 7), (left + pw - 165, ly + 7)], fill=colour, width=3)
        d.text((left + pw - 160, ly), label, fill=(0, 0, 0), font=fs)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
