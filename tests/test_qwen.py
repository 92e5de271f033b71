import pytest
from hypothesis import given
from hypothesis import strategies as st

from r1track.qwen import check_crop_side, model_input_size, nearest_valid_sides, smart_resize


@pytest.mark.parametrize(
    "side,expected",
    # values measured with the real Qwen2.5-VL-3B processor (docs/upstream.md, Qwen2.5-VL coordinates and resizing)
    [(112, 112), (224, 224), (336, 336), (448, 448), (300, 308), (320, 308), (350, 336), (768, 756)],
)
def test_smart_resize_matches_measured_processor(side, expected):
    assert smart_resize(side, side) == (expected, expected)


def test_smart_resize_rectangular_and_bounds():
    assert model_input_size(500, 375) == (504, 364)  # measured: 500x375 -> 504x364
    h, w = smart_resize(20, 20)  # below min_pixels -> scaled up to >= 3136 pixels
    assert h * w >= 3136 and h % 28 == 0 and w % 28 == 0
    with pytest.raises(ValueError):
        smart_resize(1, 400)


@pytest.mark.parametrize("side", [112, 224, 336, 448])
def test_valid_crop_sides_pass(side):
    assert check_crop_side(side) == side


@pytest.mark.parametrize("side,lo,hi", [(300, 280, 308), (320, 308, 336), (100, 84, 112), (10, 28, 56)])
def test_invalid_crop_side_error_names_nearest_sizes(side, lo, hi):
    with pytest.raises(ValueError) as err:
        check_crop_side(side)
    assert f"{lo} or {hi}" in str(err.value)


@given(st.integers(1, 5000))
def test_every_multiple_of_28_is_unchanged_by_smart_resize(k):
    side = 28 * max(2, k % 128)
    assert smart_resize(side, side) == (side, side)
    lo, hi = nearest_valid_sides(side + 1)
    assert lo == side and hi == side + 28
