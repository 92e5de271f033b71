"""The memory-frame policy: which images a tracking request carries, and when the memory frame changes.

Without memory a request holds two images, the template and the search crop, and asks with ``prompt_version``.
With ``memory`` it holds three -- template, memory, search -- and asks with ``memory_prompt_version``: the memory
is the search crop of the last confident answer (until the first one, the template itself), refreshed with every
``memory_update_every``-th accepted answer. The memory keeps the very pixels and cached encodings of that search
crop (:class:`r1track.backends.RequestImage`), and its box is the accepted answer clipped to the crop.
"""

from __future__ import annotations

from typing import Protocol

from .backends.base import FrameRequest, RequestImage
from .boxes import BoxXYXY, clip_xyxy

__all__ = ["MemorySettings", "prompt_images", "refreshed_memory"]


class MemorySettings(Protocol):
    """The settings the memory policy reads (fields of :class:`~r1track.tracker_params.TrackerParams`)."""

    memory: bool
    prompt_version: str
    memory_prompt_version: str
    memory_update_every: int


def prompt_images(
    settings: MemorySettings, template: RequestImage, template_box_xyxy_model: BoxXYXY, memory: RequestImage,
    memory_box_xyxy_model: BoxXYXY, search: RequestImage,
) -> tuple[tuple[RequestImage, ...], tuple[BoxXYXY, ...], str]:
    """(images in prompt order, the boxes the prompt states -- in their crops' pixels --, prompt version) of a
    tracking request."""
    if settings.memory:
        return (template, memory, search), (template_box_xyxy_model, memory_box_xyxy_model), settings.memory_prompt_version
    return (template, search), (template_box_xyxy_model,), settings.prompt_version


def refreshed_memory(
    settings: MemorySettings, good_answers: int, request: FrameRequest, box_xyxy_model: BoxXYXY
) -> tuple[RequestImage, BoxXYXY] | None:
    """The new (memory image, its box in the crop's pixels) after the ``good_answers``-th accepted answer, whose
    box in ``request``'s search crop is ``box_xyxy_model``; None when the memory stays."""
    if not (settings.memory and good_answers % settings.memory_update_every == 0):
        return None
    search = request.images[-1]
    w, h = request.model_size
    return RequestImage(search.image, "memory", search.cache), clip_xyxy(box_xyxy_model, w, h)  # same pixels, same cached encodings
