"""The transformers engine's speed paths (issue 20).

Fast (no torch): the engine report (records per engine call, sums, the summary), preparation ahead of the engine
call, ``run.json`` and the eval summary carrying the report, the speed options as flags and PyTracking
parameters, the direct inputs' patch layout and calibration against a processor written here from the
documented behaviour, and the GPU benchmark's command line.

Slow (real transformers, one virtual environment per verified release): ``tests/upstream/hf_engine_probe.py``
proves the direct inputs equal to the processor's for every crop side of every family, the dense vision path
equal to the stock one (float32, <= 1e-5) and the greedy replies identical the old way, the new way and with
the static cache; ``benchmarks/gpu_engine.py --tiny`` runs end to end on the CPU.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from r1track.backends import BACKENDS, BackendSpec, make_backend
from r1track.backends.engine_report import BatchRecord, EngineReport, format_engine_report
from r1track.backends.hf_inputs import CalibrationError, Geometry, calibrate, patchify
from r1track.backends.hf_vision import VERIFIED_TRANSFORMERS
from r1track.backends.local import EngineReply, LocalEngineBackend
from r1track.tracker import Tracker, TrackerParams

ROOT = Path(__file__).resolve().parents[1]

PROBE_VENVS = {"hf": "5.17", "vllm": "5.19", "llamafactory": "5.6"}
"""The test environments the speed paths are proven in, and the transformers release each holds."""


# ---------------------------------------------------------------------------------------------- report
def test_engine_report_sums_every_batch_and_says_where_the_time_went():
    report = EngineReport("transformers", 8, {"device": "cuda", "vision_attention": "dense (...)"}, [
        BatchRecord(8, 1.0, 2.0, idle_s=0.0, prepare_s=0.4, inputs_s=0.1, vision_s=1.0, prefill_s=0.3, decode_s=0.6,
                    decode_steps=17, peak_memory_mb=2048.0, path="direct"),
        BatchRecord(4, 0.5, 1.0, idle_s=0.25, prepare_s=0.2, inline=1, inputs_s=0.05, vision_s=0.5, prefill_s=0.15,
                    decode_s=0.3, decode_steps=17, peak_memory_mb=3072.0, path="processor"),
    ])
    doc = report.to_json()
    t = doc["totals"]
    assert t["batches"] == 2 and t["requests"] == 12 and t["fill_mean"] == 0.75
    assert t["seconds"] == 3.0 and t["idle_s"] == 0.25 and t["inline"] == 1 and t["decode_steps"] == 34
    assert (t["prepare_s"], t["inputs_s"], t["vision_s"], t["prefill_s"], t["decode_s"]) == (0.6, 0.15, 1.5, 0.45, 0.9)
    assert t["peak_memory_mb"] == 3072.0 and t["paths"] == {"direct": 1, "processor": 1}
    assert len(doc["per_batch"]) == 2 and doc["per_batch"][1]["inline"] == 1
    assert "per_batch" not in report.to_json(per_batch=False)
    text = format_engine_report(json.loads(json.dumps(doc)))
    assert "2 batches of up to 8 (mean fill 75 %)" in text and "vision 1.5 s" in text and "decode 0.9 s" in text
    assert "11 of 12 requests prepared ahead" in text and "peak GPU memory 3.00 GiB" in text
    assert "vision_attention dense" in text
    assert "no engine call" in format_engine_report(EngineReport("x", 4).to_json())


class Timed(LocalEngineBackend):
    """An engine that prepares each request ahead (marks its payload) and reports a split of each call."""

    name = "timed"
    extra = "timed"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.unprepared = 0

    def _load(self):
        return object()

    def _prepare_request(self, request):
        request.payload = ("ready", request.frame_index)

    def _generate(self, engine, requests):
        self.unprepared += sum(r.payload != ("ready", r.frame_index) for r in requests)
        self._note(vision_s=0.25, decode_s=0.5, path="direct")
        self._note(vision_s=0.25, peak_memory_mb=10.0)
        self._note(peak_memory_mb=5.0, prefill_s=None)
        return [EngineReply(f"{r.sequence}:{r.frame_index}", "stop", 3, 2) for r in requests]


def _frame(seed):
    return np.random.default_rng(seed).integers(0, 255, (120, 160, 3), dtype=np.uint8)


def test_requests_are_prepared_before_their_batch_and_every_call_is_recorded():
    backend = Timed("ckpt", batch_size=4)

    async def run():
        trackers = [Tracker(backend, TrackerParams(crop_size=112), name=f"s{i}") for i in range(6)]
        for t in trackers:
            await t.initialize_async(_frame(0), (40, 30, 30, 30))
        for frame in range(1, 4):
            await asyncio.gather(*(t.track_async(_frame(frame)) for t in trackers))
        await backend.aclose()

    asyncio.run(run())
    assert backend.unprepared == 0  # the tracker's prepare step ran the engine's preparation
    records = backend.batch_records
    assert len(records) == backend.stats["batches"] and sum(r.requests for r in records) == 18
    assert all(r.fill == r.requests / 4 and r.seconds >= 0 and r.idle_s >= 0 for r in records)
    assert all(r.vision_s == 0.5 and r.decode_s == 0.5 and r.peak_memory_mb == 10.0 and r.prefill_s is None
               for r in records)  # numbers add up across a call's groups, peaks take the maximum
    assert backend.engine_report().to_json()["totals"]["vision_s"] == round(0.5 * len(records), 3)


@pytest.fixture
def timed_engine(monkeypatch):
    spec = BackendSpec("timed", "test_hf_engine:Timed", "test engine", in_process=True, grounding=True)
    monkeypatch.setitem(BACKENDS, "timed", spec)
    return spec


def test_eval_puts_the_engine_report_in_run_json_and_the_summary(timed_engine, tmp_path, capsys):
    from r1track.cli import main
    from r1track.synthetic import write_got10k_split

    write_got10k_split(tmp_path / "data", "val", n_sequences=3, n_frames=4, seed=1)
    model = tmp_path / "ckpt"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    out = tmp_path / "run"
    rc = main(["eval", str(tmp_path / "data"), "--split", "val", "--backend", "timed", "--model", str(model),
               "--no-progress", "--crop-size", "112", "-o", str(out)])
    assert rc == 0
    doc = json.loads((out / "run.json").read_text())
    engine = doc["engine"]
    assert engine["engine"] == "timed" and engine["totals"]["requests"] == 9
    assert len(engine["per_batch"]) == engine["totals"]["batches"] >= 1
    assert doc["invocations"][-1]["engine"]["requests"] == 9  # the invocation keeps the sums
    printed = capsys.readouterr().out
    assert "engine timed:" in printed and "per call: vision" in printed


def test_other_backends_write_no_engine_report(tmp_path):
    from r1track.cli import main
    from r1track.synthetic import write_got10k_split

    write_got10k_split(tmp_path / "data", "val", n_sequences=1, n_frames=3, seed=2)
    out = tmp_path / "run"
    assert main(["eval", str(tmp_path / "data"), "--split", "val", "--backend", "ncc", "--no-progress", "-o",
                 str(out)]) == 0
    assert "engine" not in json.loads((out / "run.json").read_text())


# ---------------------------------------------------------------------------------------------- options
def test_speed_options_are_flags_backend_options_and_pytracking_parameters(monkeypatch):
    from r1track.cli import build_parser
    from r1track.commands.tracking import backend_options
    from r1track.integrations import pytracking as adapter

    args = build_parser().parse_args(["eval", "x", "--backend", "transformers", "--model", "/ckpt",
                                      "--vision-attention", "stock", "--engine-inputs", "processor",
                                      "--decode-cache", "static"])
    opts = backend_options(args, "transformers")
    assert (opts["vision_attention"], opts["engine_inputs"], opts["decode_cache"]) == ("stock", "processor", "static")
    backend = make_backend("transformers", model="/ckpt", **opts)
    assert backend.options.decode_cache == "static" and backend._engine is None  # nothing loaded
    defaults = backend_options(build_parser().parse_args(["eval", "x", "--backend", "transformers"]), "transformers")
    assert (defaults["vision_attention"], defaults["engine_inputs"], defaults["decode_cache"]) == ("auto", "direct",
                                                                                                    "dynamic")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "x", "--vision-attention", "fast"])
    with pytest.raises(ValueError, match="engine_inputs must be one of direct, processor"):
        make_backend("transformers", model="/ckpt", engine_inputs="gpu")

    monkeypatch.delenv("R1TRACK_MODEL", raising=False)
    monkeypatch.delenv("R1TRACK_BACKEND", raising=False)
    from r1track.integrations import pytracking_session

    # the cache lives in pytracking_session (r1track.integrations.pytracking re-exports it): replaced there, so the
    # backend built below never leaks into later tests (test_pytracking_plugin checks the cache is empty)
    monkeypatch.setattr(pytracking_session, "_BACKENDS", {})

    class Params:
        backend = "transformers"
        model = "/ckpt/merged"
        vision_attention = "stock"
        decode_cache = "static"

    built = adapter.backend_from(Params())
    assert built.options.vision_attention == "stock" and built.options.decode_cache == "static"
    assert built.options.engine_inputs == "direct"


def test_the_speed_modules_import_without_torch():
    code = ("import sys; import r1track.backends.hf, r1track.backends.hf_inputs, r1track.backends.hf_vision, "
            "r1track.backends.engine_report, r1track.commands.tracking; "
            "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_verified_transformers_releases_are_the_tested_ones():
    assert set(VERIFIED_TRANSFORMERS) == set(PROBE_VENVS.values())


# ---------------------------------------------------------------------------------------------- direct inputs
QWEN25 = Geometry(patch=14, merge=2, temporal=2, min_pixels=3136, max_pixels=12845056)


def test_patchify_puts_each_patch_where_the_processor_does():
    rng = np.random.default_rng(3)
    h, w = 56, 84  # 4 x 6 patches of 14, 2 x 3 merge blocks
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    out = patchify(image, QWEN25)
    assert out.shape == (24, 3, 14, 14) and out.dtype == np.uint8
    # row order: merge blocks row-major, and inside each block its 2 x 2 patches row-major
    k = 0
    for block_row in range(2):
        for block_col in range(3):
            for r in range(2):
                for c in range(2):
                    y, x = (2 * block_row + r) * 14, (2 * block_col + c) * 14
                    assert np.array_equal(out[k], image[y:y + 14, x:x + 14].transpose(2, 0, 1)), k
                    k += 1


class FakeImageProcessor:
    """A Qwen-style image processor written from the documented behaviour: float64 rescale and normalisation
    per pixel, cast to float32, then rows of (channel, temporal copy, patch row, patch column) for each patch,
    merge blocks row-major. ``mode``: ``exact``; ``blur`` (a pixel's output depends on its neighbour);
    ``layout`` (rows in (patch row, patch column, channel) order); ``resize`` (scales the image up first)."""

    mean = np.array([0.48145466, 0.4578275, 0.40821073])
    std = np.array([0.26862954, 0.26130258, 0.27577711])

    def __init__(self, mode="exact", geo=QWEN25):
        self.mode, self.geo = mode, geo

    def __call__(self, images, return_tensors="np"):
        g = self.geo
        rows, grids = [], []
        for img in images:
            if self.mode == "resize":
                img = img.resize((img.width + g.factor, img.height + g.factor))
            a = np.asarray(img).astype(np.float64)
            if self.mode == "blur":
                a = (a + np.roll(a, 1, axis=1)) / 2
            a = ((a / 255.0 - self.mean) / self.std).astype(np.float32)
            gh, gw = a.shape[0] // g.patch, a.shape[1] // g.patch
            for br in range(gh // g.merge):
                for bc in range(gw // g.merge):
                    for r in range(g.merge):
                        for c in range(g.merge):
                            y, x = (br * g.merge + r) * g.patch, (bc * g.merge + c) * g.patch
                            patch = a[y:y + g.patch, x:x + g.patch]  # (p, p, 3)
                            if self.mode == "layout":
                                rows.append(np.concatenate([patch.reshape(-1)] * g.temporal))
                            else:
                                chw = patch.transpose(2, 0, 1)[:, None].repeat(g.temporal, axis=1)
                                rows.append(chw.reshape(-1))
            grids.append([1, gh, gw])
        return {"pixel_values": np.stack(rows), "image_grid_thw": np.array(grids)}


def test_calibration_reads_the_processors_own_values_per_channel():
    table = calibrate(FakeImageProcessor(), QWEN25)
    expected = ((np.arange(256)[None, :] / 255.0 - FakeImageProcessor.mean[:, None])
                / FakeImageProcessor.std[:, None]).astype(np.float32)
    assert table.dtype == np.float32 and np.array_equal(table, expected)


@pytest.mark.parametrize("mode", ["blur", "layout", "resize"])
def test_calibration_refuses_a_processor_it_cannot_reproduce(mode):
    with pytest.raises(CalibrationError):
        calibrate(FakeImageProcessor(mode), QWEN25)


def test_geometry_keeps_only_what_the_processor_leaves_unresized():
    assert QWEN25.keeps(336, 336) and QWEN25.keeps(448, 252)
    assert not QWEN25.keeps(350, 336) and not QWEN25.keeps(28, 28)  # not a multiple of 28; under min_pixels
    assert QWEN25.tokens(336, 336) == 144 and QWEN25.tokens(448, 252) == 16 * 9


def test_fixed_requests_are_the_same_every_time_and_follow_the_truth():
    from r1track.backends import KIND_GROUND, KIND_TRACK
    from r1track.testing.requests import fixed_requests

    params = TrackerParams(crop_size=112)
    first = fixed_requests(params, n_sequences=2, n_frames=3, seed=5)
    again = fixed_requests(params, n_sequences=2, n_frames=3, seed=5)
    assert [r.kind for r in first] == [KIND_GROUND, KIND_TRACK, KIND_TRACK, KIND_TRACK] * 2
    assert [r.chat_content(["u"] * len(r.images)) for r in first] == [r.chat_content(["u"] * len(r.images)) for r in again]
    assert all(r.sampling.regex is None for r in first if r.kind == KIND_GROUND)
    assert [r.sequence for r in first] == ["probe0"] * 4 + ["probe1"] * 4
    no_ground = fixed_requests(params, n_sequences=1, n_frames=2, seed=5, grounding=False, prefix="x")
    assert [r.kind for r in no_ground] == [KIND_TRACK] * 2 and no_ground[0].sequence == "x0"


# ---------------------------------------------------------------------------------------------- benchmark
def _benchmark_module():
    spec = importlib.util.spec_from_file_location("gpu_engine", ROOT / "benchmarks" / "gpu_engine.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_benchmark_teaches_its_use_and_prints_ratios_against_before():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_engine.py"), "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "--tiny" in proc.stdout and "--budget-s" in proc.stdout
    bench = _benchmark_module()
    split = {"seconds": 1.0, "inputs_s": 0.1, "vision_s": 0.2, "prefill_s": 0.3, "decode_s": 0.4}
    rows = [{"family": "qwen2.5-vl", "run": "after", "way": "after", "inflight": False, "frames": 100, "fps": 60.0,
             "median_batch": split, "fill": 1.0, "peak_memory_mb": 20480.0, "gpu_util": 75.0},
            {"family": "qwen2.5-vl", "run": "before", "way": "before", "inflight": False, "frames": 100, "fps": 17.0,
             "median_batch": split, "fill": 1.0, "peak_memory_mb": 10240.0, "gpu_util": 33.0},
            {"family": "qwen2.5-vl", "run": "replies", "requests": 64, "after_identical": 60}]
    text = bench.table(rows)
    after = next(line for line in text.splitlines() if "| after |" in line)
    assert "| 60.00 | 3.53 | 75 |" in after and "| 20.0 |" in after
    assert "after_identical" in text


# ---------------------------------------------------------------------------------------------- slow
def _venv_python(name: str) -> Path:
    from upstream import venvs

    return venvs.ensure_venv(name)


@pytest.mark.slow
@pytest.mark.parametrize("venv", sorted(PROBE_VENVS))
def test_direct_inputs_dense_vision_and_replies_are_exact(venv, tmp_path):
    from r1track.models import get_family
    from upstream.venvs import venv_env

    py = _venv_python(venv)
    out = tmp_path / "probe.json"
    proc = subprocess.run([str(py), str(ROOT / "tests" / "upstream" / "hf_engine_probe.py"), str(tmp_path / "work"),
                           str(out)], env=venv_env(py), capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-4000:]
    doc = json.loads(out.read_text())
    assert doc["transformers"].startswith(PROBE_VENVS[venv] + ".") and not doc["problems"]
    assert set(doc["families"]) == {"qwen2.5-vl", "qwen3-vl", "qwen3.5"}
    for name, result in doc["families"].items():
        sides = {f"{s}x{s}" for s in get_family(name).data_crop_sides}
        for checked in result["inputs"]:
            assert sides <= set(checked["sizes"]) and checked["pixel_dtype"] == "torch.float32"
        assert all(max(v["max_abs_diff"].values()) <= 1e-5 for v in result["vision"].values())
        assert result["replies"]["identical"] and result["replies"]["distinct_replies"] > 1
        if (venv, name) == ("llamafactory", "qwen3.5"):  # transformers 5.6 has no static cache for linear attention
            assert result["replies"]["static_cache"].startswith("dynamic (the static cache failed")
        else:
            assert result["replies"]["static_cache"] == "static"
        assert result["refusal"]["auto"].startswith("stock") and result["refusal"]["dense"].startswith("dense")


@pytest.mark.slow
def test_gpu_benchmark_runs_tiny_on_the_cpu(tmp_path):
    from upstream.venvs import venv_env

    py = _venv_python("hf")
    out = tmp_path / "bench"
    proc = subprocess.run([str(py), str(ROOT / "benchmarks" / "gpu_engine.py"), "--tiny", "--families", "qwen2.5-vl",
                           "--sequences", "8", "--frames", "3", "--batch-size", "4", "--reply-requests", "4",
                           "--out", str(out)], env=venv_env(py), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    runs = {r["run"]: r for r in rows}
    assert set(runs) == {"after", "before", "replies", "after+static"}
    assert all(runs[k]["frames"] == 16 and runs[k]["fps"] > 0 and not runs[k]["failed"]
               for k in ("after", "before", "after+static"))
    assert runs["after"]["settings"]["vision_attention"].startswith("dense")
    assert runs["before"]["settings"]["inputs"].startswith("processor")
    assert runs["replies"]["after_identical"] == runs["replies"]["static_identical"] == 4
    assert "| qwen2.5-vl | after |" in (out / "table.md").read_text() and "| after |" in proc.stdout
