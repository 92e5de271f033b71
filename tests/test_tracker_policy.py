"""Failure policy and sanity checks of r1track.tracker, with a scripted in-process backend.

Expected windows and boxes are worked out here by hand from the crop rule
(side = ceil(sqrt(w*h) * factor), top-left = round(centre - side/2), scale = 336 / side)."""

import math
from collections import Counter

import numpy as np
import pytest

from r1track.backends import Backend, BackendError, Reply
from r1track.boxes import xywh_to_xyxy
from r1track.prompts import THINK_WRAPPER
from r1track.tracker import FAULT_STATUSES, Tracker, TrackerInitError, TrackerParams

W, H = 640, 480
INIT = (300.0, 200.0, 40.0, 40.0)  # centre (320, 220); window 160 at factor 4 -> x0 240, y0 140, scale 2.1


def frame(seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)


class Scripted(Backend):
    """Answers from a list: a string, a BackendError to raise, or a callable(request) -> str."""

    name = "scripted"

    def __init__(self, items):
        self.items = list(items)
        self.requests = []

    def complete(self, request):
        self.requests.append(request)
        item = self.items.pop(0)
        if isinstance(item, BaseException):
            raise item
        if callable(item):
            item = item(request)
        return Reply(item)


def answer_for(box_xywh_orig):
    """A callable reply: the given original-frame box written in the request's crop pixels."""

    def make(request):
        t = request.search_transform
        x, y, w, h = box_xywh_orig
        x1, y1 = (x - t.x0) * t.out_side / t.side, (y - t.y0) * t.out_side / t.side
        x2, y2 = (x + w - t.x0) * t.out_side / t.side, (y + h - t.y0) * t.out_side / t.side
        return "[" + ",".join(str(int(round(v))) for v in (x1, y1, x2, y2)) + "]"

    return make


def window_of(box_xywh, factor, out=336):
    x, y, w, h = box_xywh
    side = math.ceil(math.sqrt(w * h) * factor)
    return round(x + w / 2 - side / 2), round(y + h / 2 - side / 2), side


def test_fallback_keeps_last_box_in_original_frame_and_recentres():
    # frame 1: the target moved to (320, 210, 40, 40); in frame 1's crop that is exactly
    # ((320-240)*2.1, (210-140)*2.1, (360-240)*2.1, (250-140)*2.1) = [168,147,252,231]
    backend = Scripted(["[168,147,252,231]", "garbage", "[168,147,252,231]"])
    tr = Tracker(backend, TrackerParams())
    tr.initialize(frame(0), INIT)
    r1 = tr.track(frame(1))
    assert r1.status == "ok"
    assert r1.box_xywh_orig == pytest.approx((320.0, 210.0, 40.0, 40.0), abs=1e-9)
    r2 = tr.track(frame(2))
    assert r2.status == "no-box"
    # the last accepted box, in original pixels -- not frame 1's crop coordinates read in frame 2's crop,
    # which would be (168/2.1 + 260, 147/2.1 + 150, ...) = (340, 220, 40, 40)
    assert r2.box_xywh_orig == pytest.approx((320.0, 210.0, 40.0, 40.0), abs=1e-9)
    # frame 3 is searched around that box (centre 340, 230) with the widened factor 5: side 200
    tr.track(frame(3))
    t = backend.requests[2].search_transform
    assert (t.x0, t.y0, t.side) == (240.0, 130.0, 200.0)
    assert backend.requests[1].search_transform.x0 == 260.0  # frame 2 was centred on frame 1's answer
    # the same reply text in the wider crop now means a different original box: scale 336/200
    assert tr.box_xywh_orig == pytest.approx((168 / 1.68 + 240, 147 / 1.68 + 130, 84 / 1.68, 84 / 1.68))


def test_search_factor_widens_per_failure_up_to_limit_and_resets():
    n_fail = 6
    backend = Scripted(["nothing"] * n_fail + [answer_for(INIT)] + ["[1,2,3]"])
    tr = Tracker(backend, TrackerParams(search_factor=4.0, widen_step=1.0, max_search_factor=8.0))
    tr.initialize(frame(), INIT)
    results = [tr.track(frame(i)) for i in range(1, n_fail + 3)]
    assert [r.search_factor for r in results] == [4, 5, 6, 7, 8, 8, 8, 4]
    assert [r.status for r in results] == ["no-box"] * n_fail + ["ok", "no-box"]
    for req, f in zip(backend.requests, [4, 5, 6, 7, 8, 8, 8, 4]):
        x0, y0, side = window_of(INIT, f)
        assert (req.search_transform.x0, req.search_transform.y0, req.search_transform.side) == (x0, y0, side)
    assert tr.consecutive_failures == 1
    assert tr.counts == Counter({"no-box": n_fail + 1, "ok": 1})
    assert tr.faults == n_fail + 1


@pytest.mark.parametrize(
    "reply, status",
    [
        ("[400,400,500,500]", "outside-crop"),  # entirely beyond the 336-px crop
        ("[300,100,400,200]", "outside-crop"),  # 36 % inside
        ("[100,100,100,150]", "empty-box"),
        ("[100,100,100.5,150]", "empty-box"),  # thinner than min_box_px
        ("[0,0,300,300]", "scale-jump"),  # 300 / 84 > 2
        ("[160,160,170,170]", "scale-jump"),  # 10 / 84 < 1/2
        ("I cannot see it", "no-box"),
        ("", "no-box"),
        ("[252,231,168,147]", "ok"),  # swapped corners are put in order
        ("```json\n[{\"bbox_2d\": [168, 147, 252, 231], \"label\": \"x\"}]\n```", "ok"),
    ],
)
def test_sanity_checks(reply, status):
    tr = Tracker(Scripted([reply]), TrackerParams())
    tr.initialize(frame(), INIT)
    r = tr.track(frame(1))
    assert r.status == status
    assert r.reply == reply
    assert tr.counts == Counter({status: 1})
    if status != "ok":
        assert r.box_xywh_orig == INIT
        assert r.status in FAULT_STATUSES and r.detail
    else:
        assert r.box_xywh_orig == pytest.approx((320.0, 210.0, 40.0, 40.0))


def test_box_in_the_padding_is_outside_the_image():
    init = (0.0, 0.0, 40.0, 40.0)  # window x0 = y0 = -60: crop pixels < 126 are padding
    tr = Tracker(Scripted(["[0,0,100,100]", "[0,0,300,300]"]), TrackerParams(max_scale_change=100))
    tr.initialize(frame(), init)
    r = tr.track(frame(1))
    assert r.status == "outside-image"
    r = tr.track(frame(2))  # partly on the image: accepted and clipped to it
    assert r.status == "ok"
    x, y, w, h = r.box_xywh_orig
    assert x == 0 and y == 0 and w > 0 and h > 0
    # frame 2: widened factor 5 -> side 200 around (20, 20): x0 = -80
    assert xywh_to_xyxy(r.box_xywh_orig).x2 == pytest.approx(300 / 336 * 200 - 80)


def test_reported_box_is_clipped_to_the_image():
    init = (600.0, 440.0, 40.0, 40.0)
    # window: centre (620, 460), side 160 -> x0 540, y0 380; the answer reaches past the right/bottom edges
    tr = Tracker(Scripted(["[100,100,300,300]"]), TrackerParams(max_scale_change=100))
    tr.initialize(frame(), init)
    r = tr.track(frame(1))
    assert r.status == "ok"
    x1, y1, x2, y2 = xywh_to_xyxy(r.box_xywh_orig)
    assert (x2, y2) == (W, H)
    assert (x1, y1) == pytest.approx((540 + 100 / 2.1, 380 + 100 / 2.1))


def test_think_mode_reads_answer_and_can_require_the_format():
    ok = "<think>the bag moved right</think><answer>[168,147,252,231]</answer>"
    loose = "[168,147,252,231]"
    tr = Tracker(Scripted([ok, loose]), TrackerParams(think=True, require_think_format=True))
    tr.initialize(frame(), INIT)
    assert tr.track(frame(1)).status == "ok"
    assert tr.track(frame(2)).status == "bad-format"
    req = tr.backend.requests[0]
    assert req.think and req.sampling.max_tokens == 1024 and req.sampling.regex is None
    assert req.chat_content(["a", "b"])[-1]["text"].startswith(THINK_WRAPPER)


def test_backend_errors_non_fatal_counted_fatal_raised_and_tracker_stays_usable():
    errs = [
        BackendError("http://x/v1/chat/completions: timeout", kind="timeout"),
        BackendError("http://x/v1/chat/completions: HTTP 404", kind="client-error", fatal=True),
        answer_for(INIT),
    ]
    tr = Tracker(Scripted(errs), TrackerParams())
    tr.initialize(frame(), INIT)
    r = tr.track(frame(1))
    assert r.status == "backend-error" and "timeout" in r.detail and r.reply is None
    assert r.box_xywh_orig == INIT
    with pytest.raises(BackendError, match="404"):
        tr.track(frame(2))
    assert tr.track(frame(3)).status == "ok"
    assert tr.counts == Counter({"backend-error": 1, "ok": 1})


def test_one_pending_request_per_tracker():
    tr = Tracker(Scripted([answer_for(INIT)]), TrackerParams())
    tr.initialize(frame(), INIT)
    req = tr.build_request(frame(1))
    with pytest.raises(RuntimeError, match="pending"):
        tr.build_request(frame(2))
    r = tr.apply_reply(req, tr.backend.complete(req))
    assert r.ok and r.frame_index == 1
    with pytest.raises(RuntimeError, match="not pending"):
        tr.apply_reply(req, Reply("[1,2,3,4]"))


def test_track_before_initialize_and_bad_boxes():
    tr = Tracker(Scripted([]), TrackerParams())
    with pytest.raises(RuntimeError, match="initialize"):
        tr.track(frame())
    for bad in [(1, 2, 0, 5), (float("nan"), 0, 5, 5), (1, 2, 3)]:
        with pytest.raises(TrackerInitError):
            tr.initialize(frame(), bad)
    with pytest.raises(TrackerInitError, match="cannot initialise from text"):
        tr.initialize(frame(), text="the dog")


def test_memory_uses_last_good_search_crop_and_its_answer():
    backend = Scripted([answer_for((320, 210, 40, 40)), "junk", answer_for((330, 215, 40, 40))])
    tr = Tracker(backend, TrackerParams(memory=True))
    tr.initialize(frame(0), INIT)
    for i in range(1, 4):
        tr.track(frame(i))
    r0, r1, r2 = backend.requests
    assert [len(r.images) for r in backend.requests] == [3, 3, 3]
    assert all(r.prompt_version == "r1track-mem-v1" for r in backend.requests)
    assert r0.images[1] is r0.images[0]  # before any good answer the template is the memory
    assert r1.images[1].image is r0.images[2].image  # frame 1's search crop became the memory
    assert r1.images[1].cache is r0.images[2].cache  # so its encoding is reused, not redone
    assert r1.boxes_xyxy_model[1] == pytest.approx((168, 147, 252, 231))
    assert r2.images[1].image is r0.images[2].image  # a failed frame does not replace the memory
    assert [i.role for i in r2.images] == ["template", "memory", "search"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(crop_size=330), "308 or 336"),
        (dict(crop_size=336, model_max_pixels=224 * 224), "outside the processor bounds"),
        (dict(prompt_version="r1track-mem-v1"), "2-image"),
        (dict(memory=True, memory_prompt_version="r1track-v1"), "3-image"),
        (dict(search_factor=5.0, max_search_factor=4.0), "max_search_factor"),
        (dict(template_factor=0), "template_factor"),
        (dict(max_scale_change=0.5), "max_scale_change"),
        (dict(prompt_version="r1track-v9"), "unknown prompt version"),
    ],
)
def test_params_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrackerParams(**kwargs)


def test_sampling_defaults_and_structured_output():
    p = TrackerParams()
    assert (p.prompt_version, p.think, p.crop_size, p.template_factor, p.search_factor, p.temperature) == (
        "r1track-v1", False, 336, 4.0, 4.0, 0.0)
    assert p.sampling().regex is None and p.sampling().max_tokens == 48
    s = TrackerParams(structured_output=True).sampling()
    assert s.regex == r"\[\d{1,3},\d{1,3},\d{1,3},\d{1,3}\]"
    assert TrackerParams(structured_output=True, think=True).sampling().regex is None
    assert TrackerParams(max_tokens=7).sampling().max_tokens == 7
