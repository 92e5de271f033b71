"""``Tracker.run`` (the one frame loop) and the sync / async drivers of the one step core agree."""

from __future__ import annotations

import asyncio

import pytest

from r1track.backends import BackendError
from r1track.backends.ncc import NCCBackend
from r1track.backends.oracle import OracleBackend
from r1track.synthetic import make_sequence
from r1track.testing.openai_server import OpenAIServer, reply, status
from r1track.tracker import FAULT_STATUSES, Status, Tracker, TrackerParams


@pytest.fixture(scope="module")
def seq():
    return make_sequence("s", n_frames=12, seed=5)


def test_run_yields_the_init_frame_then_what_track_gives(seq):
    gt = seq.boxes_xywh_orig
    by_run = list(Tracker(OracleBackend(gt, noise_px=2.0, seed=1), name="s").run(iter(seq.frames), gt[0]))
    manual = Tracker(OracleBackend(gt, noise_px=2.0, seed=1), name="s")
    init = manual.initialize(seq.frames[0], gt[0])
    by_hand = [manual.track(f) for f in seq.frames[1:]]
    assert len(by_run) == len(seq.frames)
    first = by_run[0]
    assert first.status is Status.INIT and first.frame_index == 0 and not first.fault and not first.ok
    assert tuple(first.box_xywh_orig) == tuple(init.box_xywh_orig) == tuple(float(v) for v in gt[0])
    wx1, wy1, wx2, wy2 = first.search_window_xyxy_orig
    assert wx1 <= gt[0][0] and wx2 >= gt[0][0] + gt[0][2] and wy1 <= gt[0][1] and wy2 >= gt[0][1] + gt[0][3]
    for a, b in zip(by_run[1:], by_hand):
        assert (a.frame_index, tuple(a.box_xywh_orig), a.status, a.reply) == (b.frame_index, tuple(b.box_xywh_orig), b.status, b.reply)


def test_run_of_no_frames_is_an_error():
    with pytest.raises(ValueError, match="no frames"):
        next(Tracker(NCCBackend(), name="empty").run([], (1, 1, 5, 5)))


def test_sync_and_async_drivers_give_the_same_results_and_faults(seq):
    script = [reply("no idea"), status(500), status(500), reply("[1,1,1,1]")]
    params = TrackerParams()
    with OpenAIServer(script=list(script)) as server:
        from r1track.backends.openai import OpenAIBackend

        backend = OpenAIBackend(server.base_url, "m", retries=1, backoff_s=0.01)
        sync = list(Tracker(backend, params).run(seq.frames[:6], seq.boxes_xywh_orig[0]))
        server.push(*script)

        async def drive():
            tr = Tracker(backend, params)
            init = await tr.initialize_async(seq.frames[0], seq.boxes_xywh_orig[0])
            return init, [await tr.track_async(f) for f in seq.frames[1:6]]

        init, asynch = asyncio.run(drive())
        backend.close()
    assert [r.status for r in sync[1:]] == [r.status for r in asynch]
    assert [r.status for r in sync[1:4]] == [Status.NO_BOX, Status.BACKEND_ERROR, Status.EMPTY_BOX]
    assert all(r.status in FAULT_STATUSES for r in sync[1:4]) and sync[4].ok
    assert [tuple(r.box_xywh_orig) for r in sync[1:]] == [tuple(r.box_xywh_orig) for r in asynch]
    assert all(r.timing.request_s > 0 and r.timing.prepare_s > 0 for r in asynch)


def test_grounding_backend_error_propagates_from_both_drivers(seq):
    with OpenAIServer(script=[status(404), status(404)]) as server:
        from r1track.backends.openai import OpenAIBackend

        backend = OpenAIBackend(server.base_url, "m")
        with pytest.raises(BackendError):
            Tracker(backend).initialize(seq.frames[0], text="the object")
        with pytest.raises(BackendError):
            asyncio.run(Tracker(backend).initialize_async(seq.frames[0], text="the object"))
        backend.close()


def test_status_is_a_string_that_serialises_as_its_value():
    import json

    assert Status.NO_BOX == "no-box" and f"{Status.NO_BOX}" == "no-box" and json.dumps([Status.OK]) == '["ok"]'
    assert set(FAULT_STATUSES) == set(Status) - {Status.OK, Status.INIT, Status.ABSENT}
