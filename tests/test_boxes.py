import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from budget import examples

from r1track.boxes import (
    BoxXYXY,
    area_xyxy,
    clip_xywh,
    clip_xyxy,
    giou_xyxy,
    giou_xyxy_array,
    iou_xywh,
    iou_xywh_array,
    iou_xyxy,
    normalize_xyxy,
    scale_xyxy,
    xywh_to_xyxy,
    xyxy_to_xywh,
)

coord = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, allow_infinity=False)
size = st.floats(min_value=0.0, max_value=1e4, allow_nan=False, allow_infinity=False)
any_float = st.floats(allow_nan=True, allow_infinity=True)
xywh = st.tuples(coord, coord, size, size)
any_box = st.tuples(any_float, any_float, any_float, any_float)


@given(xywh)
def test_xywh_xyxy_round_trip(b):
    back = xyxy_to_xywh(xywh_to_xyxy(b))
    assert back == pytest.approx(b, abs=1e-9, rel=1e-12)


@given(any_box, any_box)
@settings(max_examples=examples(500))
def test_iou_giou_finite_bounded_symmetric_on_any_input(a, b):
    for f, lo in ((iou_xyxy, 0.0), (giou_xyxy, -1.0)):
        v = f(a, b)
        assert math.isfinite(v)
        assert lo <= v <= 1.0
        assert v == pytest.approx(f(b, a), abs=1e-12)


@given(xywh, xywh)
@settings(max_examples=examples(500))
# Found by CI's larger budget: sub-normal widths made GIoU exceed IoU by 1e-12 and the two IoU spellings
# differ in the last bits.
@example(a=(2.225073858507e-311, 0.0, 2.225073858507e-311, 1.0), b=(2.225073858507e-311, 1.0, 2.225073858507e-311, 2.0))
@example(a=(0.0, 0.0, 1.0, 2.0), b=(0.0, 1.0, 2.225073858507e-311, 3.0))
def test_giou_never_exceeds_iou_and_array_matches_scalar(a, b):
    a_xyxy, b_xyxy = xywh_to_xyxy(a), xywh_to_xyxy(b)
    iou = iou_xyxy(a_xyxy, b_xyxy)
    g = giou_xyxy(a_xyxy, b_xyxy)
    assert g <= iou
    # Equal to the last bit for normal numbers; a sub-normal side (e.g. w = 2e-311) is scaled by a different
    # power of two in the two spellings and may lose its last bits differently.
    assert iou_xywh(a, b) == pytest.approx(iou, rel=1e-12, abs=1e-300)
    assert iou_xywh_array(np.array([a]), np.array([b]))[0] == pytest.approx(iou, abs=1e-12)
    assert giou_xyxy_array(np.array([a_xyxy]), np.array([b_xyxy]))[0] == pytest.approx(g, abs=1e-12)


@given(st.tuples(coord, coord, st.floats(0.01, 1e4), st.floats(0.01, 1e4)))
def test_identical_boxes_have_iou_one(b):
    box = xywh_to_xyxy(b)
    assert iou_xyxy(box, box) == pytest.approx(1.0)
    assert giou_xyxy(box, box) == pytest.approx(1.0)


def test_hand_computed_overlaps():
    # [0,0,10,10] vs [5,5,15,15]: intersection 25, union 175, enclosure 225
    a, b = (0, 0, 10, 10), (5, 5, 15, 15)
    assert iou_xyxy(a, b) == pytest.approx(25 / 175)
    assert giou_xyxy(a, b) == pytest.approx(25 / 175 - (225 - 175) / 225)
    # disjoint: [0,0,1,1] vs [2,0,3,1]: union 2, enclosure 3 -> giou = -1/3
    assert iou_xyxy((0, 0, 1, 1), (2, 0, 3, 1)) == 0.0
    assert giou_xyxy((0, 0, 1, 1), (2, 0, 3, 1)) == pytest.approx(-1 / 3)


def test_degenerate_inverted_and_nonfinite_inputs_have_defined_values():
    assert iou_xyxy((5, 5, 5, 5), (5, 5, 5, 5)) == 0.0  # zero union
    assert giou_xyxy((5, 5, 5, 5), (5, 5, 5, 5)) == 0.0  # zero enclosure
    assert iou_xyxy((10, 10, 0, 0), (0, 0, 10, 10)) == 0.0  # inverted = empty
    assert giou_xyxy((math.nan, 0, 1, 1), (0, 0, 1, 1)) == -1.0
    assert iou_xyxy((0, 0, math.inf, 1), (0, 0, 1, 1)) == 0.0
    assert area_xyxy((0, 0, math.inf, 1)) == 0.0
    # huge but finite coordinates: scale invariance keeps the exact value
    big = 1e300
    assert iou_xyxy((0, 0, 2 * big, big), (0, 0, big, big)) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        iou_xyxy((0, 0, 1), (0, 0, 1, 1))


@given(any_box, st.floats(1, 4000), st.floats(1, 4000))
def test_clip_stays_inside_image(b, w, h):
    x1, y1, x2, y2 = clip_xyxy(b, w, h)
    for v, hi in ((x1, w), (y1, h), (x2, w), (y2, h)):
        assert 0.0 <= v <= hi
    cx, cy, cw, ch = clip_xywh(b, w, h)
    assert cw >= 0 and ch >= 0 and cx + cw <= w + 1e-9 and cy + ch <= h + 1e-9


def test_clip_cuts_rather_than_shifts():
    # a box hanging off the left edge is cut, not shifted (got10k's rect_iou shifts it)
    assert clip_xywh((-10, 5, 30, 10), 100, 100) == (0.0, 5.0, 20.0, 10.0)


def test_normalize_and_scale():
    box, swapped = normalize_xyxy((10, 20, 0, 5))
    assert box == BoxXYXY(0, 5, 10, 20) and swapped
    assert normalize_xyxy((0, 0, 1, 1))[1] is False
    assert scale_xyxy((1, 2, 3, 4), 2.0) == (2, 4, 6, 8)
    assert scale_xyxy((1, 2, 3, 4), 2.0, 0.5) == (2, 1, 6, 2)


def test_array_inputs_are_not_modified():
    a = np.array([[-5.0, -5.0, 10.0, 10.0]])
    b = np.array([[0.0, 0.0, 10.0, 10.0]])
    a0, b0 = a.copy(), b.copy()
    iou_xywh_array(a, b)
    assert (a == a0).all() and (b == b0).all()
