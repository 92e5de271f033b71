"""Visibility-aware tracking with a scripted backend: absent answers, widening, re-detection over the whole
frame, recovery, presence scores in both result layouts, the vis preset.

Windows are worked out by hand: local window side = ceil(sqrt(w*h) * factor), top-left = round(centre -
side/2); the re-detection window of a 640 x 480 frame is the 640-px square from (0, -80) (longer side,
centred, letterboxed), resized to 504 px (qwen2.5-vl's largest training side): scale 504/640 = 0.7875."""

import numpy as np
import pytest

from test_tracker_policy import INIT, Scripted, frame

from r1track.presets import get_preset
from r1track.results import presence_path, read_presence, read_result, write_result
from r1track.tracker import FAULT_STATUSES, Status, Tracker, TrackerParams, full_frame_window

VIS = TrackerParams(prompt_version="r1track-vis-v1", redetect_after=2)


def test_absent_widen_redetect_recover():
    # the target reappears at (500, 60, 40, 40): in the re-detection crop that is
    # ((500-0)*0.7875, (60+80)*0.7875, (540)*0.7875, (100+80)*0.7875) = [393.75, 110.25, 425.25, 141.75]
    backend = Scripted(["[]", "[]", "[394,110,425,142]", "[168,147,252,231]"])
    tr = Tracker(backend, VIS)
    tr.initialize(frame(0), INIT)
    r1, r2 = tr.track(frame(1)), tr.track(frame(2))
    assert (r1.status, r2.status) == (Status.ABSENT, Status.ABSENT)
    assert r1.box_xywh_orig == r2.box_xywh_orig == pytest.approx(INIT)  # the last box is kept
    assert (r1.object_presence_score, r1.fault, r1.redetect) == (0.0, False, False)
    # frame 2 was searched widened (factor 4 + 1 = 5: side 200), not yet globally
    assert backend.requests[1].search_transform.side == 200 and not backend.requests[1].redetect
    r3 = tr.track(frame(3))  # 2 consecutive absents -> the whole frame
    t = backend.requests[2].search_transform
    assert backend.requests[2].redetect and r3.redetect
    assert (t.x0, t.y0, t.side, t.out_side) == (0, -80, 640, 504)
    assert r3.status == Status.OK and r3.object_presence_score == 1.0
    assert r3.box_xywh_orig == pytest.approx((394 / 0.7875, 110 / 0.7875 - 80, 31 / 0.7875, 32 / 0.7875))
    assert tr.redetections == 1 and tr.consecutive_failures == 0
    tr.track(frame(4))  # back to local search at factor 4 around the re-detected box
    t4 = backend.requests[3].search_transform
    assert not backend.requests[3].redetect and t4.side == 160
    assert tr.counts[Status.ABSENT] == 2 and tr.faults == 0


def test_failed_redetection_keeps_searching_globally_and_is_checked():
    # a re-detection answer in the letterbox padding (y < 80 * 0.7875 = 63) is refused like any answer
    backend = Scripted(["garbage", "[10,5,40,30]", "[]"])
    tr = Tracker(backend, TrackerParams(prompt_version="r1track-vis-v1", redetect_after=1))
    tr.initialize(frame(0), INIT)
    assert tr.track(frame(1)).status == Status.NO_BOX
    r2 = tr.track(frame(2))
    assert r2.redetect and r2.status == Status.OUTSIDE_IMAGE and r2.box_xywh_orig == pytest.approx(INIT)
    r3 = tr.track(frame(3))
    assert r3.redetect and r3.status == Status.ABSENT and tr.redetections == 0


def test_default_params_never_redetect_and_r1track_presets_are_off():
    backend = Scripted(["[]"] * 6)
    tr = Tracker(backend, TrackerParams())
    tr.initialize(frame(0), INIT)
    for k in range(6):
        tr.track(frame(k))
    assert not any(r.redetect for r in backend.requests)
    assert [r.search_transform.side for r in backend.requests] == [160, 200, 240, 280, 320, 320]
    for name in ("default", "v0", "think", "think_instruction_first", "memory", "ncc"):
        assert get_preset(name).params.redetect_after == 0 and not get_preset(name).params.visibility_aware
    vis = get_preset("vis").params
    assert vis.redetect_after > 0 and vis.visibility_aware


def test_structured_output_regex_admits_absent_only_for_visibility_prompts():
    assert TrackerParams(structured_output=True).sampling().regex == r"\[\d{1,3},\d{1,3},\d{1,3},\d{1,3}\]"
    regex = VIS.replace(structured_output=True).sampling().regex
    assert regex == r"(?:\[\]|\[\d{1,3},\d{1,3},\d{1,3},\d{1,3}\])"


def test_absent_is_not_a_fault_status():
    assert Status.ABSENT not in FAULT_STATUSES and Status.NO_BOX in FAULT_STATUSES


@pytest.mark.parametrize("size,side,x0,y0", [((640, 480), 640, 0, -80), ((300, 500), 500, -100, 0), ((7, 7), 7, 0, 0)])
def test_full_frame_window_covers_the_image(size, side, x0, y0):
    w = full_frame_window(size, 504)
    assert (w.x0, w.y0, w.side, w.out_side) == (x0, y0, side, 504)


@pytest.mark.parametrize("layout", ["got10k", "pytracking"])
def test_presence_scores_in_both_layouts(tmp_path, layout):
    boxes = np.array([[1, 2, 3, 4], [5, 6, 7, 8.5]])
    write_result(tmp_path, "seq", boxes, np.array([0.1, 0.2]), layout=layout, presence=np.array([1.0, 0.0]))
    path = presence_path(tmp_path, "seq", layout)
    expected = tmp_path / ("seq/seq_object_presence_scores.txt" if layout == "got10k" else "seq_object_presence_scores.txt")
    assert path == expected and expected.read_text() == "1\n0\n"
    assert read_presence(tmp_path, "seq", layout).tolist() == [1.0, 0.0]
    assert read_result(tmp_path, "seq", layout)[0].tolist() == boxes.tolist()
    write_result(tmp_path / "none", "seq", boxes, layout=layout)
    assert read_presence(tmp_path / "none", "seq", layout) is None
    with pytest.raises(ValueError):
        write_result(tmp_path, "bad", boxes, layout=layout, presence=np.array([1.0]))


def test_default_redetect_side_follows_a_small_processor_bound():
    # a server whose processor allows only 224 x 224 (the vLLM slow test's tiny model): the default
    # re-detection side shrinks to the crop side instead of refusing the settings; an explicit one is checked
    small = dict(crop_size=224, model_max_pixels=224 * 224)
    assert TrackerParams(**small).redetect_crop_size == 224
    assert TrackerParams(**small, redetect_after=3).redetect_crop_size == 224
    assert TrackerParams().redetect_crop_size == 504
    with pytest.raises(ValueError, match="504"):
        TrackerParams(**small, redetect_crop_size=504)
