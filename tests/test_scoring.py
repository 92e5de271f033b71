import json

import numpy as np
import pytest

from r1track.data import read_generic, read_got10k
from r1track.results import write_result
from r1track.scoring import format_table, score_results, write_report
from r1track.synthetic import write_got10k_split


def test_perfect_results_score_one_and_report_is_written(tmp_path):
    write_got10k_split(tmp_path / "d", "val", n_sequences=2, n_frames=10, full_occlusion_every=2)
    seqs = list(read_got10k(tmp_path / "d", "val"))
    for s in seqs:
        write_result(tmp_path / "r", s.name, s.boxes_xywh_orig, np.full(len(s), 0.05))
    rep = score_results(seqs, tmp_path / "r")
    assert rep.protocol == "got10k"
    assert rep.overall["ao"] == pytest.approx(1.0) and rep.overall["sr75"] == pytest.approx(1.0)
    assert rep.overall["fps"] == pytest.approx(20.0)
    paths = write_report(rep, tmp_path / "rep")
    assert json.loads(paths["json"].read_text())["overall"]["ao"] == pytest.approx(1.0)
    assert "overall" in format_table(rep) and paths["success"].stat().st_size > 1000


def test_missing_results_are_errors_unless_allowed(tmp_path):
    write_got10k_split(tmp_path / "d", "val", n_sequences=2, n_frames=5)
    seqs = list(read_got10k(tmp_path / "d", "val"))
    write_result(tmp_path / "r", seqs[0].name, seqs[0].boxes_xywh_orig)
    with pytest.raises(FileNotFoundError, match=seqs[1].name):
        score_results(seqs, tmp_path / "r")
    rep = score_results(seqs, tmp_path / "r", allow_missing=True)
    assert rep.missing == [seqs[1].name] and list(rep.per_sequence) == [seqs[0].name]


def test_otb_protocol_on_real_sequences_with_shifted_boxes(tmp_path, realseq_dir):
    seqs = list(read_generic(realseq_dir))[:2]
    for s in seqs:
        pred = s.boxes_xywh_orig.copy()
        pred[1:, 0] += 1000  # all but the first frame miss completely
        write_result(tmp_path, s.name, pred, layout="pytracking")
    rep = score_results(seqs, tmp_path, layout="pytracking")
    assert rep.protocol == "otb"
    # only frame 1 (the initial box) succeeds: success at threshold 0 is 1/N per sequence
    expected = np.mean([1 / len(s.boxes_xywh_orig) for s in seqs])
    assert rep.curves["success"][0] == pytest.approx(expected)
    assert rep.overall["precision20"] == pytest.approx(expected)
