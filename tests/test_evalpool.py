"""r1track eval --workers N: sequences shared out over client processes, one run.json, results identical to one
process, faults stop every worker."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from procs import CLI_DRIVER, on_linux_proc, sigint_blocked, wait_for_starting_workers
from r1track.cli import main
from r1track.data import read_got10k
from r1track.evalpool import shard
from r1track.evaluate import EvalAborted, EvalSettings, evaluate
from r1track.synthetic import write_got10k_split
from r1track.testing.openai_server import OpenAIServer, status
from r1track.tracker import TrackerParams
from test_evaluate import wobble_responder


class _Seq:
    def __init__(self, n):
        self.frames = [None] * n


@given(st.lists(st.integers(1, 500), max_size=40), st.integers(1, 6))
def test_shard_deals_every_sequence_once_and_balances_frames(lengths, workers):
    parts = shard([_Seq(n) for n in lengths], workers)
    assert len(parts) == workers
    assert sorted(i for p in parts for i in p) == list(range(len(lengths)))
    assert all(p == sorted(p) for p in parts)
    loads = [sum(lengths[i] for i in p) for p in parts]
    if lengths:  # greedy longest-first: no worker exceeds another by more than the longest sequence
        assert max(loads) - min(loads) <= max(lengths)
    assert shard([_Seq(n) for n in lengths], workers) == parts  # deterministic


def _files(run_dir):
    return {p.relative_to(run_dir).as_posix(): p.read_bytes()
            for p in sorted(run_dir.glob("results*/**/*.txt")) if not p.name.endswith("_time.txt")}


def test_two_workers_write_byte_identical_results_and_one_run_json(tmp_path):
    root = tmp_path / "d"
    write_got10k_split(root, "val", n_sequences=5, n_frames=7, size=(160, 120), seed=3)
    seqs = list(read_got10k(root, "val"))
    params = TrackerParams(crop_size=112)
    with OpenAIServer(responder=wobble_responder) as a, OpenAIServer(responder=wobble_responder) as b:
        runs = {}
        for workers in (1, 2):
            settings = EvalSettings(out_dir=tmp_path / f"w{workers}", backend="openai", servers=(a.base_url, b.base_url),
                                    model="fake-model", concurrency=4, params=params, progress=False, workers=workers)
            runs[workers] = evaluate(seqs, settings)
        assert len(a.chat_requests()) + len(b.chat_requests()) == 2 * 5 * 6
        assert a.chat_requests() and b.chat_requests()
    assert _files(tmp_path / "w2") == _files(tmp_path / "w1") and len(_files(tmp_path / "w1")) == 2 * 5
    doc = json.loads((tmp_path / "w2" / "run.json").read_text())
    assert doc["workers"] == 2 and [s["name"] for s in doc["sequences"]] == [s.name for s in seqs]
    assert doc["frames_requested"] == runs[2].frames_tracked == 5 * 6
    assert all(s["status"] == "done" for s in doc["sequences"])
    assert sorted({s["worker"] for s in doc["sequences"]}) == [0, 1]  # worker 0 is named too (issue 24, row 9)
    assert sum(s["worker"] == 0 for s in doc["sequences"]) >= 2
    assert all("worker" not in s for s in json.loads((tmp_path / "w1" / "run.json").read_text())["sequences"])
    # resume unchanged: a rerun with the other worker count finds everything done
    again = evaluate(seqs, EvalSettings(out_dir=tmp_path / "w2", backend="openai", servers=("http://127.0.0.1:9/v1",),
                                        model="fake-model", concurrency=4, params=params, progress=False))
    assert [o.status for o in again.outcomes] == ["skipped"] * 5


def test_a_fatal_error_in_a_worker_stops_the_run(tmp_path):
    root = tmp_path / "d"
    write_got10k_split(root, "val", n_sequences=3, n_frames=5, size=(160, 120), seed=4)
    seqs = list(read_got10k(root, "val"))
    with OpenAIServer(script=[status(400)] * 50) as server:
        settings = EvalSettings(out_dir=tmp_path / "out", backend="openai", servers=(server.base_url,), model="m",
                                concurrency=2, params=TrackerParams(crop_size=112), progress=False, workers=2)
        with pytest.raises(EvalAborted, match="400"):
            evaluate(seqs, settings)
    assert not (tmp_path / "out" / "run.json").exists()


def test_in_process_engines_refuse_several_workers(tmp_path):
    with pytest.raises(ValueError, match="once per process"):
        EvalSettings(out_dir=tmp_path, backend="vllm", model="/ckpt", workers=2)


@pytest.mark.slow  # two spawned client processes in a subprocess (about 5 s): CI runs it
@pytest.mark.parametrize("who", ["process group", "parent only", "process group, workers starting"])
def test_an_interrupted_eval_with_workers_says_so_once_and_a_rerun_finishes(tmp_path, who):
    """Ctrl-C: a terminal signals the process group, ``kill -INT`` only the parent; either way the parent stops
    the workers. Before, every run ended with Python's resource tracker warning about leaked semaphores (each
    worker's disabled tqdm bar had taken tqdm's multiprocessing lock), and a Ctrl-C while the workers were still
    importing r1track printed their KeyboardInterrupt tracebacks."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root = tmp_path / "d"
    write_got10k_split(root, "val", n_sequences=4, n_frames=40, size=(160, 120), seed=6)
    out = tmp_path / "out"
    with OpenAIServer(responder=wobble_responder, latency_s=0.3) as server:
        args = ["eval", f"{root}/val", "--server", server.base_url, "--model", "fake-model", "--model-family",
                "qwen2.5-vl", "--crop-size", "112", "--workers", "2", "--out", str(out)]
        proc = subprocess.Popen([sys.executable, "-c", CLI_DRIVER, *args, "--no-progress"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        if who.endswith("workers starting"):
            if not on_linux_proc():
                proc.kill()
                pytest.skip("watches the workers through /proc")
            assert all(sigint_blocked(k) for k in wait_for_starting_workers(proc, 2))
            assert server.chat_requests() == []
        else:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None and len(server.chat_requests()) < 8:
                time.sleep(0.05)
            assert proc.poll() is None and len(server.chat_requests()) >= 8, proc.communicate(timeout=60)
        (os.kill if who == "parent only" else os.killpg)(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        lines = [line for line in err.splitlines() if not line.startswith(("settings:", "tracking "))]
        assert lines == ["r1track: interrupted"], err  # no traceback, no resource-tracker warning
        assert not (out / "run.json").exists()
        server.latency_s = 0.0
        assert main([*args, "--no-progress"]) == 0
    doc = json.loads((out / "run.json").read_text())
    assert [s["status"] for s in doc["sequences"]] == ["done"] * 4


def test_a_disabled_progress_bar_takes_no_multiprocessing_lock():
    import subprocess
    import sys

    code = ("from r1track.progress import progress_bar\n"
            "bar = progress_bar(10, 'x', enabled=False)\n"
            "with bar:\n    bar.update(3); bar.set_postfix(fallbacks=1, refresh=False)\n"
            "assert list(progress_bar(3, 'y', enabled=False, iterable=[4, 5, 6])) == [4, 5, 6]\n"
            "import tqdm\nprint(hasattr(tqdm.tqdm, '_lock'))\n"
            "progress_bar(10, 'z', enabled=True).close()\nprint(hasattr(tqdm.tqdm, '_lock'))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]  # an enabled bar does take it: the check can tell


def test_a_worker_stopped_by_ctrl_c_exits_130_quietly(monkeypatch):
    """A worker that gets the Ctrl-C first tells the parent and exits with 130 instead of raising: a raised
    KeyboardInterrupt makes ``multiprocessing`` print the worker's traceback."""
    import queue

    from r1track import evalpool

    async def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evalpool, "evaluate_async", interrupted)
    results, progress = queue.Queue(), queue.Queue()
    try:
        evalpool._worker(0, [], None, results, progress)
        stopped = None
    except BaseException as exc:  # noqa: BLE001 - a re-raised KeyboardInterrupt must fail this test, not end pytest
        stopped = exc
    assert isinstance(stopped, SystemExit) and stopped.code == 130, repr(stopped)
    k, kind, value = results.get_nowait()
    assert (k, kind) == (0, "error") and isinstance(value, KeyboardInterrupt)  # the parent re-raises it: exit 130
