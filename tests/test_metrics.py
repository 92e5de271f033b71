import numpy as np
import pytest

from r1track.metrics import (
    got10k_bounded_iou,
    got10k_scores,
    got10k_sequence_ious,
    otb_scores,
    otb_sequence_curves,
)


def test_otb_auc_hand_computed():
    gt = np.array([[0, 0, 10, 10]] * 4, dtype=float)
    pred = np.array(
        [
            [50, 50, 5, 5],  # frame 1: replaced by the initial box -> IoU 1
            [0, 0, 10, 10],  # IoU 1
            [0, 0, 10, 5],  # IoU 0.5
            [20, 20, 10, 10],  # IoU 0
        ],
        dtype=float,
    )
    c = otb_sequence_curves(pred, gt)
    # IoUs 1, 1, 0.5, 0. Thresholds 0, .05, ..., 1 with "IoU > t":
    #   t < 0.5 (10 thresholds: 0..0.45): 3 of 4 frames; 0.5 <= t < 1 (10 thresholds): 2 of 4; t = 1: 0 of 4
    expected_auc = (10 * 0.75 + 10 * 0.5 + 0.0) / 21
    assert otb_scores({"s": c}).auc == pytest.approx(expected_auc)
    # centre errors: 0, 0, 2.5, 28.28 px -> precision@20 = 3/4; normalised by (10,10): 0, 0, .25, 2.83 -> @0.2 = 2/4
    s = otb_scores({"s": c})
    assert s.precision20 == pytest.approx(0.75)
    assert s.norm_precision20 == pytest.approx(0.5)


def test_otb_invalid_frames_count_as_misses_and_sequences_weigh_equally():
    gt = np.array([[0, 0, 10, 10], [0, 0, 0, 0], [0, 0, 10, 10]], dtype=float)
    pred = np.array([[0, 0, 10, 10]] * 3, dtype=float)
    c = otb_sequence_curves(pred, gt)
    assert c.success[0] == pytest.approx(2 / 3)
    hidden = otb_sequence_curves(pred, np.array([[0, 0, 10, 10]] * 3, float), valid=[True, True, False])
    assert hidden.success[0] == pytest.approx(2 / 3)
    perfect = otb_sequence_curves(pred, np.array([[0, 0, 10, 10]] * 3, float))
    s = otb_scores({"a": c, "b": perfect})
    assert s.success_curve[0] == pytest.approx((2 / 3 + 1) / 2)


def test_got10k_skips_first_frame_and_hidden_frames():
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float)
    pred = np.array([[90, 90, 1, 1], [0, 0, 10, 10], [0, 0, 5, 10], [50, 50, 10, 10]], float)
    ious = got10k_sequence_ious(pred, gt, cover=np.array([8, 8, 8, 0]), image_size=(100, 100))
    assert ious == pytest.approx([1.0, 0.5])
    s = got10k_scores(ious, times=np.array([0.0, 0.1, 0.2, np.nan]))
    assert s.ao == pytest.approx(0.75)
    assert s.sr50 == pytest.approx(0.5)  # strict: IoU 0.5 is not a success
    assert s.sr75 == pytest.approx(0.5)
    assert s.speed_fps == pytest.approx((10 + 5) / 2)


def test_got10k_bounding_shifts_boxes_off_the_left_edge_like_the_toolkit():
    # box hanging 5 px off the left edge: the toolkit moves x to 0 and keeps w (shift, not cut)
    pred = np.array([[-5.0, 0, 10, 10]])
    gt = np.array([[0.0, 0, 10, 10]])
    before = pred.copy()
    assert got10k_bounded_iou(pred, gt, (100, 100))[0] == pytest.approx(1.0)
    assert (pred == before).all()  # unlike the toolkit, inputs are not modified
    # off the right edge: w is cut to the image
    assert got10k_bounded_iou(np.array([[95.0, 0, 10, 10]]), np.array([[90.0, 0, 10, 10]]), (100, 100))[0] == pytest.approx(5 / 10)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="predicted"):
        got10k_sequence_ious(np.zeros((3, 4)), np.zeros((4, 4)), None, (10, 10))


def test_longterm_against_a_hand_computed_case():
    from r1track.metrics import longterm_scores

    # frame 1 is the given box (left out). Frames 2..5: visible T, T, F, T; IoU 1, 0.5, -, 0; presence 1, .5, 0, 1.
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float)
    pred = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 20], [50, 50, 5, 5], [30, 30, 10, 10]], float)
    visible = np.array([True, True, True, False, True])
    presence = np.array([1.0, 1.0, 0.5, 0.0, 1.0])
    sc = longterm_scores({"s": (pred, gt, visible, presence)})
    # tau 0:   P = (1 + .5 + 0 + 0) / 4 = .375, R = 1.5 / 3 = .5, F = 2*.375*.5/.875 = .428571...
    # tau 0.5: P = 1.5 / 3 = .5, R = .5, F = .5
    # tau 1:   P = 1 / 2 = .5, R = 1 / 3, F = 2*.5*(1/3)/(5/6) = .4
    assert sc.thresholds.tolist() == [0.0, 0.5, 1.0]
    assert sc.precision_curve == pytest.approx([0.375, 0.5, 0.5])
    assert sc.recall_curve == pytest.approx([0.5, 0.5, 1 / 3])
    assert sc.f_curve == pytest.approx([3 / 7, 0.5, 0.4])
    assert (sc.f_score, sc.precision, sc.recall, sc.threshold) == pytest.approx((0.5, 0.5, 0.5, 0.5))


def test_longterm_averages_sequences_and_skips_undefined_precision():
    from r1track.metrics import longterm_scores

    gt = np.array([[0, 0, 10, 10]] * 3, float)
    a = (gt.copy(), gt, None, np.array([1.0, 1.0, 1.0]))  # perfect, always present: P = R = 1 at tau 0 and 1
    b = (gt.copy(), gt, None, np.array([1.0, 0.0, 0.0]))  # perfect boxes but says absent: predicts only at tau 0
    sc = longterm_scores({"a": a, "b": b})
    # tau 0: P = (1 + 1) / 2, R = (1 + 1) / 2 -> F 1. tau 1: P = 1 (b left out), R = (1 + 0) / 2 = .5
    assert sc.precision_curve == pytest.approx([1.0, 1.0]) and sc.recall_curve == pytest.approx([1.0, 0.5])
    assert sc.f_score == pytest.approx(1.0) and sc.threshold == 0.0
