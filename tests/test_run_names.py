"""Default run folders and summaries (issue 24, rows 5 and 7).

Row 7: the default ``runs/...`` folder tells apart every setting that changes results -- found generically from the
run's fingerprint, so a tracker parameter or backend option added later is covered without an edit -- and the same
command always lands in the same folder (a rerun resumes). Row 5: OTB/LaSOT-protocol tables show the mean IoU next
to the AUC, which saturates at 20/21 for a perfect tracker."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import pytest

from r1track.backends.oracle import FailureModel
from r1track.cli import main
from r1track.evalfolder import fingerprint
from r1track.evalrun import EvalSettings
from r1track.models import FAMILIES
from r1track.prompts import PROMPTS
from r1track.tracker_params import TrackerParams


def _otb(root: Path, n_seq=2, n=8) -> Path:
    from PIL import Image

    for k in range(n_seq):
        folder = root / f"seq{k}"
        folder.mkdir(parents=True)
        for i in range(1, n + 1):
            img = Image.new("RGB", (160, 120), (30 * k, 80, 40))
            img.paste((240, 220, 30), (30 + 3 * i, 40, 70 + 3 * i, 72))
            img.save(folder / f"{i:04d}.jpg")
        (folder / "groundtruth.txt").write_text("".join(f"{30 + 3 * i},40,40,32\n" for i in range(n)))
    return root


def test_oracle_runs_with_other_failure_rates_get_their_own_folders(tmp_path, monkeypatch, capsys):
    data = _otb(tmp_path / "otb")
    monkeypatch.chdir(tmp_path)
    base = ["eval", str(data), "--backend", "oracle", "--no-progress"]
    assert main([*base, "--oracle-failures", "miss=0.1,jump=0.05"]) == 0
    assert main([*base, "--oracle-failures", "miss=0.3"]) == 0  # the second run was refused here
    assert main(base) == 0
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["generic-oracle", "generic-oracle+failures=miss=0.1_jump=0.05_jitter=0",
                    "generic-oracle+failures=miss=0.3_jump=0_jitter=0"]
    capsys.readouterr()
    assert main([*base, "--oracle-failures", "miss=0.3"]) == 0  # the same command: the same folder, resumed
    assert "0 sequences tracked, 2 already done" in capsys.readouterr().out
    assert len(list((tmp_path / "runs").iterdir())) == 3


def _alternatives(name: str, value, hint) -> list:
    """Other values a field may take, tried in order (the first the dataclass accepts is used)."""
    kind = typing.get_args(hint) or (hint,)
    if bool in kind:
        return [not value]
    if str in kind:
        pool = {"model_family": list(FAMILIES), "think_layout": ["instruction-first", "images-first"]}.get(name, list(PROMPTS))
        return [v for v in pool if v != value]
    if value is None:
        return [448, 224, 1, 3]
    return [value * 2, value + 1, value * 0.5, value - 1] if isinstance(value, (int, float)) else []


def test_every_result_setting_changes_the_default_folder(tmp_path):
    """Generic over the fields of TrackerParams and the oracle's options: whatever changes the fingerprint changes
    the folder name, and names the setting."""
    from r1track.backends import backend_option_defaults
    from r1track.runname import settings_suffix

    reference = EvalSettings(out_dir=tmp_path / "runs" / "x-oracle", backend="oracle", backend_options={"noise_px": 0.0})
    hints = typing.get_type_hints(TrackerParams)
    covered, changed_names = 0, set()
    for f in dataclasses.fields(TrackerParams):
        for alt in _alternatives(f.name, getattr(reference.params, f.name), hints[f.name]):
            try:
                params = reference.params.replace(**{f.name: alt})
            except (ValueError, TypeError):
                continue
            if fingerprint(dataclasses.replace(reference, params=params)) == fingerprint(reference):
                continue
            suffix = settings_suffix(dataclasses.replace(reference, params=params), reference)
            assert f"+{f.name}" in suffix or f"+no-{f.name}" in suffix or suffix.startswith("+settings="), (f.name, suffix)
            covered += 1
            changed_names.add(f.name)
            break
    assert covered >= len(dataclasses.fields(TrackerParams)) - 4, sorted(
        {f.name for f in dataclasses.fields(TrackerParams)} - changed_names)
    for option, value in (("noise_px", 1.5), ("failures", FailureModel(miss_rate=0.2))):
        assert option in backend_option_defaults("oracle")
        settings = dataclasses.replace(reference, backend_options={**reference.backend_options, option: value})
        assert settings_suffix(settings, reference).startswith(f"+{option}=")
    for change in ({"init": "text"}, {"max_frames": 9}, {"model": "Qwen/Qwen3-VL-4B-Instruct"}):
        assert settings_suffix(dataclasses.replace(reference, **change), reference) != ""
    assert settings_suffix(reference, reference) == ""


def test_timeouts_and_retries_change_no_result_so_a_rerun_with_them_resumes(tmp_path):
    from r1track.runname import settings_suffix

    settings = EvalSettings(out_dir=tmp_path / "r", backend="openai", backend_options={"timeout_s": 120.0, "retries": 3})
    longer = dataclasses.replace(settings, backend_options={"timeout_s": 600.0, "retries": 5})
    assert fingerprint(settings) == fingerprint(longer) and settings_suffix(longer, settings) == ""


def test_a_default_folder_holding_other_settings_is_not_reused(tmp_path):
    from r1track.runname import default_run_dir

    reference = EvalSettings(out_dir=tmp_path / "runs" / "generic-oracle", backend="oracle")
    (tmp_path / "runs" / "generic-oracle").mkdir(parents=True)
    (tmp_path / "runs" / "generic-oracle" / "settings.json").write_text(json.dumps({"made": "by another version"}))
    out = default_run_dir(tmp_path / "runs" / "generic-oracle", reference, reference)
    assert out.name.startswith("generic-oracle+") and out == default_run_dir(tmp_path / "runs" / "generic-oracle",
                                                                               reference, reference)


def test_otb_tables_show_mean_iou_which_tells_families_apart_where_auc_saturates(tmp_path, monkeypatch, capsys):
    data = _otb(tmp_path / "otb", n_seq=1, n=12)
    monkeypatch.chdir(tmp_path)
    rows = {}
    for family in ("qwen2.5-vl", "qwen3-vl"):
        assert main(["eval", str(data), "--backend", "oracle", "--model-family", family, "--no-progress"]) == 0
        out = capsys.readouterr().out
        header = next(line for line in out.splitlines() if line.startswith("sequence"))
        assert header.split()[1:5] == ["auc", "precision20", "norm_precision20", "mean_iou"]
        rows[family] = next(line for line in out.splitlines() if line.startswith("overall")).split()[1:5]
        report = json.loads(next((tmp_path / "runs").glob(f"*model_family={family}/report/report.json")).read_text()
                            ) if family != "qwen2.5-vl" else None
        if report:
            assert 0 < report["overall"]["mean_iou"] < 1
    assert rows["qwen2.5-vl"][0] == rows["qwen3-vl"][0] == "0.9524"  # the AUC saturates for both
    assert rows["qwen2.5-vl"][3] != rows["qwen3-vl"][3]  # the mean IoU does not


@pytest.mark.parametrize("protocol", ["otb"])
def test_report_comparison_shows_the_mean_iou(protocol):
    from r1track.scoring import Report, format_comparison

    a = Report(protocol, "a", "d", {"auc": 0.9524, "precision20": 1.0, "norm_precision20": 1.0, "mean_iou": 0.98,
                                    "fps": 10.0, "sequences": 1.0}, {})
    assert "mean_iou" in format_comparison([a]).splitlines()[0] and "0.9800" in format_comparison([a])
