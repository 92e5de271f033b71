"""Issue 25, hostile answers: every number a reply can hold -- huge, tiny, +-inf, NaN, 1e308 corners, sides whose
product overflows -- is an accepted box or a counted fallback, and every overlap, metric and reward computed from
it stays finite and correct over the whole double range (no exception, no numpy overflow warning).

Property tests draw from the full double range (``st.floats()`` with NaN and infinities), mixed with the values
that broke things (``1e308``, ``1e155``: ``1e155 * 1e155`` overflows, ``1e-200``: its square underflows). Numpy
warnings are errors here, so an unguarded overflow fails the test as an exception would. The scale properties
check the arithmetic, not just its range: IoU and GIoU do not change when both boxes are scaled by 2**k, so a pair
of everyday boxes scaled to 1e300 or 1e-300 must score exactly as at pixel scale.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from budget import examples
from r1track import metrics
from r1track.backends import Backend, Reply
from r1track.backends.ncc import NCCBackend
from r1track.boxes import (
    area_xywh,
    area_xyxy,
    giou_xyxy,
    giou_xyxy_array,
    iou_xywh,
    iou_xywh_array,
    iou_xyxy,
)
from r1track.reward import SCORE_KEYS, read_ground_truth, score_reply
from r1track.synthetic import make_sequence
from r1track.tracker import FAULT_STATUSES, Status, Tracker, TrackerInitError, TrackerParams

EXTREME = [1e308, -1e308, 1.7976931348623157e308, 1e155, -1e155, 1e200, 1e-200, -1e-200, 5e-324, 1e-310,
           0.0, -0.0, 1.0, 10.0, 100.0, 3e38]
any_float = st.one_of(st.floats(), st.sampled_from(EXTREME + [math.inf, -math.inf, math.nan]))
finite_float = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(EXTREME))
any_box = st.tuples(any_float, any_float, any_float, any_float)

# everyday boxes, dyadic (exact under scaling by powers of two): coordinates and sizes multiples of 1/1024
coord = st.integers(-(10**6), 10**6).map(lambda v: v / 1024)
size = st.integers(1, 10**6).map(lambda v: v / 1024)
everyday_xywh = st.tuples(coord, coord, size, size)
shift = st.integers(-1000, 1000)  # 2**1000 * 1e3 < 1.8e308 and 2**-1000 / 1024 is still a normal double


@pytest.fixture(autouse=True)
def numpy_warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="warn", invalid="warn", divide="warn", under="ignore"):  # such a warning: an error
            yield


def scaled(box, k):
    return tuple(math.ldexp(v, k) for v in box)


def xyxy(b):
    return (b[0], b[1], b[0] + b[2], b[1] + b[3])


# -- overlaps -----------------------------------------------------------------------------------------------

@settings(max_examples=examples(2000))
@given(everyday_xywh, everyday_xywh, shift)
def test_iou_and_giou_are_the_same_at_every_scale(a, b, k):
    """Overflow (k near 1000: x + w, w * h and the union pass 1e308) and underflow (k near -1000: the areas
    fall below the smallest double) must not change a single bit of the answer."""
    iou, giou = iou_xywh(a, b), giou_xyxy(xyxy(a), xyxy(b))
    assert iou_xywh(scaled(a, k), scaled(b, k)) == iou
    assert iou_xyxy(scaled(xyxy(a), k), scaled(xyxy(b), k)) == iou_xyxy(xyxy(a), xyxy(b))
    assert giou_xyxy(scaled(xyxy(a), k), scaled(xyxy(b), k)) == giou
    big_a, big_b = np.array([scaled(a, k)]), np.array([scaled(b, k)])
    assert iou_xywh_array(big_a, big_b)[0] == pytest.approx(iou, abs=1e-12)
    assert giou_xyxy_array(np.array([scaled(xyxy(a), k)]), np.array([scaled(xyxy(b), k)]))[0] == pytest.approx(giou, abs=1e-12)
    assert iou_xywh(scaled(a, k), scaled(a, k)) == 1.0  # a box on itself, even at 1e300 or 1e-300


@settings(max_examples=examples(2000))
@given(any_box, any_box)
def test_overlaps_and_areas_are_total_over_the_double_range(a, b):
    for v in (iou_xywh(a, b), iou_xyxy(a, b)):
        assert 0.0 <= v <= 1.0
    assert -1.0 <= giou_xyxy(a, b) <= 1.0
    arr = iou_xywh_array(np.array([a]), np.array([b]))
    assert arr.shape == (1,) and 0.0 <= arr[0] <= 1.0 and arr[0] == pytest.approx(iou_xywh(a, b), abs=1e-12)
    g = giou_xyxy_array(np.array([a]), np.array([b]))[0]
    assert -1.0 <= g <= 1.0 and g == pytest.approx(giou_xyxy(a, b), abs=1e-12)
    for area, (w, h) in ((area_xyxy(a), (a[2] - a[0], a[3] - a[1])), (area_xywh(a), (a[2], a[3]))):
        assert math.isfinite(area) and area >= 0.0
        if all(math.isfinite(v) for v in a):  # positive sides <=> positive area, whatever w * h would be
            assert (area > 0.0) == (w > 0 and h > 0)


# -- metrics -------------------------------------------------------------------------------------------------

def boxes(n):
    return st.lists(any_box, min_size=n, max_size=n).map(lambda rows: np.array(rows, dtype=np.float64).reshape(n, 4))


@settings(max_examples=examples(600), suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 6).flatmap(lambda n: st.tuples(boxes(n), boxes(n), st.lists(any_float, min_size=n, max_size=n),
                                                      st.lists(st.booleans(), min_size=n, max_size=n))),
       st.tuples(st.integers(1, 100_000), st.integers(1, 100_000)))
def test_every_metric_takes_any_double(data, image_size):
    pred, gt, presence, visible = data
    ious = metrics.got10k_sequence_ious(pred, gt, None, image_size)
    assert np.isfinite(ious).all() and ((ious >= 0) & (ious <= 1)).all()
    got = metrics.got10k_scores(ious, np.abs(np.nan_to_num(np.array(presence))))
    for v in (got.ao, got.sr50, got.sr75):
        assert 0.0 <= v <= 1.0
    assert math.isfinite(got.speed_fps)
    curves = metrics.otb_sequence_curves(pred, gt, np.array(visible))
    for c in (curves.success, curves.precision, curves.norm_precision):
        assert np.isfinite(c).all() and ((c >= 0) & (c <= 1)).all()
    otb = metrics.otb_scores({"s": curves})
    for v in (otb.auc, otb.precision20, otb.norm_precision20):
        assert 0.0 <= v <= 1.0
    lt = metrics.longterm_scores({"s": (pred, gt, np.array(visible), np.array(presence))})
    for v in (lt.f_score, lt.precision, lt.recall):
        assert 0.0 <= v <= 1.0


@settings(max_examples=examples(600))
@given(st.lists(st.tuples(everyday_xywh, everyday_xywh), min_size=2, max_size=5), shift)
def test_otb_curves_are_the_same_at_every_scale(pairs, k):
    """Success (IoU) and normalised precision (centre error / GT size) have no unit: boxes scaled to 1e300 or
    1e-300 score exactly as at pixel scale (precision in pixels does not, by definition)."""
    pred = np.array([p for p, _ in pairs])
    gt = np.array([g for _, g in pairs])
    base = metrics.otb_sequence_curves(pred, gt)
    big = metrics.otb_sequence_curves(np.ldexp(pred, k), np.ldexp(gt, k))
    assert np.array_equal(big.success, base.success)
    assert np.allclose(big.norm_precision, base.norm_precision)


# -- the tracker's map-back ----------------------------------------------------------------------------------

CROP = {"qwen2.5-vl": 112, "qwen3-vl": 256}  # the smallest usual crop side of each family (x28, x32)


@pytest.fixture(scope="module", params=["qwen2.5-vl", "qwen3-vl"])
def tracker_on_a_frame(request):
    """A tracker started on a synthetic frame (pixels for qwen2.5-vl, the 0-1000 grid for qwen3-vl)."""
    seq = make_sequence("s", n_frames=2, size=(320, 240), seed=3)
    tracker = Tracker(NCCBackend(), TrackerParams(crop_size=CROP[request.param], model_family=request.param))
    tracker.initialize(seq.frames[0], seq.boxes_xywh_orig[0])
    return tracker, seq.frames[1]


def reply_text(values) -> str:
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


@settings(max_examples=examples(1000), suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
          deadline=None)
@given(any_box)
def test_any_number_in_a_reply_is_a_box_or_a_counted_fallback(tracker_on_a_frame, values):
    tracker, frame = tracker_on_a_frame
    before = sum(tracker.counts.values())
    request = tracker.build_request(frame, prepare=False)
    w, h = request.image_size
    result = tracker.apply_reply(request, Reply(reply_text(values)))  # never raises
    assert sum(tracker.counts.values()) == before + 1 and tracker.counts[result.status] >= 1
    x, y, bw, bh = result.box_xywh_orig
    assert all(math.isfinite(v) for v in (x, y, bw, bh)) and bw > 0 and bh > 0
    assert 0 <= x and x + bw <= w and 0 <= y and y + bh <= h
    if result.status != Status.OK:
        assert result.status in FAULT_STATUSES


@pytest.mark.parametrize("family", ["qwen2.5-vl", "qwen3-vl"])
@pytest.mark.parametrize("answer, status", [
    ("[-1e308,0,10,10]", Status.OUTSIDE_CROP),  # the reproductions: ZeroDivisionError before
    ("[0,0,1e155,1e155]", Status.OUTSIDE_CROP),
    ("[1e308,1e308,-1e308,-1e308]", Status.OUTSIDE_CROP),
    ("[-1e308,-1e308,1e308,1e308]", Status.OUTSIDE_CROP),
    ("[0,0,1e309,10]", Status.NO_BOX),  # past the double range as written
    ("[nan,0,10,10]", Status.NO_BOX),
])
def test_overflowing_answers_are_counted_fallbacks(family, answer, status):
    seq = make_sequence("s", n_frames=2, size=(320, 240), seed=3)
    tracker = Tracker(NCCBackend(), TrackerParams(crop_size=CROP[family], model_family=family))
    tracker.initialize(seq.frames[0], seq.boxes_xywh_orig[0])
    request = tracker.build_request(seq.frames[1], prepare=False)
    result = tracker.apply_reply(request, Reply(answer))
    assert result.status == status and tracker.counts == {status: 1}
    assert tuple(result.box_xywh_orig) == tuple(seq.boxes_xywh_orig[0])  # the last box kept


class _Grounding(Backend):
    """No model: only says it can ground, so the tracker builds the grounding request (geometry only)."""

    supports_grounding = True


@pytest.fixture(scope="module", params=["qwen2.5-vl", "qwen3-vl"])
def grounding_request(request):
    seq = make_sequence("s", n_frames=1, size=(320, 240), seed=3)
    tracker = Tracker(_Grounding(), TrackerParams(crop_size=CROP[request.param], model_family=request.param))
    return tracker, tracker.build_grounding_request(seq.frames[0], "the target")


@settings(max_examples=examples(1000), suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(any_box)
def test_a_grounding_answer_of_any_numbers_is_a_box_on_the_image_or_refused(grounding_request, values):
    tracker, request = grounding_request
    try:
        x, y, w, h = tracker.apply_grounding_reply(request, Reply(reply_text(values)))
    except TrackerInitError:
        return
    W, H = request.image_size
    assert w > 0 and h > 0 and 0 <= x and x + w <= W and 0 <= y and y + h <= H


# -- the reward ----------------------------------------------------------------------------------------------

@settings(max_examples=examples(2000))
@given(any_box, st.one_of(any_box, st.tuples(finite_float, finite_float, finite_float, finite_float)),
       st.sampled_from(["r1track", "giou", "iou"]))
def test_the_reward_of_any_numbers_is_finite_and_in_range(answer, gt, shaping):
    scores = score_reply(reply_text(answer), list(gt), shaping=shaping)
    assert set(scores) == set(SCORE_KEYS) and all(isinstance(v, float) and math.isfinite(v) for v in scores.values())
    assert -1.0 <= scores["giou"] <= 1.0 and 0.0 <= scores["iou"] <= 1.0


@settings(max_examples=examples(1000))
@given(everyday_xywh, everyday_xywh, st.integers(-1000, 990))
def test_the_reward_is_the_same_at_every_scale(a, b, k):
    """A ground truth whose area overflows (1e200 x 1e200) is still a box, and the overlap terms do not move."""
    base = score_reply(reply_text(xyxy(a)), list(xyxy(b)), shaping="giou")
    big_gt = scaled(xyxy(b), k)
    assume(all(abs(v) < 1e300 for v in big_gt))
    assert read_ground_truth(list(big_gt)) is not None
    big = score_reply(reply_text(scaled(xyxy(a), k)), list(big_gt), shaping="giou")
    assert big["iou"] == base["iou"] and big["giou"] == base["giou"]
