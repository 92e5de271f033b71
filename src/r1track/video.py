"""Frames in, annotated video out: for ``r1track track`` and the demo.

Input: a folder of frames (sorted numerically) or a video file (needs PyAV: ``pip install "r1track[video]"``).
Output: an annotated GIF (Pillow only) or MP4 (PyAV), boxes drawn in original-image pixels.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .data.sequences import IMAGE_EXTENSIONS, list_frames

__all__ = ["VIDEO_EXTENSIONS", "iter_frames", "count_frames", "annotate", "AnnotatedWriter"]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def _require_av():
    """PyAV, or RuntimeError naming the missing package (:func:`r1track.extras.require`)."""
    from .extras import MissingPackage, require

    try:
        require("video", "reading or writing video files")
        import av
    except MissingPackage as exc:
        raise RuntimeError(f"{exc}; or use a frame folder / a .gif") from None
    except ImportError as exc:  # installed but broken (a missing shared library)
        raise RuntimeError(f"reading or writing video files needs PyAV, which does not import: {exc}") from None
    return av


def iter_frames(source: str | os.PathLike) -> Iterator[Path | np.ndarray]:
    """Frames of a folder (paths, decoded lazily by the tracker) or of a video file (RGB arrays)."""
    source = Path(source)
    if source.is_dir():
        frames = list_frames(source)
        if not frames:
            raise ValueError(f"{source}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
        yield from frames
        return
    if not source.is_file():
        raise ValueError(f"{source}: no such file or folder")
    if source.suffix.lower() not in VIDEO_EXTENSIONS:
        raise ValueError(f"{source}: not a frame folder or a video file ({', '.join(VIDEO_EXTENSIONS)})")
    av = _require_av()
    with av.open(str(source)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def count_frames(source: str | os.PathLike) -> int | None:
    """Number of frames when cheap to know (folders, videos with a frame count), else None."""
    source = Path(source)
    if source.is_dir():
        return len(list_frames(source))
    try:
        av = _require_av()
        with av.open(str(source)) as c:
            n = c.streams.video[0].frames
            return int(n) or None
    except Exception:
        return None


def _open_rgb(frame: Path | np.ndarray | Image.Image, max_side: int | None) -> tuple[Image.Image, tuple[int, int]]:
    """(the frame as RGB, its original (width, height)). A JPEG file is decoded at the coarsest DCT scale
    (1/2, 1/4, 1/8) that stays at least as large as ``max_side`` asks, so the image may be smaller."""
    if isinstance(frame, Image.Image):
        return frame.convert("RGB"), frame.size
    if isinstance(frame, np.ndarray):
        return Image.fromarray(frame), (frame.shape[1], frame.shape[0])
    with Image.open(frame) as im:
        orig_size = im.size
        w, h = orig_size
        if max_side and max(w, h) > max_side and im.format == "JPEG":
            s = max_side / max(w, h)
            im.draft("RGB", (math.ceil(w * s), math.ceil(h * s)))
        return im.convert("RGB"), orig_size


def annotate(
    frame: Path | np.ndarray | Image.Image,
    box_xywh_orig: Sequence[float],
    *,
    label: str = "",
    colour: tuple[int, int, int] = (0, 255, 0),
    max_side: int | None = None,
) -> Image.Image:
    """The frame with the box drawn (and ``label`` above it), optionally scaled so its longer side is at
    most ``max_side`` pixels (the box is scaled with it; a JPEG file is then decoded at reduced scale)."""
    img, orig_size = _open_rgb(frame, max_side)
    s = 1.0
    if max_side and max(orig_size) > max_side:
        s = max_side / max(orig_size)
        size = (max(1, round(orig_size[0] * s)), max(1, round(orig_size[1] * s)))
        if img.size != size:
            img = img.resize(size, Image.Resampling.BILINEAR)
    x, y, w, h = (float(v) * s for v in box_xywh_orig)
    d = ImageDraw.Draw(img)
    width = max(2, round(max(img.size) / 300))
    d.rectangle([x, y, x + w, y + h], outline=colour, width=width)
    if label:
        try:
            font = ImageFont.load_default(size=max(10, round(max(img.size) / 40)))
        except TypeError:  # Pillow < 10.1
            font = ImageFont.load_default()
        d.text((4, 4), label, fill=colour, font=font, stroke_width=2, stroke_fill=(0, 0, 0))
    return img


class AnnotatedWriter:
    """Collect annotated frames and write ``.gif`` (Pillow) or ``.mp4`` (PyAV) at ``fps``; the file
    appears only when :meth:`close` succeeds (written to a temp name, then renamed)."""

    def __init__(self, path: str | os.PathLike, fps: float = 10.0) -> None:
        self.path = Path(path)
        self.fps = fps
        suffix = self.path.suffix.lower()
        if suffix not in (".gif", ".mp4"):
            raise ValueError(f"{self.path}: annotated output must be .gif or .mp4")
        self.kind = suffix[1:]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._frames: list[Image.Image] = []
        self._container = None
        self._stream = None
        if self.kind == "mp4":
            av = _require_av()
            self._container = av.open(str(self._tmp), mode="w", format="mp4")

    def add(self, img: Image.Image) -> None:
        if self.kind == "gif":
            self._frames.append(img.convert("P", palette=Image.Palette.ADAPTIVE, colors=128))
            return
        av = _require_av()
        if self._stream is None:
            from fractions import Fraction

            self._stream = self._container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1000))
            self._stream.width = img.size[0] - img.size[0] % 2
            self._stream.height = img.size[1] - img.size[1] % 2
            self._stream.pix_fmt = "yuv420p"
        if img.size != (self._stream.width, self._stream.height):
            img = img.crop((0, 0, self._stream.width, self._stream.height))
        for packet in self._stream.encode(av.VideoFrame.from_image(img)):
            self._container.mux(packet)

    def close(self) -> Path:
        if self.kind == "gif":
            if not self._frames:
                raise ValueError("no frames to write")
            self._frames[0].save(
                self._tmp, save_all=True, append_images=self._frames[1:], duration=max(20, round(1000 / self.fps)), loop=0
            )
        else:
            if self._stream is not None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
            self._container.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:
                pass
        if self._tmp.exists():
            self._tmp.unlink()
