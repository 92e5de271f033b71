"""Search-window policies (r1track.window) and their motion models (r1track.motion).

Expected windows are worked out here from the crop rule (side = ceil(s * factor), top-left = round(centre -
side / 2)) and from the models' documented rules, not read back from the code."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from budget import examples
from r1track.backends import Backend, Reply
from r1track.backends.oracle import OracleBackend
from r1track.crop import plan_window
from r1track.motion import KALMAN_GATE, KalmanModel, VelocityModel
from r1track.tracker import Status, Tracker, TrackerParams
from r1track.window import ADAPTIVE_SLACK, MAX_SHIFT, SIZE_RANGE, WINDOW_POLICIES, local_window, motion_model, widened_search_factor

PARAMS = {p: TrackerParams(window_policy=p) for p in WINDOW_POLICIES}


def window_of(centre, size, factor):
    """(x0, y0, side) of the crop rule for a window centred on ``centre`` with side ``size * factor``."""
    side = math.ceil(size * factor)
    return round(centre[0] - side / 2), round(centre[1] - side / 2), side


def contains(window, point) -> bool:
    return window.x0 <= point[0] <= window.x0 + window.side and window.y0 <= point[1] <= window.y0 + window.side


def usable(box) -> bool:
    """What the tracker's answer checks let through: finite, positive width and height."""
    return box is not None and all(math.isfinite(v) for v in box) and box[2] > 0 and box[3] > 0


def history_windows(policy: str, start, events, params: TrackerParams | None = None, image_size=None):
    """Feed a motion model like the tracker does; yield (last accepted box, failures, window, factor) per frame.
    The model sees every event as it is (odd boxes too); the last box changes only on a usable one."""
    p = params or PARAMS[policy]
    model = motion_model(policy)
    last, failures = tuple(start), 0
    if model is not None:
        model.start(last)
    for event in events:
        prediction = model.predict() if model is not None else None
        window, factor = local_window(last, failures, p, prediction, image_size)
        yield last, failures, window, factor
        if model is not None:
            model.observe(event)
        if usable(event):
            last, failures = tuple(event), 0
        else:
            failures += 1


# ---------------------------------------------------------------- the default is R1-Track's rule, unchanged
def test_last_box_is_the_crop_rule_around_the_last_box_widened_by_failures():
    box = (300.0, 200.0, 40.0, 40.0)  # centre (320, 220), size 40
    for failures, factor in ((0, 4.0), (1, 5.0), (3, 7.0), (9, 8.0)):
        window, used = local_window(box, failures, PARAMS["last-box"], None)
        assert used == factor
        assert (window.x0, window.y0, window.side, window.out_side) == (*window_of((320, 220), 40, factor), 336)


def test_unknown_policy_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="unknown window_policy 'fast'.*last-box.*kalman-adaptive"):
        TrackerParams(window_policy="fast")
    assert TrackerParams().window_policy == "last-box"


# ---------------------------------------------------------------- constant velocity
def test_constant_velocity_centres_on_last_box_plus_velocity_and_resets_on_a_fallback():
    box = lambda x: (x, 100.0, 20.0, 20.0)  # noqa: E731 - size 20, centre (x + 10, 110)
    wins = [w for _, _, w, _ in history_windows("constant-velocity", box(100), [box(108), box(116), None, box(130), None])]
    # frame 1: no velocity yet -> on the start box; frame 2: v = 8 measured, centre 118 + 8
    assert (wins[0].x0, wins[0].y0, wins[0].side) == window_of((110, 110), 20, 4)
    assert (wins[1].x0, wins[1].y0, wins[1].side) == window_of((126, 110), 20, 4)
    # frame 3: v = 0.5 * 8 + 0.5 * 8 = 8 -> centre 126 + 8
    assert (wins[2].x0, wins[2].side) == window_of((134, 110), 20, 4)[::2]
    # frame 4 after the fallback: velocity reset -> on the last box (centre 126), widened to factor 5
    assert (wins[3].x0, wins[3].side) == window_of((126, 110), 20, 5)[::2]
    # frame 5: the box 2 frames after the last one measures (140 - 126) / 2 = 7 per frame, taken as it is
    assert (wins[4].x0, wins[4].side) == window_of((147, 110), 20, 4)[::2]


def test_constant_velocity_forgets_a_jump():
    box = lambda x: (x, 100.0, 20.0, 20.0)  # noqa: E731
    # steady 8 px per frame, then a box 100 px off (a jump to a distractor: 5 sizes against VELOCITY_JUMP = 1)
    wins = [w for _, _, w, _ in history_windows("constant-velocity", box(100), [box(108), box(116), box(216), box(224), box(232)])]
    assert (wins[3].x0, wins[3].side) == window_of((226, 110), 20, 4)[::2]  # v reset: on the jumped-to box
    assert (wins[4].x0, wins[4].side) == window_of((234 + 8, 110), 20, 4)[::2]  # measured anew: 8 px per frame


def test_a_huge_velocity_moves_the_window_at_most_max_shift_half_sides():
    wins = [w for _, _, w, _ in history_windows("constant-velocity", (0, 0, 10, 10), [(5000, -9000, 10, 10), None])]
    w = wins[1]  # velocity (5000, -9000) per frame predicted from centre (5005, -8995)
    limit = MAX_SHIFT * 0.5 * 40
    assert (w.x0, w.y0, w.side) == window_of((5005 + limit, -8995 - limit), 10, 4)


# ---------------------------------------------------------------- adaptive area
def test_adaptive_grows_the_factor_with_speed_within_the_maximum_and_shrinks_back():
    xs = [100, 110, 120, 130, 130, 130, 130, 130, 130]
    boxes = [(x, 50.0, 20.0, 20.0) for x in xs]
    out = list(history_windows("adaptive", boxes[0], boxes[1:]))
    factors = [f for *_, f in out]

    def grown(speed):  # the documented rule: the half side gains the speed beyond ADAPTIVE_SLACK sizes
        return 4 + 2 * max(0.0, speed - ADAPTIVE_SLACK * 20) / 20

    # speed 10 px per frame, size 20, once measured (from the 2nd window on)
    assert factors[:4] == pytest.approx([4.0, grown(10), grown(10), grown(10)]) and grown(10) > 4
    # the target stops: the smoothed speed halves each frame, the factor shrinks back to 4
    assert factors[4:7] == pytest.approx([grown(5), grown(2.5), grown(1.25)]) and factors[-1] == 4.0
    for (last, _, w, f) in out:  # centred on the last box
        assert (w.x0, w.y0, w.side) == window_of((last[0] + 10, 60), 20, f)
    fast = [(100.0 + 300 * i, 50.0, 20.0, 20.0) for i in range(4)]
    assert max(f for *_, f in history_windows("adaptive", fast[0], fast[1:])) == PARAMS["adaptive"].max_search_factor


# ---------------------------------------------------------------- Kalman filter
def test_kalman_learns_a_constant_velocity():
    model = KalmanModel()
    model.start((0.0, 0.0, 30.0, 30.0))
    for i in range(1, 30):
        model.observe((12.0 * i, -6.0 * i, 30.0, 30.0))
    pred = model.predict()
    assert pred.cx == pytest.approx(15 + 12 * 30, abs=0.5) and pred.cy == pytest.approx(15 - 6 * 30, abs=0.5)
    assert pred.size == pytest.approx(30, rel=1e-3) and model.resets == 0
    w, factor = local_window((12.0 * 29, -6.0 * 29, 30, 30), 0, PARAMS["kalman"], pred)
    assert factor == 4.0 and w.side in (120, 121) and abs(w.x0 + w.side / 2 - (15 + 12 * 30)) <= 1


def test_kalman_resets_on_an_implausible_jump_and_predicts_through_misses():
    model = KalmanModel()
    model.start((0.0, 0.0, 20.0, 20.0))
    for i in range(1, 10):
        model.observe((5.0 * i, 0.0, 20.0, 20.0))
    before = model.predict()
    model.observe(None)  # a fallback: prediction only
    after = model.predict()
    assert after.cx == pytest.approx(before.cx + 5, abs=0.5) and after.spread > before.spread
    model.observe((2000.0, 900.0, 20.0, 20.0))  # a jump to a distractor
    assert model.resets == 1
    np.testing.assert_allclose(model.state[:2], (2010.0, 910.0))
    np.testing.assert_allclose(model.state[3:], 0.0)


def test_kalman_gate_is_the_chi_square_point():
    # 3 degrees of freedom, 99.9 %: 16.266 (a table value, not the code's)
    assert KALMAN_GATE == pytest.approx(16.266, abs=0.01)


def test_kalman_size_is_kept_within_the_size_range_of_the_last_box():
    model = KalmanModel()
    model.start((0.0, 0.0, 20.0, 20.0))
    model.observe((0.0, 0.0, 20.0, 20.0))
    pred = model.predict()
    big = pred.__class__(pred.cx, pred.cy, 1e6, pred.spread)
    w, factor = local_window((0.0, 0.0, 20.0, 20.0), 0, PARAMS["kalman"], big)
    assert w.side == math.ceil(20 * SIZE_RANGE * factor)


# ---------------------------------------------------------------- properties
finite = st.floats(-1e5, 1e5, allow_nan=False)
sizes = st.floats(1.0, 2e3, allow_nan=False)
boxes = st.tuples(finite, finite, sizes, sizes)
odd = st.sampled_from([None, (0.0, 0.0, 0.0, 5.0), (math.nan, 1.0, 4.0, 4.0), (1.0, 1.0, math.inf, 3.0), (1e300, -1e300, 1e-3, 1e-3)])
events = st.lists(st.one_of(boxes, odd), max_size=40)


@settings(max_examples=examples(400))
@given(policy=st.sampled_from(WINDOW_POLICIES), start=boxes, history=events,
       image=st.one_of(st.none(), st.tuples(st.integers(1, 4000), st.integers(1, 4000))))
def test_windows_stay_finite_and_hold_the_last_box_centre_for_any_history(policy, start, history, image):
    for last, failures, window, factor in history_windows(policy, start, history, image_size=image):
        assert all(math.isfinite(v) for v in (window.x0, window.y0, window.side, factor))
        assert window.side >= 1 and window.out_side == PARAMS[policy].crop_size
        assert widened_search_factor(4.0, 1.0, 8.0, failures) <= factor <= 8.0
        assert contains(window, (last[0] + last[2] / 2, last[1] + last[3] / 2))


@settings(max_examples=examples(400))
@given(policy=st.sampled_from(WINDOW_POLICIES), box=boxes, n=st.integers(0, 20), misses=st.lists(st.booleans(), max_size=20))
def test_a_motionless_target_is_searched_around_its_last_box(policy, box, n, misses):
    history = [None if m else box for m in misses[:n]]
    for last, failures, window, factor in history_windows(policy, box, history):
        cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
        assert contains(window, (cx, cy))
        if policy in ("last-box", "constant-velocity", "adaptive"):  # zero velocity: exactly the last-box window
            assert (window.x0, window.y0, window.side) == tuple(
                getattr(plan_window(box, factor, 336, check_side=False), k) for k in ("x0", "y0", "side"))


# ---------------------------------------------------------------- in the tracker
class Jumpy(Backend):
    """Answers in the crop: the truth, a jump to the crop's far corner, garbage, or an absent answer, in turn."""

    name = "jumpy"

    def __init__(self, gt):
        self.gt, self.n = gt, 0

    def complete(self, request):
        self.n += 1
        t = request.search_transform
        x, y, w, h = self.gt[request.frame_index]
        kind = self.n % 4
        if kind == 1:
            return Reply("[1,1,30,30]")  # a jump to the top-left corner of the crop
        if kind == 2:
            return Reply("no idea")
        x1, y1 = (x - t.x0) * t.scale, (y - t.y0) * t.scale
        return Reply(f"[{x1:.0f},{y1:.0f},{x1 + w * t.scale:.0f},{y1 + h * t.scale:.0f}]")


@pytest.mark.parametrize("policy", WINDOW_POLICIES)
def test_tracker_windows_stay_finite_through_jumps_fallbacks_and_missing_frames(policy):
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 255, (240, 320, 3), dtype=np.uint8) for _ in range(4)]
    gt = np.array([(40 + 13 * i, 50 + 7 * (i % 5), 30, 24) for i in range(40)], dtype=float)
    tracker = Tracker(Jumpy(gt), PARAMS[policy])
    seq = [frames[i % 4] if i % 7 != 5 else None for i in range(40)]  # a gap in the numbering every 7th frame
    results = list(tracker.run(seq, box_xywh=gt[0]))
    assert len(results) == 40
    statuses = {r.status for r in results}
    assert {Status.OK, Status.NO_BOX, Status.MISSING_FRAME} <= statuses
    for r in results:
        assert np.isfinite(r.search_window_xyxy_orig).all() and math.isfinite(r.search_factor)
        if r.status != Status.MISSING_FRAME:
            x1, y1, x2, y2 = r.search_window_xyxy_orig
            assert x2 - x1 == y2 - y1 >= 1 and r.search_crop_side == 336


@pytest.mark.parametrize("policy", WINDOW_POLICIES)
def test_every_policy_keeps_the_crop_side_and_the_prompt(policy):
    seq_gt = np.array([(60 + 9 * i, 80, 28, 28) for i in range(8)], dtype=float)
    frames = [np.zeros((240, 320, 3), np.uint8)] * 8
    requests = []

    class Spy(OracleBackend):
        def complete(self, request):
            requests.append(request)
            return super().complete(request)

    list(Tracker(Spy(seq_gt), PARAMS[policy]).run(frames, box_xywh=seq_gt[0]))
    assert {r.prompt_version for r in requests} == {"r1track-v1"}
    assert {im.image.size for r in requests for im in r.images} == {(336, 336)}


def test_a_target_speeding_up_is_followed_by_the_motion_policies_and_lost_by_last_box():
    # size 20, 30 px per frame for 4 frames, then 45 px per frame: more than the 4x window's half side (40) away
    # from the last box, so last-box loses it; the motion policies have learnt the velocity by then
    xs = [20.0]
    for i in range(1, 14):
        xs.append(xs[-1] + (30 if i <= 4 else 45))
    gt = np.array([(x, 100, 20, 20) for x in xs])
    frames = [np.zeros((240, 720, 3), np.uint8)] * len(xs)
    ok = {}
    for policy in WINDOW_POLICIES:
        results = list(Tracker(OracleBackend(gt), PARAMS[policy]).run(frames, box_xywh=gt[0]))
        ok[policy] = [r.status == Status.OK for r in results[1:]]
    assert ok["last-box"][:4] == [True] * 4 and not any(ok["last-box"][4:])
    for policy in ("constant-velocity", "kalman", "adaptive", "kalman-adaptive"):
        assert all(ok[policy]), policy


def test_velocity_model_ignores_unusable_boxes():
    model = VelocityModel()
    model.start((0.0, 0.0, 10.0, 10.0))
    model.observe((math.nan, 0.0, 10.0, 10.0))
    model.observe((10.0, 0.0, 10.0, 10.0))
    assert model.velocity == (5.0, 0.0)  # 10 px over the 2 frames since the start box
