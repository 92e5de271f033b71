"""``r1track report RUN [RUN ...]``: several eval runs in one table and one plot with a curve per run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from r1track.cli import main
from r1track.plots import COLOURS
from r1track.synthetic import write_got10k_split


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    root = base / "GOT10k"
    write_got10k_split(root, "val", n_sequences=2, n_frames=8, seed=11)
    out = {}
    for args in (["--preset", "ncc"], ["--backend", "oracle"]):
        assert main(["eval", str(root), *args, "--no-progress", "-o", str(base / args[1])]) == 0
        out[args[1]] = base / args[1]
    return base, root, out


def test_two_runs_give_one_table_and_one_plot_with_two_named_curves(runs, capsys):
    base, _, out = runs
    capsys.readouterr()
    assert main(["report", str(out["ncc"]), str(out["oracle"]), "-o", str(base / "cmp")]) == 0
    table = (base / "cmp" / "comparison.txt").read_text().splitlines()
    assert table[0].split()[:4] == ["tracker", "ao", "sr50", "sr75"]
    assert [row.split()[0] for row in table[1:]] == ["ncc", "oracle"] and "ncc (baseline)" in table[1]
    rows = json.loads((base / "cmp" / "comparison.json").read_text())
    own = [json.loads((out[k] / "report" / "report.json").read_text()) for k in ("ncc", "oracle")]
    assert [r["overall"] for r in rows] == [r["overall"] for r in own]
    assert rows[1]["overall"]["ao"] > rows[0]["overall"]["ao"]
    pixels = np.asarray(Image.open(base / "cmp" / "success_plot.png").convert("RGB")).reshape(-1, 3)
    present = {tuple(c) for c in np.unique(pixels, axis=0)}
    assert COLOURS[0] in present and COLOURS[1] in present  # one curve per run
    assert "ncc (baseline)" in capsys.readouterr().out


def test_runs_of_different_sequences_are_refused(runs, tmp_path, capsys):
    base, _, out = runs
    other = tmp_path / "GOT10k"
    write_got10k_split(other, "val", n_sequences=1, n_frames=8, seed=12)
    assert main(["eval", str(other), "--preset", "ncc", "--no-progress", "-o", str(tmp_path / "one")]) == 0
    assert main(["report", str(out["ncc"]), str(tmp_path / "one"), "-o", str(tmp_path / "cmp")]) == 2
    assert "different sequences" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nothing")]) == 2


def test_default_run_folder_is_named_by_the_preset(runs, tmp_path, monkeypatch):
    _, root, _ = runs
    monkeypatch.chdir(tmp_path)
    assert main(["eval", str(root), "--preset", "ncc", "--no-progress", "--crop-size", "224"]) == 0
    assert (tmp_path / "runs" / "got10k-val-ncc+crop_size=224" / "report" / "report.json").is_file()


def test_eval_puts_its_own_run_beside_the_compared_ones(runs, capsys):
    base, root, out = runs
    target = base / "oracle-noisy"
    assert main(["eval", str(root), "--backend", "oracle", "--oracle-noise", "3", "--no-progress", "-o", str(target),
                 "--name", "oracle-noisy", "--compare", str(out["ncc"])]) == 0
    rows = (target / "report" / "comparison" / "comparison.txt").read_text().splitlines()
    assert [r.split()[0] for r in rows[1:]] == ["oracle-noisy", "ncc"]
    assert (target / "report" / "comparison" / "success_plot.png").is_file()
