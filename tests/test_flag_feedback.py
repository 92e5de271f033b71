"""Say what a flag did (issue 24, row 2): ``--absent-fraction`` reports how many absent samples it could make, and
on data without absent frames warns and keeps the ordinary prompt; flags that end up doing nothing say so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1track.cli import main
from r1track.prompts import get_prompt
from r1track.synthetic import write_got10k_split


def _otb(root: Path, n_seq=2, n=12) -> Path:
    """OTB-style sequences (groundtruth_rect.txt, img/): no visibility labels, every frame visible."""
    from PIL import Image

    for k in range(n_seq):
        folder = root / f"seq{k}" / "img"
        folder.mkdir(parents=True)
        for i in range(1, n + 1):
            Image.new("RGB", (96, 72), (30 * k, 80, 10 * i)).save(folder / f"{i:04d}.jpg")
        (root / f"seq{k}" / "groundtruth_rect.txt").write_text("".join(f"{10 + i},{12 + i},20,16\n" for i in range(n)))
    return root


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def test_absent_fraction_on_data_without_absent_frames_warns_and_keeps_the_ordinary_prompt(tmp_path, capsys):
    data = _otb(tmp_path / "otb")
    out = tmp_path / "set"
    assert main(["data", "build", f"generic:{data}", "--absent-fraction", "0.2", "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "warning: absent fraction 0.2" in err and "no absent sample was made" in err and "r1track-v1" in err
    rows = _rows(out)
    assert rows and not any(r.get("absent") for r in rows)
    assert {r["prompt_version"] for r in rows} == {"r1track-v1"}  # not switched to r1track-vis-v1
    stats = json.loads((out / "stats.json").read_text())
    assert stats["config"]["prompt"] == "r1track-v1"
    assert stats["samples"]["absent"]["requested_fraction"] == 0.2
    assert stats["samples"]["absent"]["written"] == {"train": 0, "val": 0}
    assert any("no absent sample" in w for w in stats["warnings"])
    # the user texts do not offer an answer no sample teaches
    assert not get_prompt("r1track-v1").absent and get_prompt("r1track-vis-v1").absent
    for sample in json.loads((out / "llamafactory" / "train.json").read_text()):
        assert "[]" not in sample["messages"][0]["content"]


def test_an_explicit_visibility_prompt_stays_but_is_warned_about(tmp_path, capsys):
    data = _otb(tmp_path / "otb")
    out = tmp_path / "set"
    assert main(["data", "build", f"generic:{data}", "--absent-fraction", "0.2", "--prompt", "r1track-vis-v1",
                 "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "no absent sample was made" in err and "the prompt stays r1track-vis-v1" in err
    assert {r["prompt_version"] for r in _rows(out)} == {"r1track-vis-v1"}


def test_absent_fraction_reports_how_many_absent_samples_it_made(tmp_path, capsys):
    write_got10k_split(tmp_path / "got", "train", n_sequences=3, n_frames=16, size=(160, 120), full_occlusion_every=1)
    out = tmp_path / "set"
    assert main(["data", "build", f"got10k:{tmp_path / 'got'}@train", "--absent-fraction", "0.2", "--val-fraction", "0",
                 "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    n_absent = sum(bool(r.get("absent")) for r in _rows(out))
    assert n_absent > 0 and f"absent samples: {n_absent} of {len(_rows(out))} planned" in err
    assert {r["prompt_version"] for r in _rows(out)} == {"r1track-vis-v1"}


@pytest.mark.parametrize("flags,expected", [
    (["--think-layout", "instruction-first"], "--think-layout instruction-first does nothing without --think"),
    (["--memory-max-gap", "3"], "--memory-max-gap does nothing without --triples"),
    (["--balance", "none", "--max-per-sequence", "2"], "--max-per-sequence caps balanced sampling only"),
    (["--absent-from-empty-boxes"], "--absent-from-empty-boxes does nothing without --absent-fraction"),
    (["--format", "easyr1", "--name", "mine"], "--name names the LLaMA-Factory datasets"),
])
def test_data_build_flags_that_do_nothing_are_named(tmp_path, capsys, flags, expected):
    data = _otb(tmp_path / "otb")
    assert main(["data", "build", f"generic:{data}", *flags, "--out", str(tmp_path / "set"), "--quiet"]) == 0
    assert f"warning: {expected}" in capsys.readouterr().err


def test_data_build_without_such_flags_warns_nothing(tmp_path, capsys):
    data = _otb(tmp_path / "otb", n_seq=3)
    assert main(["data", "build", f"generic:{data}", "--val-fraction", "0.34", "--out", str(tmp_path / "set"),
                 "--quiet"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert "warnings" not in json.loads((tmp_path / "set" / "stats.json").read_text())


@pytest.mark.parametrize("flags,expected", [
    (["--backend", "ncc", "--oracle-failures", "miss=0.1"], "--oracle-failures does nothing with --backend ncc"),
    (["--backend", "ncc", "--oracle-noise", "2"], "--oracle-noise does nothing with --backend ncc"),
    (["--backend", "oracle", "--dtype", "float32"], "--dtype only set(s) the in-process engines"),
    (["--backend", "oracle", "--server", "http://127.0.0.1:9/v1"], "--server does nothing with --backend oracle"),
])
def test_eval_flags_that_do_nothing_are_named(tmp_path, monkeypatch, capsys, flags, expected):
    data = _otb(tmp_path / "otb", n_seq=1, n=4)
    monkeypatch.chdir(tmp_path)
    assert main(["eval", str(data), *flags, "--no-progress"]) == 0
    assert f"r1track eval: warning: {expected}" in capsys.readouterr().err
