"""Family consistency (issue 24, row 8): one resolution function for every backend; ``--model`` and
``--model-family`` that disagree give a warning naming both; ``ncc`` and ``oracle`` infer the family from
``--model``; a registered LoRA adapter's base model decides its family."""

from __future__ import annotations

import json

import pytest

from r1track import checkpoints
from r1track.backends import BACKENDS
from r1track.checkpoints import Checkpoint
from r1track.cli import build_parser, main
from r1track.commands.tracking import resolve_settings
from r1track.testing.openai_server import OpenAIServer

QWEN3 = "Qwen/Qwen3-VL-4B-Instruct"


def _settings(*flags, warnings=None):
    args = build_parser().parse_args(["eval", "data", *flags])
    if warnings is None:
        return resolve_settings(args)
    return resolve_settings(args, warn=warnings.append)


@pytest.fixture(autouse=True)
def _no_env_model(monkeypatch):
    monkeypatch.delenv("R1TRACK_MODEL", raising=False)


def test_model_and_family_that_disagree_warn_naming_both(capsys):
    seen: list[str] = []
    r = _settings("--backend", "oracle", "--model", QWEN3, "--model-family", "qwen2.5-vl", warnings=seen)
    assert r.params.model_family == "qwen2.5-vl"  # the explicit choice wins...
    assert len(seen) == 1 and "--model-family qwen2.5-vl" in seen[0] and QWEN3 in seen[0] and "qwen3-vl" in seen[0]
    seen.clear()  # ...and an agreeing pair says nothing
    assert _settings("--backend", "oracle", "--model", QWEN3, "--model-family", "qwen3-vl", warnings=seen).params.model_family == "qwen3-vl"
    assert seen == []


def test_the_conflict_warning_reaches_the_terminal_of_eval_and_data_build(tmp_path, monkeypatch, capsys):
    from PIL import Image

    seq = tmp_path / "seq"
    seq.mkdir()
    for i in range(1, 4):
        Image.new("RGB", (64, 48), (20 * i, 40, 60)).save(seq / f"{i:04d}.jpg")
    (seq / "groundtruth.txt").write_text("10,10,20,16\n11,10,20,16\n12,10,20,16\n")
    monkeypatch.chdir(tmp_path)
    assert main(["eval", str(seq), "--backend", "oracle", "--model", QWEN3, "--model-family", "qwen2.5-vl",
                 "--no-progress"]) == 0
    assert "warning: --model-family qwen2.5-vl disagrees with --model Qwen/Qwen3-VL-4B-Instruct" in capsys.readouterr().err
    assert main(["data", "build", f"generic:{seq}", "--model", QWEN3, "--model-family", "qwen2.5-vl", "--out",
                 str(tmp_path / "set"), "--quiet"]) == 0
    assert "warning: --model-family qwen2.5-vl disagrees with --model Qwen/Qwen3-VL-4B-Instruct" in capsys.readouterr().err
    assert json.loads((tmp_path / "set" / "stats.json").read_text())["config"]["model_family"] == "qwen2.5-vl"


@pytest.mark.parametrize("backend", ["ncc", "oracle"])
def test_ncc_and_oracle_infer_the_family_from_the_model(backend):
    assert _settings("--backend", backend, "--model", QWEN3).params.model_family == "qwen3-vl"
    assert _settings("--backend", backend, "--model", "Qwen/Qwen3.5-9B").params.model_family == "qwen3.5"
    assert _settings("--backend", backend).params.model_family == "qwen2.5-vl"  # no model: the default
    assert _settings("--backend", backend, "--model", "my-tracker").params.model_family == "qwen2.5-vl"


@pytest.fixture
def lora(monkeypatch):
    """A registered LoRA adapter on a Qwen3-VL base, whose name says nothing of its family."""
    ckpt = Checkpoint("someone/Tracker-SFT-lora", "default", "SFT", "1k", base_model=QWEN3, lora=True)
    monkeypatch.setattr(checkpoints, "CHECKPOINTS", (*checkpoints.CHECKPOINTS, ckpt))
    return ckpt


def test_a_registered_lora_adapters_base_model_decides_its_family(lora):
    from r1track.models import family_of_model

    found = family_of_model(lora.name)
    assert found is not None and found[0].name == "qwen3-vl" and QWEN3 in found[1]
    assert family_of_model("/downloads/Tracker-SFT-lora")[0].name == "qwen3-vl"  # a local copy of it
    # a published adapter keeps its Qwen2.5-VL base
    assert family_of_model("WangBiao/R1-Track-SFT-5k-lora")[0].name == "qwen2.5-vl"


def test_a_local_adapter_folder_takes_its_base_models_family(tmp_path):
    from r1track.models import family_of_model

    folder = tmp_path / "my-adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "Qwen/Qwen3.5-9B"}))
    assert family_of_model(str(folder))[0].name == "qwen3.5"


def test_every_backend_reaches_the_family_the_same_way(lora):
    """The registered adapter's family reaches every backend, the server ones included (a registered checkpoint
    asks no server), through the one resolution function."""
    from r1track.models import resolve_family

    for backend in BACKENDS:
        r = _settings("--backend", backend, "--model", lora.name)
        assert r.params.model_family == resolve_family(model=lora.name).family.name == "qwen3-vl", backend
        r = _settings("--backend", backend, "--model", lora.name, "--model-family", "qwen3.5")
        assert r.params.model_family == "qwen3.5", backend


def test_a_server_reports_the_family_when_the_model_name_does_not(monkeypatch):
    with OpenAIServer(model="tracker", root="/ckpt/Qwen3-VL-2B-Instruct-r1track") as server:
        r = _settings("--backend", "openai", "--server", server.base_url, "--model", "tracker")
    assert r.params.model_family == "qwen3-vl"


def test_pytracking_parameter_files_take_the_family_from_the_model(monkeypatch):
    """The PyTracking plugin reaches the family the same way: a shipped parameter file leaves it to the model."""
    from r1track.integrations.pytracking_session import tracker_params_from

    class Params:  # what a shipped parameter file holds, as far as the family goes
        model_family = None
        model = None

    assert tracker_params_from(Params()).model_family == "qwen2.5-vl"  # reading the file: no backend, no server asked
    # a backend that answers in process must be told by its checkpoint; the classical baseline needs no model
    from types import SimpleNamespace

    Params.model = "/ckpt/my-finetune"
    with pytest.raises(ValueError, match="^transformers: cannot tell the model family from '/ckpt/my-finetune'; set "
                                         "params.model_family with one of: qwen2.5-vl, qwen3-vl, qwen3.5$"):
        tracker_params_from(Params(), SimpleNamespace(name="transformers", label="transformers"))
    assert tracker_params_from(Params(), SimpleNamespace(name="ncc", label="ncc")).model_family == "qwen2.5-vl"
    Params.model = None
    monkeypatch.setenv("R1TRACK_MODEL", QWEN3)
    assert tracker_params_from(Params()).model_family == "qwen3-vl"
    Params.model_family = "qwen3.5"
    assert tracker_params_from(Params()).model_family == "qwen3.5"
