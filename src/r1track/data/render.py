"""Turns a :class:`~r1track.data.sampler.SamplePlan` into JPEG crops and model-frame boxes.

Runs in worker processes. Pixels come from :mod:`r1track.crop` only, through the very calls the tracker makes:
:func:`~r1track.crop.load_for_window` decodes each frame down to the window's last row, at full resolution
(``RenderSettings.decode`` exact, the default: the pixels the tracker sends with its default decode mode) or at
the coarsest JPEG DCT scale (1, 1/2, 1/4, 1/8) that still gives the crop at least one decoded pixel per crop
pixel (fast); :func:`~r1track.crop.render_crop` cuts, pads and resizes. Boxes are mapped with the transform of
the pixels produced, which is always the planned window's (a reduced decode samples that window between its
pixels).

A frame that cannot be decoded, or whose header says it is too large to decode
(:func:`~r1track.data.checks.read_image_header`, checked before decoding), makes the whole sample a
:class:`RenderFailure` (reported and counted by the builder), never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass


from ..boxes import BoxXYXY, clip_xyxy, xywh_to_xyxy
from ..crop import CropTransform, DecodeMode, encode_jpeg, load_for_window, render_crop
from .checks import Reason, read_image_header
from .sampler import SamplePlan

__all__ = ["RenderedSample", "RenderFailure", "RenderSettings", "render_sample"]


@dataclass(frozen=True)
class RenderSettings:
    """Padding colour, JPEG quality of the crops written, and how frames are decoded (:class:`DecodeMode`)."""

    fill: tuple[int, int, int] = (0, 0, 0)
    jpeg_quality: int = 95
    decode: str = DecodeMode.EXACT.value


@dataclass(frozen=True)
class RenderedSample:
    """JPEG bytes per image (prompt order), the exact transform of each crop, and each target box
    in its crop (``boxes_xyxy_crop``: clipped to the crop; ``boxes_xyxy_crop_raw``: unclipped).
    The crop frame is the model-input frame (crop sides are multiples of 28)."""

    plan: SamplePlan
    jpegs: tuple[bytes, ...]
    transforms: tuple[CropTransform, ...]
    boxes_xyxy_crop: tuple[BoxXYXY, ...]
    boxes_xyxy_crop_raw: tuple[BoxXYXY, ...]


@dataclass(frozen=True)
class RenderFailure:
    """A sample that could not be made: ``reason`` is ``unreadable_frame`` or ``image_too_large``;
    ``path`` names the file."""

    plan: SamplePlan
    reason: str
    path: str
    detail: str


def render_sample(plan: SamplePlan, settings: RenderSettings) -> RenderedSample | RenderFailure:
    """Render every image of ``plan`` (each frame decoded as ``settings.decode`` says)."""
    jpegs, transforms, boxes, raw = [], [], [], []
    for crop in plan.crops:
        window = crop.window
        size, reason, detail = read_image_header(crop.frame)
        if size is None:
            return RenderFailure(plan, str(reason), crop.frame, detail)
        try:
            img = load_for_window(crop.frame, window, decode=settings.decode)
        except ValueError as exc:
            return RenderFailure(plan, Reason.UNREADABLE_FRAME.value, crop.frame, str(exc))
        out = render_crop(img, window, fill=settings.fill)
        t = out.transform
        box_crop = t.xyxy_orig_to_crop(xywh_to_xyxy(crop.box_xywh_orig))
        jpegs.append(encode_jpeg(out.image, settings.jpeg_quality))
        transforms.append(t)
        raw.append(box_crop)
        boxes.append(clip_xyxy(box_crop, window.out_side, window.out_side))
    return RenderedSample(plan, tuple(jpegs), tuple(transforms), tuple(boxes), tuple(raw))


# -- worker-process entry points (module level so multiprocessing can find them) ---------------------

_SETTINGS = RenderSettings()


def init_worker(settings: RenderSettings) -> None:
    """Set up a render worker process. Only the parent acts on Ctrl-C (it terminates the pool and removes the
    partial folder): it starts the workers with SIGINT blocked (:func:`r1track.interrupts.ctrl_c_held`), so they
    never hear it, not even while importing; ignoring it here as well covers platforms without signal masks."""
    import signal

    global _SETTINGS
    _SETTINGS = settings
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def render_in_worker(plan: SamplePlan) -> RenderedSample | RenderFailure:
    return render_sample(plan, _SETTINGS)
