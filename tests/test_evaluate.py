"""r1track eval: concurrency, several servers, both result layouts, resume after a kill."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from r1track.data import read_got10k
from r1track.evaluate import EvalAborted, EvalSettings, evaluate
from r1track.results import read_result
from r1track.synthetic import write_got10k_split
from r1track.testing.openai_server import OpenAIServer, status
from r1track.tracker import TrackerParams

BOX = re.compile(r"\[(-?\d+),(-?\d+),(-?\d+),(-?\d+)\]")


def wobble_responder(body: dict) -> str:
    """Deterministic, request-dependent answer: the template box shifted by a few pixels chosen from the
    search image's bytes (so every frame's answer depends on what the tracker sent)."""
    content = body["messages"][-1]["content"]
    text = "".join(p.get("text", "") for p in content if p.get("type") == "text")
    search = [p for p in content if p.get("type") == "image_url"][-1]["image_url"]["url"]
    x1, y1, x2, y2 = (int(v) for v in BOX.search(text).groups())
    d = sum(search[-40:].encode()) % 7 - 3
    return f"[{x1 + d},{y1 - d},{x2 + d},{y2 - d}]"


@pytest.fixture
def got10k_val(tmp_path):
    root = tmp_path / "GOT10k"
    write_got10k_split(root, "val", n_sequences=4, n_frames=16, full_occlusion_every=3, seed=7)
    return root, list(read_got10k(root, "val"))


def test_oracle_run_writes_both_layouts_and_scores_high(tmp_path, got10k_val):
    _, seqs = got10k_val
    run = evaluate(seqs, EvalSettings(out_dir=tmp_path / "out", backend="oracle", concurrency=3, progress=False))
    assert [o.status for o in run.outcomes] == ["done"] * 4
    assert run.frames_tracked == sum(len(s) - 1 for s in seqs)
    for s in seqs:
        boxes, times = read_result(tmp_path / "out" / "results", s.name)
        boxes_pt, _ = read_result(tmp_path / "out" / "results_pytracking", s.name, "pytracking")
        assert np.array_equal(boxes, boxes_pt) and len(boxes) == len(s) and len(times) == len(s)
        assert np.array_equal(boxes[0], s.boxes_xywh_orig[0])
    doc = json.loads((tmp_path / "out" / "run.json").read_text())
    assert doc["backend"] == "oracle" and len(doc["sequences"]) == 4
    assert not (tmp_path / "out" / "partial").exists() or not list((tmp_path / "out" / "partial").iterdir())


def test_hundreds_of_requests_in_flight_across_two_servers(tmp_path):
    root = tmp_path / "d"
    write_got10k_split(root, "val", n_sequences=24, n_frames=6, size=(160, 120), seed=1)
    seqs = list(read_got10k(root, "val"))
    with OpenAIServer(latency_s=0.2, capacity=64, record_bodies=True) as a, OpenAIServer(latency_s=0.2, capacity=64) as b:
        settings = EvalSettings(out_dir=tmp_path / "out", backend="openai", servers=(a.base_url, b.base_url),
                                model="fake-model", concurrency=24, progress=False, params=TrackerParams(crop_size=112))
        run = evaluate(seqs, settings)
        assert all(o.status == "done" for o in run.outcomes)
        assert len(a.chat_requests()) + len(b.chat_requests()) == 24 * 5
        # balanced, and each sequence stays on one server (vLLM's prefix cache keeps its template)
        assert 40 <= len(a.chat_requests()) <= 80
        assert a.max_in_flight + b.max_in_flight >= 20
        servers = {o.server for o in run.outcomes}
        assert servers == {a.base_url, b.base_url}
    # a request per sequence per frame, from 24 sequences in flight at once: ~5 rounds of 0.2 s, not 120
    assert run.seconds < 0.2 * 120 / 4


def test_fatal_server_error_aborts_and_keeps_logs(tmp_path, got10k_val):
    _, seqs = got10k_val
    with OpenAIServer(script=[status(400)] * 100) as server:
        settings = EvalSettings(out_dir=tmp_path / "out", backend="openai", servers=(server.base_url,), model="m",
                                concurrency=2, progress=False)
        with pytest.raises(EvalAborted, match="400"):
            evaluate(seqs, settings)


def test_changed_settings_refuse_to_resume(tmp_path, got10k_val):
    _, seqs = got10k_val
    evaluate(seqs[:1], EvalSettings(out_dir=tmp_path / "o", backend="oracle", progress=False))
    with pytest.raises(EvalAborted, match="other settings"):
        evaluate(seqs[:1], EvalSettings(out_dir=tmp_path / "o", backend="oracle", progress=False,
                                        params=TrackerParams(search_factor=5.0)))


def _eval_cmd(root: Path, out: Path, url: str) -> list[str]:
    return [sys.executable, "-m", "r1track", "eval", str(root), "--dataset", "got10k", "--split", "val",
            "--backend", "openai", "--server", url, "--model", "fake-model", "--concurrency", "2",
            "--retries", "0", "-o", str(out), "--no-progress"]


def test_killed_run_resumes_with_identical_results_and_no_repeated_work(tmp_path, got10k_val):
    root, seqs = got10k_val
    frames = sum(len(s) - 1 for s in seqs)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with OpenAIServer(responder=wobble_responder, latency_s=0.05) as server:
        clean = subprocess.run(_eval_cmd(root, tmp_path / "clean", server.base_url), capture_output=True, text=True, env=env, timeout=120)
        assert clean.returncode == 0, clean.stderr
        assert len(server.chat_requests()) == frames
    with OpenAIServer(responder=wobble_responder, latency_s=0.05) as server:
        proc = subprocess.Popen(_eval_cmd(root, tmp_path / "resumed", server.base_url), env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 60
        while len(server.chat_requests()) < frames // 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        first = len(server.chat_requests())
        assert 0 < first < frames
        assert list((tmp_path / "resumed" / "partial").glob("*.jsonl"))  # cut-off sequences left replay logs
        again = subprocess.run(_eval_cmd(root, tmp_path / "resumed", server.base_url), capture_output=True, text=True, env=env, timeout=120)
        assert again.returncode == 0, again.stderr
        second = len(server.chat_requests()) - first
    # every frame asked once; at most the requests in flight at the kill (concurrency 2) are asked again
    assert frames <= first + second <= frames + 2
    for s in seqs:
        a, _ = read_result(tmp_path / "clean" / "results", s.name)
        b, _ = read_result(tmp_path / "resumed" / "results", s.name)
        assert np.array_equal(a, b), s.name
    assert not list((tmp_path / "resumed" / "partial").glob("*.jsonl"))
    report = json.loads((tmp_path / "resumed" / "report" / "report.json").read_text())
    assert report["protocol"] == "got10k" and 0 <= report["overall"]["ao"] <= 1
