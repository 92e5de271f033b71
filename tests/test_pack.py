import zipfile

import numpy as np
import pytest

from r1track.cli import main
from r1track.pack import PackError, pack_results
from r1track.results import write_result
from r1track.synthetic import write_got10k_split


def test_got10k_zip_layout_and_determinism(tmp_path):
    res = tmp_path / "res"
    write_result(res, "GOT-10k_Test_000002", [[1, 2, 3, 4], [1.5, 2, 3, 4]], [0.1, 0.2])
    write_result(res, "GOT-10k_Test_000001", [[5, 6, 7, 8]], [0.3])
    a = pack_results("got10k", res, tmp_path / "a.zip")
    pack_results("got10k", res, tmp_path / "b.zip")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    assert a.sequences == 2 and a.frames == 3
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert zf.namelist() == [
            "GOT-10k_Test_000001/GOT-10k_Test_000001_001.txt",
            "GOT-10k_Test_000001/GOT-10k_Test_000001_time.txt",
            "GOT-10k_Test_000002/GOT-10k_Test_000002_001.txt",
            "GOT-10k_Test_000002/GOT-10k_Test_000002_time.txt",
        ]
        assert zf.read("GOT-10k_Test_000002/GOT-10k_Test_000002_001.txt") == b"1,2,3,4\n1.5,2,3,4\n"


def test_trackingnet_from_pytracking_layout(tmp_path):
    res = tmp_path / "res"
    write_result(res, "abc", [[1, 2, 3, 4.25]], layout="pytracking")
    pack_results("trackingnet", res, tmp_path / "tn.zip")
    with zipfile.ZipFile(tmp_path / "tn.zip") as zf:
        assert zf.namelist() == ["abc.txt"]
        assert zf.read("abc.txt") == b"1,2,3,4.25\n"


def test_incomplete_results_are_refused_and_nothing_written(tmp_path, capsys):
    root = tmp_path / "got10k"
    names = write_got10k_split(root, "test", n_sequences=2, n_frames=5)
    res = tmp_path / "res"
    write_result(res, names[0], np.zeros((5, 4)) + 1)
    write_result(res, names[1], np.zeros((4, 4)) + 1)  # one frame short
    assert main(["pack", "got10k", str(res), "--dataset", str(root), "-o", str(tmp_path / "x.zip")]) == 2
    err = capsys.readouterr().err
    assert f"{names[1]}_001.txt has 4 boxes for 5 frames" in err
    assert not (tmp_path / "x.zip").exists()
    write_result(res, names[1], np.zeros((5, 4)) + 1)
    assert main(["pack", "got10k", str(res), "--dataset", str(root), "-o", str(tmp_path / "x.zip")]) == 0
    assert zipfile.ZipFile(tmp_path / "x.zip").namelist()[0].startswith(names[0])


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "r").mkdir()
    with pytest.raises(PackError, match="no tracking results"):
        pack_results("got10k", tmp_path / "r", tmp_path / "o.zip")
