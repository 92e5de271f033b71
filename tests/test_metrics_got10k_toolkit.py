"""Our GOT-10k AO/SR against the got10k toolkit 0.1.3 (PyPI) on the same result folder (slow: own venv)."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from r1track.data import read_got10k
from r1track.results import write_result
from r1track.scoring import score_results
from r1track.synthetic import write_got10k_split

TOOLKIT_SCRIPT = """
import json, sys, warnings
warnings.simplefilter("ignore")
from got10k.experiments import ExperimentGOT10k
root, results, reports = sys.argv[1:4]
exp = ExperimentGOT10k(root, subset="val", result_dir=results, report_dir=reports)
perf = exp.report(["mytracker"])["mytracker"]
print("JSON" + json.dumps(perf))
"""


def noisy_predictions(gt: np.ndarray, rng: np.random.Generator, width: int) -> np.ndarray:
    pred = gt.copy()
    pred[:, :2] += rng.normal(0, 6, size=(len(gt), 2))
    pred[:, 2:] *= np.exp(rng.normal(0, 0.2, size=(len(gt), 2)))
    pred[3, 0] = -12.5  # hangs off the left edge: the toolkit shifts it
    pred[4, 0] = width - pred[4, 2] / 2  # off the right edge: the toolkit cuts it
    pred[5] = [1.0, 1.0, 0.0, 0.0]  # degenerate
    return pred


@pytest.mark.slow
def test_got10k_ao_sr_equal_the_toolkit(tmp_path, upstream_venv):
    python = upstream_venv("got10k")
    root = tmp_path / "GOT10k"
    write_got10k_split(root, "val", n_sequences=4, n_frames=30, full_occlusion_every=2, seed=3)
    results = tmp_path / "results"
    rng = np.random.default_rng(0)
    seqs = list(read_got10k(root, "val"))
    for s in seqs:
        pred = noisy_predictions(s.boxes_xywh_orig, rng, s.image_size[0])
        times = rng.uniform(0.01, 0.2, size=len(pred))
        write_result(results / "GOT-10k" / "mytracker", s.name, pred, times)
    proc = subprocess.run(
        [str(python), "-c", TOOLKIT_SCRIPT, str(root), str(results), str(tmp_path / "reports")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs = json.loads(proc.stdout.split("JSON", 1)[1])
    ours = score_results(seqs, results / "GOT-10k" / "mytracker", protocol="got10k")
    over = theirs["overall"]
    assert ours.overall["ao"] == pytest.approx(over["ao"], abs=1e-6)
    assert ours.overall["sr50"] == pytest.approx(over["sr"], abs=1e-6)
    assert ours.overall["sr75"] == pytest.approx(over["succ_curve"][75], abs=1e-6)
    assert ours.overall["fps"] == pytest.approx(over["speed_fps"], rel=1e-6)
    assert ours.curves["success"] == pytest.approx(over["succ_curve"], abs=1e-6)
    for name, row in theirs["seq_wise"].items():
        assert ours.per_sequence[name]["ao"] == pytest.approx(row["ao"], abs=1e-6)
        assert ours.per_sequence[name]["sr50"] == pytest.approx(row["sr"], abs=1e-6)
    assert 0.2 < ours.overall["ao"] < 0.95  # a meaningful, non-trivial case
