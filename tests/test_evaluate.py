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
from r1track.synthetic import make_sequence, write_got10k_split
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
            "--backend", "openai", "--server", url, "--model", "fake-model", "--model-family", "qwen2.5-vl", "--concurrency", "2",
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
    # every frame asked once; at most the requests in flight at the kill (concurrency 2) and the replies whose
    # log lines were still queued for the log writer (one per sequence in flight) are asked again
    assert frames <= first + second <= frames + 4
    for s in seqs:
        a, _ = read_result(tmp_path / "clean" / "results", s.name)
        b, _ = read_result(tmp_path / "resumed" / "results", s.name)
        assert np.array_equal(a, b), s.name
    assert not list((tmp_path / "resumed" / "partial").glob("*.jsonl"))
    report = json.loads((tmp_path / "resumed" / "report" / "report.json").read_text())
    assert report["protocol"] == "got10k" and 0 <= report["overall"]["ao"] <= 1


def _write_lasot(root: Path, n: int = 2, frames: int = 10) -> list:
    from PIL import Image

    seqs = []
    for k in range(n):
        s = make_sequence(f"toy-{k + 1}", n_frames=frames, seed=20 + k, full_occlusion=(k == 1))
        d = root / "toy" / s.name
        (d / "img").mkdir(parents=True)
        for i, f in enumerate(s.frames, 1):
            Image.fromarray(f).save(d / "img" / f"{i:08d}.jpg", quality=92)
        (d / "groundtruth.txt").write_text("".join(",".join(f"{v:g}" for v in b) + "\n" for b in s.boxes_xywh_orig))
        (d / "full_occlusion.txt").write_text(",".join(str(int(a)) for a in s.absence) + "\n")
        (d / "out_of_view.txt").write_text(",".join("0" for _ in s.frames) + "\n")
        (d / "nlp.txt").write_text("the striped toy\n")
        seqs.append(s)
    return seqs


def _write_trackingnet_test(root: Path, n: int = 2, frames: int = 8) -> list:
    from PIL import Image

    seqs = []
    for k in range(n):
        s = make_sequence(f"tn{k}", n_frames=frames, seed=40 + k)
        (root / "TEST" / "frames" / s.name).mkdir(parents=True)
        (root / "TEST" / "anno").mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(s.frames):  # 0-based, unpadded names
            Image.fromarray(f).save(root / "TEST" / "frames" / s.name / f"{i}.jpg", quality=92)
        (root / "TEST" / "anno" / f"{s.name}.txt").write_text(",".join(f"{v:g}" for v in s.boxes_xywh_orig[0]) + "\n")
        seqs.append(s)
    return seqs


def test_eval_cli_on_lasot_layout_with_oracle_and_text_init(tmp_path, capsys):
    from r1track.cli import main

    _write_lasot(tmp_path / "LaSOT")
    out = tmp_path / "out"
    assert main(["eval", str(tmp_path / "LaSOT"), "--split", "all", "--backend", "oracle", "-o", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "auc" in text and "precision20" in text
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["protocol"] == "otb" and report["overall"]["auc"] > 0.8
    # frames where the target is fully occluded count as misses: the occluded sequence scores lower
    per = report["per_sequence"]
    assert per["toy-2"]["auc"] < per["toy-1"]["auc"]
    assert (out / "report" / "precision_plot.png").is_file()
    with OpenAIServer() as server:  # grounding answers [10,10,60,60]; then the template box is echoed
        assert main(["eval", str(tmp_path / "LaSOT"), "--split", "all", "--init", "text", "--server", server.base_url,
                     "--model", "m", "--model-family", "qwen2.5-vl", "-o", str(tmp_path / "text"), "--no-progress"]) == 0
        grounding = [r for r in server.chat_requests() if "Locate the" in r.text]
        assert len(grounding) == 2 and "the striped toy" in grounding[0].text


def test_test_splits_are_packed_for_the_servers(tmp_path, capsys):
    from r1track.cli import main
    import zipfile

    _write_trackingnet_test(tmp_path / "TN")
    out = tmp_path / "tn-out"
    assert main(["eval", str(tmp_path / "TN"), "--dataset", "trackingnet", "--split", "TEST", "--backend", "ncc", "-o", str(out), "--no-progress"]) == 0
    assert "r1track pack trackingnet" in capsys.readouterr().out
    assert main(["pack", "trackingnet", str(out / "results"), "--dataset", str(tmp_path / "TN"), "-o", str(tmp_path / "tn.zip")]) == 0
    assert sorted(zipfile.ZipFile(tmp_path / "tn.zip").namelist()) == ["tn0.txt", "tn1.txt"]

    root = tmp_path / "GOT10k"
    names = write_got10k_split(root, "test", n_sequences=2, n_frames=6, seed=3)
    for name in names:  # the test split has the first box only, and no labels
        gt = root / "test" / name / "groundtruth.txt"
        gt.write_text(gt.read_text().splitlines()[0] + "\n")
        for label in ("absence.label", "cover.label", "cut_by_image.label", "meta_info.ini"):
            (root / "test" / name / label).unlink()
    out = tmp_path / "got-out"
    assert main(["eval", str(root), "--split", "test", "--backend", "ncc", "-o", str(out), "--no-progress"]) == 0
    assert "r1track pack got10k" in capsys.readouterr().out
    assert main(["pack", "got10k", str(out / "results"), "--dataset", str(root), "-o", str(tmp_path / "got.zip")]) == 0
    assert len(zipfile.ZipFile(tmp_path / "got.zip").namelist()) == 4


def test_missing_and_corrupt_frames_fall_back_and_replay_identically(tmp_path, got10k_val, monkeypatch):
    import shutil

    from datagen import corrupt_jpeg
    from r1track import evaluate as ev

    root, _ = got10k_val
    seq_dir = sorted((root / "val").iterdir())[0]
    (seq_dir / "00000004.jpg").unlink()
    corrupt_jpeg(seq_dir / "00000007.jpg")
    seq = next(s for s in read_got10k(root, "val") if s.name == seq_dir.name)
    monkeypatch.setattr(ev._ReplayLog, "remove", lambda self: None)  # keep the complete log
    out = tmp_path / "a"
    run = evaluate([seq], EvalSettings(out, backend="ncc", progress=False))
    (o,) = run.outcomes
    assert o.status == "done" and o.record.fallbacks.get("missing_frame") == 1 and o.record.fallbacks.get("unreadable_frame") == 1
    full, _ = read_result(out / "results", seq.name)
    assert len(full) == len(seq.boxes_xywh_orig)  # one line per ground-truth row
    assert (full[3] == full[2]).all()  # the missing frame 4 keeps frame 3's box
    log = out / "partial" / f"{seq.name}.jsonl"
    lines = log.read_text().splitlines()
    assert json.loads(lines[2]).get("skip") == "missing_frame" and json.loads(lines[5]).get("skip") == "unreadable_frame"
    # as if cut off after frame 8: the replay goes through both skipped frames without recomputing them
    log.write_text("\n".join(lines[:7]) + "\n")
    shutil.rmtree(out / "results")
    shutil.rmtree(out / "results_pytracking")
    run = evaluate([seq], EvalSettings(out, backend="ncc", progress=False))
    assert run.outcomes[0].replayed == 7 and run.outcomes[0].record.fallbacks == o.record.fallbacks
    again, _ = read_result(out / "results", seq.name)
    assert np.array_equal(full, again)
