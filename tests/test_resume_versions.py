"""Resuming across versions: a run folder written by an earlier r1track resumes when only settings it did not know
are missing and their old behaviour is what this run does; a real difference refuses, naming it.

The fixture ``tests/fixtures/eval_run_9ee8746/`` is an ``r1track eval`` run folder written by the release at commit
9ee8746 itself (``tests/fixtures/make_eval_run_9ee8746.py`` runs that commit's code; its docstring tells the run):
one sequence finished, one cut off after two answered frames, one stopped before any answer.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from r1track.cli import main
from r1track.results import read_result
from r1track.synthetic import write_got10k_split
from r1track.testing.openai_server import OpenAIServer

FIXTURE = Path(__file__).parent / "fixtures" / "eval_run_9ee8746"
_spec = importlib.util.spec_from_file_location("make_fixture", FIXTURE.parent / "make_eval_run_9ee8746.py")
_maker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_maker)  # type: ignore[union-attr]
ARGS = _maker.ARGS  # the flags the old run was made with
# ... and what reproduces it today: that release decoded large JPEG windows at a reduced DCT scale, exact decoding
# is the default since (a resume without --decode fast is refused, named: test_only_a_real_difference_...)
ARGS_NOW = [*ARGS, "--decode", "fast"]
SEQS = ["GOT-10k_Val_000001", "GOT-10k_Val_000002", "GOT-10k_Val_000003"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """The fixture run's sequences, made again (the same synthetic generator and seed)."""
    root = tmp_path_factory.mktemp("d") / "GOT10k"
    write_got10k_split(root, "val", n_sequences=3, n_frames=8, size=(160, 120), seed=7)
    return root


@pytest.fixture(scope="module")
def clean_run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean") / "out"
    with OpenAIServer() as server:
        assert main(["eval", str(data), "--server", server.base_url, "-o", str(out), *ARGS_NOW]) == 0
    return out


def _old_run(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(FIXTURE, out)
    return out


def _replayed(out: Path) -> int:
    """Frames the old run's replay logs hold (answered, kept across the resume)."""
    return sum(1 for p in (out / "partial").glob("*.jsonl") for line in p.read_text().splitlines() if '"i":' in line)


def test_a_run_folder_of_the_previous_release_resumes_and_completes(data, clean_run, tmp_path, caplog):
    out = _old_run(tmp_path)
    finished = {p.name: p.read_bytes() for p in (out / "results" / SEQS[0]).iterdir()}
    replayed = _replayed(out)
    assert replayed >= 1 and not (out / "results" / SEQS[1]).exists()  # the fixture is what it says
    old_invocation = json.loads((out / "run.json").read_text())["invocations"][0]
    with OpenAIServer() as server, caplog.at_level(logging.WARNING):
        assert main(["eval", str(data), "--server", server.base_url, "-o", str(out), *ARGS_NOW]) == 0
        asked = len(server.chat_requests())
    assert asked == 2 * 7 - replayed  # the finished sequence skipped, the answered frames replayed, not asked again
    assert {p.name: p.read_bytes() for p in (out / "results" / SEQS[0]).iterdir()} == finished
    for name in SEQS:  # the results equal an uninterrupted run's
        assert np.array_equal(read_result(out / "results", name)[0], read_result(clean_run / "results", name)[0])
    doc = json.loads((out / "run.json").read_text())
    assert doc["invocations"][0] == old_invocation and len(doc["invocations"]) == 2 and doc["totals"]["failed"] == 0
    assert doc["totals"]["faults"]["connection"] >= 8  # the old run's faults are still counted
    saved = json.loads((FIXTURE / "settings.json").read_text())
    now = json.loads((out / "settings.json").read_text())
    from r1track.evalfolder import compare_saved

    filled, diffs = compare_saved(saved, now)
    assert not diffs
    if filled:  # settings added since 9ee8746 whose old behaviour is the default: filled in and said
        assert doc["invocations"][1]["settings_filled"] == filled
        assert any("saved by an earlier r1track" in r.getMessage() for r in caplog.records)


def test_every_setting_added_since_the_previous_release_says_what_reproduces_old_runs():
    """A new setting must declare the value that reproduces runs saved before it (``legacy=`` on a tracker
    setting, r1track.evalfolder.SAVED_LEGACY for the rest): otherwise no old run folder could resume."""
    from r1track.evalfolder import NEUTRAL_OPTIONS, _flat, fingerprint, legacy_values
    from r1track.evalrun import EvalSettings
    from r1track.tracker import TrackerParams

    def compared(keys):  # what compare_saved compares: the neutral backend options (timeouts, retries) are not
        return {k for k in keys if not (k.startswith("backend_options.") and k.split(".", 1)[1] in NEUTRAL_OPTIONS)}

    saved = compared(_flat(json.loads((FIXTURE / "settings.json").read_text())))
    settings = EvalSettings(out_dir=Path("x"), backend="openai", model="fake-model",
                            params=TrackerParams(model_family="qwen2.5-vl", crop_size=112),
                            backend_options={"timeout_s": 120.0, "retries": 1})
    now = compared(_flat(json.loads(json.dumps(fingerprint(settings)))))
    added = now - saved
    assert added <= set(legacy_values()), f"settings without a legacy value: {sorted(added - set(legacy_values()))}"
    assert saved - now == set(), "a saved setting no longer exists: old runs cannot resume"


@pytest.fixture
def old_without_redetect_after(tmp_path) -> Path:
    """The old run's folder as if ``redetect_after`` had been added after it was saved."""
    out = _old_run(tmp_path)
    doc = json.loads((out / "settings.json").read_text())
    del doc["params"]["redetect_after"]
    (out / "settings.json").write_text(json.dumps(doc))
    return out


@pytest.mark.parametrize("legacy, resumes, words", [
    ({"redetect_after": 0}, True, "redetect_after"),  # its old behaviour is the default: filled in, said
    ({"redetect_after": 3}, False, "params.redetect_after: runs saved before r1track had it worked as 3, this run has 0"),
    ({}, False, "params.redetect_after: not in the saved settings, this run has 0"),  # no declared old value
])
def test_a_missing_setting_resumes_only_when_its_old_behaviour_is_this_runs(data, old_without_redetect_after, capsys,
                                                                             caplog, monkeypatch, legacy, resumes,
                                                                             words):
    import r1track.tracker_params

    declared = {k: v for k, v in r1track.tracker_params.legacy_values().items() if k != "redetect_after"}
    monkeypatch.setattr(r1track.tracker_params, "legacy_values", lambda: {**declared, **legacy})  # the others as declared
    out = old_without_redetect_after
    with OpenAIServer() as server, caplog.at_level(logging.WARNING):
        rc = main(["eval", str(data), "--server", server.base_url, "-o", str(out), *ARGS_NOW])
    err = capsys.readouterr().err
    if resumes:
        assert rc == 0
        assert json.loads((out / "settings.json").read_text())["params"]["redetect_after"] == 0  # filled in
        note = [r.getMessage() for r in caplog.records if "saved by an earlier r1track" in r.getMessage()]
        assert note and words in note[0] and "redetect_after=0" in note[0]
        saved = json.loads((FIXTURE / "settings.json").read_text())["params"]
        also = {f"params.{k}": v for k, v in declared.items() if k not in saved}  # added since, old behaviour = default
        assert json.loads((out / "run.json").read_text())["invocations"][-1]["settings_filled"] == {
            "params.redetect_after": 0, **also}
    else:
        assert rc == 2 and words in err and "other settings" in err
        assert "redetect_after" not in json.loads((out / "settings.json").read_text())["params"]  # left as it was


@pytest.mark.parametrize("flags, refused", [
    (["--timeout", "30", "--retries", "2"], ""),  # how long to wait and how often to ask: no setting of the boxes
    (["--crop-size", "168"], "params.crop_size: saved 112, this run 168"),
    (["--model", "another"], "model: saved 'fake-model', this run 'another'"),
    (["--decode", "exact"], "params.decode: runs saved before r1track had it worked as 'fast', this run has 'exact'"),
])
def test_only_a_real_difference_refuses_and_it_is_named(data, tmp_path, capsys, flags, refused):
    out = _old_run(tmp_path)
    args = [a for a in ARGS_NOW]
    for flag in flags[::2]:  # replace the fixture's value of the flag
        if flag in args:
            i = args.index(flag)
            del args[i:i + 2]
    with OpenAIServer(model="another" if "another" in flags else "fake-model") as server:
        rc = main(["eval", str(data), "--server", server.base_url, "-o", str(out), *args, *flags])
    err = capsys.readouterr().err
    if refused:
        assert rc == 2 and refused in err
    else:
        assert rc == 0, err[-1500:]


# the backend options `r1track eval` saved for each backend at 9ee8746 (its commands/tracking.py backend_options and
# the oracle's, given in eval); an option added since must say what reproduces the runs saved without it
OPTIONS_9EE8746 = {
    "openai": {"timeout_s", "retries"},
    "transformers": {"batch_size", "device", "dtype"},
    "vllm": {"batch_size", "dtype", "max_model_len", "gpu_memory_utilization", "tensor_parallel_size", "enforce_eager",
             "max_images"},
}


@pytest.mark.parametrize("backend", sorted(OPTIONS_9EE8746))
def test_every_backend_option_added_since_the_previous_release_says_what_reproduces_old_runs(backend):
    from r1track.cli import build_parser
    from r1track.commands.tracking import backend_options
    from r1track.evalfolder import NEUTRAL_OPTIONS, legacy_values

    args = build_parser().parse_args(["eval", "x", "--backend", backend])
    saved_now = set(backend_options(args, backend)) - NEUTRAL_OPTIONS  # what settings.json holds now
    added = {f"backend_options.{k}" for k in saved_now - OPTIONS_9EE8746[backend]}
    assert added <= set(legacy_values()), f"backend options without a legacy value: {sorted(added - set(legacy_values()))}"
    for key in added:  # the legacy value is in the saved form (repr of the option's value)
        assert isinstance(legacy_values()[key], str)


def test_a_transformers_run_folder_saved_before_the_engine_options_resumes_only_with_the_stock_attention(tmp_path):
    from r1track.evalfolder import check_fingerprint, fingerprint
    from r1track.evalrun import EvalAborted, EvalSettings
    from r1track.tracker import TrackerParams

    def settings(**options):
        return EvalSettings(out_dir=tmp_path, backend="transformers", model="m",
                            params=TrackerParams(model_family="qwen2.5-vl"),
                            backend_options={"batch_size": 8, "device": "cpu", "dtype": "auto", **options})

    old = json.loads(json.dumps(fingerprint(settings())))  # as 9ee8746 wrote it: no engine options
    (tmp_path / "settings.json").write_text(json.dumps(old))
    defaults = {"vision_attention": "auto", "engine_inputs": "direct", "decode_cache": "dynamic"}
    with pytest.raises(EvalAborted, match="backend_options.vision_attention: runs saved before r1track had it worked "
                                          "as \"'stock'\", this run has \"'auto'\""):
        check_fingerprint(settings(**defaults))
    filled = check_fingerprint(settings(**{**defaults, "vision_attention": "stock"}))
    assert filled == {"backend_options.vision_attention": "'stock'", "backend_options.engine_inputs": "'direct'",
                      "backend_options.decode_cache": "'dynamic'"}
