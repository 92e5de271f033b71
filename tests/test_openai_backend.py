"""The tracker against a real HTTP server on 127.0.0.1 (r1track.testing.openai_server): request
layout, template encoding, faults, retries, keep-alive, concurrency, secrets."""

import asyncio
import base64
import io
import logging
import math
import re
from collections import Counter

import numpy as np
import pytest
from PIL import Image

import r1track.backends.openai as openai_mod
from r1track.backends import BackendError
from r1track.backends.openai import OpenAIBackend, normalize_base_url
from r1track.data.readers import read_generic
from r1track.prompts import THINK_WRAPPER, render_task
from r1track.testing.openai_server import OpenAIServer, drop, reply, respond, status, unreadable
from r1track.tracker import Tracker, TrackerParams

SEQ = "ECO__Crossing"


@pytest.fixture(scope="module")
def crossing(realseq_dir):
    seq = next(read_generic(realseq_dir, names=[SEQ]))
    seq.arrays = [np.asarray(Image.open(p).convert("RGB")) for p in seq.frames[:24]]
    return seq


def decode(url):
    assert url.startswith("data:image/jpeg;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def fast_backend(server, **kw):
    opts = dict(timeout_s=2.0, retries=1, backoff_s=0.01, backoff_max_s=0.02)
    opts.update(kw)
    return OpenAIBackend(server.base_url, "fake-model", **opts)


def test_requests_carry_images_in_order_and_template_encoded_once(crossing, monkeypatch):
    calls = []
    real_encode = openai_mod.encode_data_url
    monkeypatch.setattr(openai_mod, "encode_data_url", lambda img, q=95: calls.append(img.size) or real_encode(img, q))
    frames, gt = crossing.arrays[:15], crossing.boxes_xywh_orig
    with OpenAIServer() as server:
        backend = fast_backend(server)
        tr = Tracker(backend, TrackerParams(), name=SEQ)
        tr.initialize(frames[0], gt[0])
        results = [tr.track(f) for f in frames[1:]]
    reqs = server.chat_requests()
    assert len(reqs) == len(results) == 14
    assert all(r.content_types == ["image_url", "image_url", "text"] for r in reqs)
    template_urls = {r.image_urls[0] for r in reqs}
    assert len(template_urls) == 1  # byte-identical template in every request: prefix/encoder cache hits
    assert len({r.image_urls[1] for r in reqs}) == 14
    assert len(calls) == 1 + 14  # the template once per sequence, one search crop per frame
    # the template is the 4x context crop around the initial box, worked out here: box 205,151,17,50 ->
    # side ceil(sqrt(850) * 4) = 117, top-left (round(213.5 - 58.5), round(176 - 58.5)) = (155, 118)
    x, y, w, h = gt[0]
    side = math.ceil(math.sqrt(w * h) * 4)
    x0, y0 = round(x + w / 2 - side / 2), round(y + h / 2 - side / 2)
    expected = np.asarray(Image.fromarray(frames[0]).crop((x0, y0, x0 + side, y0 + side)).resize((336, 336), Image.BILINEAR))
    got = np.asarray(decode(next(iter(template_urls))).convert("RGB"))
    assert got.shape == (336, 336, 3)
    assert np.abs(got.astype(int) - expected.astype(int)).mean() < 4  # JPEG q95
    s = 336 / side
    box = ((x - x0) * s, (y - y0) * s, (x + w - x0) * s, (y + h - y0) * s)
    assert reqs[0].text == render_task("r1track-v1", [box])
    body = reqs[0].body
    assert body["model"] == "fake-model" and body["temperature"] == 0.0 and body["max_tokens"] == 48
    assert "structured_outputs" not in body and "guided_regex" not in body
    assert all(r.ok for r in results)


def test_memory_requests_carry_three_images(crossing):
    with OpenAIServer() as server:
        tr = Tracker(fast_backend(server), TrackerParams(memory=True), name=SEQ)
        tr.initialize(crossing.arrays[0], crossing.boxes_xywh_orig[0])
        for f in crossing.arrays[1:5]:
            tr.track(f)
    reqs = server.chat_requests()
    assert all(r.content_types == ["image_url"] * 3 + ["text"] for r in reqs)
    assert reqs[0].image_urls[1] == reqs[0].image_urls[0]  # template stands in until a good answer
    for prev, cur in zip(reqs, reqs[1:]):
        assert cur.image_urls[1] == prev.image_urls[2]  # memory = the last good search crop, same bytes
        assert cur.image_urls[0] == reqs[0].image_urls[0]
    assert "Given three images" in reqs[1].text


def test_structured_output_regex_and_think_mode(crossing):
    with OpenAIServer() as server:
        for params in (TrackerParams(structured_output=True), TrackerParams(structured_output=True, think=True)):
            tr = Tracker(fast_backend(server), params)
            tr.initialize(crossing.arrays[0], crossing.boxes_xywh_orig[0])
            tr.track(crossing.arrays[1])
    plain, think = server.chat_requests()
    regex = plain.body["structured_outputs"]["regex"]
    assert re.fullmatch(regex, "[012,444,444,444]") and re.fullmatch(regex, "[0,1,335,99]")
    assert not re.fullmatch(regex, "[0, 1, 335, 99]") and not re.fullmatch(regex, "[1000,1,2,3]")
    assert "guided_regex" not in plain.body and "guided_regex" not in think.body
    assert "structured_outputs" not in think.body
    assert think.text.startswith(THINK_WRAPPER) and think.body["max_tokens"] == 1024


def test_faults_give_full_length_boxes_and_are_all_counted(crossing):
    # retries=1: two attempts per frame; client read timeout 0.4 s
    script = [
        reply("I think it is somewhere on the left"),  # f1 garbage -> no-box
        status(500), respond(),  # f2 retried -> ok
        status(502), status(503),  # f3 gives up -> backend-error
        drop(), respond(),  # f4 dropped connection, retried -> ok
        drop(), drop(),  # f5 -> backend-error
        respond(delay_s=1.5), respond(),  # f6 timeout, retried -> ok
        respond(delay_s=1.5), respond(delay_s=1.5),  # f7 -> backend-error (timeout)
        respond(delay_s=0.2),  # f8 slow but within the timeout -> ok
        status(429, retry_after=0), respond(),  # f9 rate limited, retried -> ok
        unreadable(), respond(),  # f10 a 200 that is not JSON, retried -> ok
        reply(""),  # f11 empty -> no-box
        reply("[5,5,5,5]"),  # f12 degenerate -> empty-box
    ]
    frames = crossing.arrays[:21]
    with OpenAIServer(script=script) as server:
        backend = fast_backend(server, timeout_s=0.4)
        tr = Tracker(backend, TrackerParams(), name=SEQ)
        tr.initialize(frames[0], crossing.boxes_xywh_orig[0])
        results = [tr.track(f) for f in frames[1:]]
    assert len(results) == 20
    for r in results:
        assert all(math.isfinite(v) for v in r.box_xywh_orig) and r.box_xywh_orig[2] > 0 and r.box_xywh_orig[3] > 0
    statuses = [r.status for r in results]
    assert statuses[:12] == ["no-box", "ok", "backend-error", "ok", "backend-error", "ok", "backend-error", "ok", "ok",
                             "ok", "no-box", "empty-box"]
    assert statuses[12:] == ["ok"] * 8
    assert tr.counts == Counter({"ok": 14, "no-box": 2, "backend-error": 3, "empty-box": 1})
    assert [r.attempts for r in results[:10]] == [1, 2, 2, 2, 2, 2, 2, 1, 2, 2]
    assert "no reply after 2 attempt(s)" in results[2].detail and "HTTP 503" in results[2].detail
    assert server.base_url in results[2].detail
    st = backend.stats
    assert (st["http-500"], st["http-502"], st["http-503"], st["http-429"]) == (1, 1, 1, 1)
    assert (st["connection"], st["timeout"], st["bad-response"]) == (3, 3, 1)
    assert st["failures"] == 3 and st["requests"] == 20
    assert st["attempts"] == len(server.chat_requests()) == 20 + 8  # frames 2-7, 9, 10 took two attempts
    assert st["retries"] == 8
    assert server.action_counts["drop"] == 3


def test_retries_exhausted_error_names_the_url_and_client_errors_are_fatal(crossing):
    with OpenAIServer(script=[status(500)] * 4 + [status(400)]) as server:
        backend = fast_backend(server, retries=3)
        tr = Tracker(backend, TrackerParams(), name=SEQ)
        tr.initialize(crossing.arrays[0], crossing.boxes_xywh_orig[0])
        r = tr.track(crossing.arrays[1])
        assert r.status == "backend-error" and r.attempts == 4
        assert f"{server.base_url}/chat/completions: no reply after 4 attempt(s)" in r.detail
        with pytest.raises(BackendError) as info:
            tr.track(crossing.arrays[2])
        assert info.value.fatal and info.value.kind == "client-error" and info.value.attempts == 1
        assert server.base_url in str(info.value) and "400" in str(info.value)
        assert len(server.chat_requests()) == 5  # a 400 is not retried


def test_connection_refused_is_a_counted_fault(crossing):
    with OpenAIServer() as server:
        url = server.base_url
    backend = OpenAIBackend(url, "m", retries=1, backoff_s=0.01, connect_timeout_s=1)  # server gone
    tr = Tracker(backend, TrackerParams())
    tr.initialize(crossing.arrays[0], crossing.boxes_xywh_orig[0])
    r = tr.track(crossing.arrays[1])
    assert r.status == "backend-error" and r.detail.startswith("connection") and url in r.detail


def test_api_key_from_environment_is_sent_and_never_shown(crossing, monkeypatch, caplog):
    secret = "sk-test-5f3a9c"
    monkeypatch.setenv("R1TRACK_API_KEY", secret)
    caplog.set_level(logging.DEBUG)
    with OpenAIServer(script=[status(500), status(500)]) as server:
        monkeypatch.setenv("R1TRACK_BASE_URL", server.base_url)
        monkeypatch.setenv("R1TRACK_MODEL", "served-name")
        backend = OpenAIBackend(retries=1, backoff_s=0.01)
        tr = Tracker(backend, TrackerParams())
        tr.initialize(crossing.arrays[0], crossing.boxes_xywh_orig[0])
        r1 = tr.track(crossing.arrays[1])
        tr.track(crossing.arrays[2])
    reqs = server.chat_requests()
    assert all(r.headers["authorization"] == f"Bearer {secret}" for r in reqs)
    assert reqs[-1].body["model"] == "served-name"
    shown = repr(backend) + r1.detail + caplog.text
    assert secret not in shown and "api_key=set" in repr(backend)


def test_model_name_asked_from_server_and_one_connection_per_sequence(crossing):
    with OpenAIServer(model="R1-Track") as server:
        backend = OpenAIBackend(server.base_url.removesuffix("/v1"))  # http://host:port -> /v1 appended
        assert backend.model is None
        tr = Tracker(backend, TrackerParams())
        tr.initialize(crossing.arrays[0], crossing.boxes_xywh_orig[0])
        for f in crossing.arrays[1:11]:
            tr.track(f)
        backend.close()
    assert backend.model == "R1-Track"
    assert {r.body["model"] for r in server.chat_requests()} == {"R1-Track"}
    assert server.connections == 1  # keep-alive: the model lookup and 10 frames on one connection


def test_many_sequences_in_flight_from_one_event_loop(crossing):
    n_seq, n_frames = 64, 4
    frames = crossing.arrays[:n_frames]

    async def main(server):
        backend = OpenAIBackend(server.base_url, "fake-model", timeout_s=10)
        trackers = [Tracker(backend, TrackerParams(), name=f"seq{i}") for i in range(n_seq)]

        async def one(tr):
            await tr.initialize_async(frames[0], crossing.boxes_xywh_orig[0])
            return [await tr.track_async(f) for f in frames[1:]]

        try:
            return await asyncio.gather(*(one(t) for t in trackers)), backend
        finally:
            await backend.aclose()

    with OpenAIServer(latency_s=0.05, capacity=16) as server:
        results, backend = asyncio.run(main(server))
    assert all(len(r) == n_frames - 1 and all(x.ok for x in r) for r in results)
    assert len(server.chat_requests()) == n_seq * (n_frames - 1)
    assert server.max_in_flight >= n_seq // 2  # many requests outstanding at once, not one by one
    assert server.connections <= n_seq  # pooled: no connection per request
    assert backend.stats["requests"] == n_seq * (n_frames - 1)


def test_server_capacity_caps_throughput():
    async def fire(url, n):
        import json

        from r1track.httpclient import AsyncHTTPClient

        c = AsyncHTTPClient(url)
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "[1,2,3,4]"}]}).encode()
        try:
            return await asyncio.gather(*(c.request("POST", "/v1/chat/completions", body) for _ in range(n)))
        finally:
            await c.aclose()

    with OpenAIServer(latency_s=0.1, capacity=2) as server:
        import time

        t0 = time.perf_counter()
        out = asyncio.run(fire(server.base_url, 8))
        elapsed = time.perf_counter() - t0
    assert all(r.status == 200 and r.json()["choices"][0]["message"]["content"] == "[1,2,3,4]" for r in out)
    assert elapsed >= 8 / 2 * 0.1 * 0.95  # 8 requests, 2 at a time, 0.1 s each


def test_text_initialisation_over_http(crossing):
    with OpenAIServer(script=[reply('[{"bbox_2d": [28, 56, 112, 140], "label": "person"}]')]) as server:
        tr = Tracker(fast_backend(server), TrackerParams())
        init = tr.initialize(crossing.arrays[0], text="person")
    (req,) = server.chat_requests()
    assert req.content_types == ["image_url", "text"]
    assert req.text == "Locate the person in this image and output the bbox coordinates in JSON format."
    # 360 x 240 -> model frame 364 x 252 (sides rounded to multiples of 28)
    assert decode(req.image_urls[0]).size == (364, 252)
    sx, sy = 360 / 364, 240 / 252
    assert init.box_xywh_orig == pytest.approx((28 * sx, 56 * sy, 84 * sx, 84 * sy))


def test_normalize_base_url():
    assert normalize_base_url("http://h:8000") == "http://h:8000/v1"
    assert normalize_base_url("http://h:8000/v1/") == "http://h:8000/v1"
    assert normalize_base_url("https://proxy/openai/v1") == "https://proxy/openai/v1"
    with pytest.raises(ValueError, match="http://host:port/v1"):
        normalize_base_url("h:8000")


def test_model_lookup_once_per_backend_retried_and_fatal_only_on_a_definite_answer(crossing):
    from faultproxy import FaultProxy

    frames = crossing.arrays[:3]

    async def many(backend, n):
        trackers = [Tracker(backend, TrackerParams(), name=f"s{i}") for i in range(n)]
        for tr in trackers:
            tr.initialize(frames[0], crossing.boxes_xywh_orig[0])
        try:
            return await asyncio.gather(*(tr.track_async(frames[1]) for tr in trackers))
        finally:
            await backend.aclose()

    with OpenAIServer(model="served") as server:
        with FaultProxy(("127.0.0.1", server.port), script=["http-502", "reset"]) as proxy:
            backend = OpenAIBackend(proxy.base_url, retries=3, backoff_s=0.01)
            results = asyncio.run(many(backend, 8))
        lookups = [h for h in proxy.seen_headers if h.startswith(b"GET /v1/models")]
        assert len(lookups) == 3  # one lookup for 8 sequences: two faults, retried, then the answer
        assert all(r.ok for r in results) and backend.model == "served"
        assert sum(sum(r.faults.values()) for r in results) == 0  # the lookup's faults are the lookup's:
        assert backend.lookup.made == [(backend.base_url, 3, {"http-502": 1, "connection": 1})]  # counted once there
        with FaultProxy(("127.0.0.1", server.port), script=["http-404"]) as proxy:
            backend = OpenAIBackend(proxy.base_url, retries=3, backoff_s=0.01)
            tr = Tracker(backend, TrackerParams())
            tr.initialize(frames[0], crossing.boxes_xywh_orig[0])
            with pytest.raises(BackendError) as info:
                tr.track(frames[1])
            backend.close()
        assert info.value.fatal and "/models" in str(info.value) and "404" in str(info.value)
        assert len(proxy.seen_headers) == 1  # a definite answer is not retried


def test_request_bytes_are_the_json_of_the_body(crossing):
    """The payload joins the images' data URLs into the dumped body instead of letting the JSON encoder scan them:
    its bytes must be exactly ``json.dumps(body)``'s, for every request kind and option."""
    import json

    from r1track.backends.base import KIND_GROUND, FrameRequest, RequestImage, Sampling

    frame = np.asarray(Image.open(crossing.frames[0]).convert("RGB"))
    box = crossing.boxes_xywh_orig[0]
    backend = OpenAIBackend("http://127.0.0.1:9/v1", "m", extra_body={"top_k": 20, "note": "ünïcode \u2028"})
    for params in (TrackerParams(), TrackerParams(memory=True), TrackerParams(seed=7, structured_output=True),
                   TrackerParams(think=True, model_family="qwen3-vl")):
        tracker = Tracker(backend, params)
        tracker.initialize(frame, box)
        request = tracker.build_request(frame)
        assert request.payload == json.dumps(backend.body(request, "m"), separators=(",", ":")).encode()
        assert len(request.images) in (2, 3) and request.payload.count(b"data:image/jpeg;base64,") == len(request.images)
    # a text holding the marker's own characters: the plain encoder is used, same bytes
    marker = openai_mod._MARKER + "0" + openai_mod._MARKER
    grounding = FrameRequest(kind=KIND_GROUND, images=(RequestImage(Image.fromarray(frame), "frame"),),
                             sampling=Sampling(0.0, 1.0, 64, None, None), frame_index=0, image_size=(640, 480),
                             grounding_text=f"the car {marker}", model_scale=(1.0, 1.0))
    assert backend.encode_body(grounding, "m") == json.dumps(backend.body(grounding, "m"), separators=(",", ":")).encode()
    assert marker in json.loads(backend.encode_body(grounding, "m"))["messages"][0]["content"][1]["text"]
