"""A fixed set of real tracker requests, the same whatever the engine answers (for comparing engines).

:func:`fixed_requests` tracks synthetic sequences (:func:`r1track.synthetic.make_sequence`) with a tracker whose
state follows the ground truth: after each request it applies the true box as the reply, so the next request is
the one any engine would get on a perfect track. Per sequence: optionally one text-grounding request on the
first frame (the whole frame, resized to the grounding pixel budget), then one tracking request per later frame.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from ..backends.base import Backend, FrameRequest, Reply
from ..boxes import xywh_to_xyxy
from ..synthetic import make_sequence
from ..tracker import Tracker, TrackerParams

__all__ = ["fixed_requests", "ask_all_at_once"]


class _Builder(Backend):
    """Builds requests only; never asked."""

    supports_grounding = True


def fixed_requests(params: TrackerParams, *, n_sequences: int, n_frames: int, size: tuple[int, int] = (320, 240),
                   seed: int = 100, grounding: bool = True, prefix: str = "probe") -> list[FrameRequest]:
    """``n_sequences`` x (``grounding`` + ``n_frames``) requests in order; sequence k is seeded ``seed + k``,
    ``size`` = (width, height) of its frames. Grounding requests carry no answer regex (free text)."""
    requests = []
    for k in range(n_sequences):
        seq = make_sequence(f"{prefix}{k}", n_frames=n_frames + 1, size=size, seed=seed + k)
        tracker = Tracker(_Builder(), params, name=seq.name)
        if grounding:
            ground = tracker.build_grounding_request(seq.frames[0], "the textured square")
            requests.append(replace(ground, sampling=replace(ground.sampling, regex=None)))
        tracker.initialize(seq.frames[0], seq.boxes_xywh_orig[0])
        for i in range(1, n_frames + 1):
            request = tracker.build_request(seq.frames[i])
            requests.append(request)
            truth = request.orig_to_model_xyxy(xywh_to_xyxy(seq.boxes_xywh_orig[i]))
            tracker.apply_reply(request, Reply(request.answer_text(truth)))  # in the family's coordinates
    return requests


def ask_all_at_once(backend: Backend, requests: list[FrameRequest], *, ahead: bool = True,
                    threads: int = 4) -> list[Reply]:
    """Answers to ``requests`` in order: each prepared first (``ahead``: the backend's ``prepare`` in a pool of
    ``threads``, as ``r1track eval`` does while the engine works; else the engine prepares them itself), then all
    asked at once through the async path (an in-process engine batches them), then the backend closed. Any
    ``payload`` a request carried is dropped first, so each backend prepares its own."""
    for r in requests:
        r.payload = None
    if ahead:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(backend.prepare, requests))

    async def run() -> list[Reply]:
        try:
            return list(await asyncio.gather(*(backend.complete_async(r) for r in requests)))
        finally:
            await backend.aclose()

    return asyncio.run(run())
