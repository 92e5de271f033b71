"""From a model's reply to an accepted box: the sanity checks every tracking answer passes.

A reply becomes the frame's box only if it holds a box (:func:`r1track.parse.parse_reply`), in think mode with
``require_think_format`` is exactly ``<think>..</think><answer>..</answer>``, is at least ``min_box_px`` wide and
high once clipped to the crop, lies at least ``min_inside_fraction`` inside the crop, lands on the image (not
in the padding) and changes the size by at most ``max_scale_change`` since the last accepted box. Each failed
check is a fallback status (:class:`r1track.frame_outcome.Status`); an ``[]`` answer of a visibility-aware
prompt is ``absent``. Boxes are decoded with the request's model family (pixels or Qwen3's 0-1000 grid) into
the crop's pixels and mapped back to the original frame with the request's transform.

Every number a reply can hold is either an accepted box or a counted fallback, never an exception: the parser
takes finite numbers only (NaN, infinities and values past the double range are ``no-box``); a value that
overflows on the way into crop pixels (Qwen3's 0-1000 grid times the crop side) or a box whose width times
height overflows (``[0,0,1e155,1e155]``) reaches beyond the crop, so it is ``outside-crop``; the shares and
ratios below are computed side by side (width ratio times height ratio), never as a quotient of two areas that
could overflow to infinity or underflow to zero.

Nothing here does I/O or keeps state: :class:`r1track.tracker.Tracker` calls it with the last accepted box.
"""

from __future__ import annotations

import math
from typing import Callable, Protocol

from .backends.base import FrameRequest
from .boxes import BoxXYWH, BoxXYXY, area_xyxy, clip_xyxy, is_finite_box, xyxy_to_xywh
from .frame_outcome import Status, TrackerInitError
from .parse import parse_reply

__all__ = ["CheckSettings", "check_answer", "check_box", "grounding_box"]


class CheckSettings(Protocol):
    """The settings the checks read (fields of :class:`~r1track.tracker_params.TrackerParams`)."""

    think: bool
    require_think_format: bool
    min_box_px: float
    min_inside_fraction: float
    max_scale_change: float


def check_answer(
    request: FrameRequest, text: str, settings: CheckSettings, last_box_xywh_orig: BoxXYWH
) -> tuple[Status, str, BoxXYXY | None, BoxXYXY | None]:
    """(status, detail, answer box in the crop, accepted box in the original frame) of the reply ``text`` to
    the tracking ``request``; the accepted box is None unless the status is ``ok``, the crop box None when the
    reply holds none. ``last_box_xywh_orig``: the last accepted box (original pixels), for the scale check."""
    p = settings
    parsed = parse_reply(text)
    if parsed.absent:
        return Status.ABSENT, "the model answered that the target is not visible", None, None
    if not parsed.ok:
        return Status.NO_BOX, parsed.reason, None, None
    box_model = request.family.decode_xyxy(parsed.box_xyxy_model, request.model_size)  # answer -> crop pixels
    if p.think and p.require_think_format and not parsed.think_format_ok:
        return Status.BAD_FORMAT, "not <think>..</think><answer>..</answer>", box_model, None
    if not is_finite_box(box_model):  # finite as written, past the double range in crop pixels
        return Status.OUTSIDE_CROP, f"box {tuple(parsed.box_xyxy_model)} overflows: it reaches far beyond the crop", box_model, None
    status, detail, box_orig = check_box(box_model, request.model_size, request.image_size,
                                         request.model_to_orig_xyxy, p, last_box_xywh_orig)
    return status, detail, box_model, box_orig


def check_box(
    box_model: BoxXYXY, model_size: tuple[int, int], image_size: tuple[int, int],
    model_to_orig: Callable[[BoxXYXY], BoxXYXY], settings: CheckSettings, last_box_xywh_orig: BoxXYWH,
) -> tuple[Status, str, BoxXYXY | None]:
    """(status, detail, accepted box in the original frame, None unless ``ok``) of an answer box already read
    into model-input pixels (``box_model``, finite): clipped to the model frame of ``model_size`` (width,
    height), at least ``min_box_px`` a side and ``min_inside_fraction`` inside it, mapped to the original frame
    by ``model_to_orig`` and clipped to ``image_size``, and within ``max_scale_change`` of the last accepted box.
    The one place these checks live: the tracker reads every reply through it, and the replay planner
    (:mod:`r1track.data.replay`) its perfect answers."""
    p = settings
    mw, mh = model_size
    inside = clip_xyxy(box_model, mw, mh)
    bw, bh = box_model.x2 - box_model.x1, box_model.y2 - box_model.y1  # may be inf ([-1e308, ., 1e308, .])
    iw, ih = inside.x2 - inside.x1, inside.y2 - inside.y1
    if iw < p.min_box_px or ih < p.min_box_px or iw <= 0 or ih <= 0:
        what = "outside the crop" if bw > 0 and bh > 0 and (iw <= 0 or ih <= 0) else "degenerate"
        status = Status.OUTSIDE_CROP if what == "outside the crop" else Status.EMPTY_BOX
        return status, f"box {tuple(box_model)} is {what}", None
    share = (iw / bw) * (ih / bh)  # area(inside) / area(box) without the box's area, which may overflow
    if share < p.min_inside_fraction:
        return Status.OUTSIDE_CROP, f"only {share:.0%} of the box is inside the crop", None
    img_w, img_h = image_size
    box_orig = clip_xyxy(model_to_orig(inside), img_w, img_h)
    ow, oh = box_orig.x2 - box_orig.x1, box_orig.y2 - box_orig.y1
    if not (ow > 0 and oh > 0):
        return Status.OUTSIDE_IMAGE, "box lies in the padding outside the image", None
    prev = last_box_xywh_orig
    ratio = math.sqrt((ow / prev.w) * (oh / prev.h))  # sqrt of the area ratio, side by side: no overflow to inf/inf
    if not (1.0 / p.max_scale_change <= ratio <= p.max_scale_change):
        return Status.SCALE_JUMP, f"size changed x{ratio:.2f} (limit x{p.max_scale_change:g})", None
    return Status.OK, "", box_orig


def grounding_box(request: FrameRequest, text: str, name: str = "") -> BoxXYWH:
    """The grounding reply ``text`` to ``request`` (one full frame) as a box in original pixels, clipped to the
    image; :class:`~r1track.frame_outcome.TrackerInitError` naming the sequence ``name`` when it has none or it
    lies off the image."""
    parsed = parse_reply(text)
    if not parsed.ok:
        raise TrackerInitError(f"{name or 'sequence'}: grounding reply has no box ({parsed.reason}): {text[:200]!r}")
    w, h = request.image_size
    box_model = request.family.decode_xyxy(parsed.box_xyxy_model, request.model_size)
    box = clip_xyxy(request.model_to_orig_xyxy(box_model), w, h)
    if area_xyxy(box) <= 0:
        raise TrackerInitError(f"{name or 'sequence'}: grounding box is empty or off the image: {text[:200]!r}")
    return xyxy_to_xywh(box)
