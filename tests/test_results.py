import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r1track.results import format_number, has_result, read_result, result_paths, write_result

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@given(st.lists(st.tuples(finite, finite, finite, finite), min_size=1, max_size=8), st.sampled_from(["got10k", "pytracking"]))
@settings(max_examples=50, deadline=None)
def test_results_round_trip_exactly(tmp_path_factory, rows, layout):
    d = tmp_path_factory.mktemp("res")
    boxes = np.array(rows, dtype=np.float64)
    times = np.linspace(0.0, 1.0, len(rows))
    write_result(d, "seq1", boxes, times, layout=layout)
    got, t = read_result(d, "seq1", layout)
    assert np.array_equal(got, boxes)  # bit-exact, no truncation
    assert np.array_equal(t, times)


def test_layouts_and_formatting(tmp_path):
    write_result(tmp_path, "GOT-10k_Test_000001", [[1.5, 2, 3.25, 4]], [0.5])
    p = tmp_path / "GOT-10k_Test_000001" / "GOT-10k_Test_000001_001.txt"
    assert p.read_text() == "1.5,2,3.25,4\n"
    write_result(tmp_path, "bag", [[20.7, 1, 2, 3]], layout="pytracking")
    assert (tmp_path / "bag.txt").read_text() == "20.7\t1\t2\t3\n"  # PyTracking itself would write 20
    assert has_result(tmp_path, "bag", "pytracking") and not has_result(tmp_path, "other", "pytracking")
    assert format_number(3.0) == "3" and format_number(0.1) == "0.1"
    with pytest.raises(ValueError, match="unknown result layout"):
        result_paths(tmp_path, "s", "otb")
    with pytest.raises(ValueError, match="times"):
        write_result(tmp_path, "s", [[1, 2, 3, 4]], [0.1, 0.2])
