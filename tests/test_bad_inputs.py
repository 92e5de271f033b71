"""A corpus of broken inputs run through ``r1track data build``, ``eval``, ``track`` and ``pack`` in
subprocesses, the way a user meets them: no traceback on any stderr, every problem named with its file,
counted in ``stats.json`` / ``run.json`` / ``frames.jsonl``, and exit statuses as documented (0 done,
1 eval with sequences not tracked, 2 usage or malformed-file error)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

W, H, N = 96, 72, 8
BOX = (30.0, 20.0, 24.0, 18.0)


def _frame(i: int) -> Image.Image:
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 1] = 80 + 4 * i
    x, y, w, h = (int(v) for v in BOX)
    img[y + i : y + i + h, x + i : x + i + w] = (255, 0, 0)
    return Image.fromarray(img)


def _seq(root: Path, name: str, *, n_frames: int = N, gt_rows: int | None = None, boxes: dict[int, str] | None = None,
         mode: str = "RGB", ext: str = ".jpg") -> Path:
    """``root/name`` with frames 00000001.jpg.. and groundtruth.txt (row i overridable as text)."""
    folder = root / name
    folder.mkdir(parents=True)
    for i in range(n_frames):
        img = _frame(i)
        img = img.convert(mode) if mode != "RGB" else img
        img.save(folder / f"{i + 1:08d}{ext}")
    rows = []
    for i in range(gt_rows if gt_rows is not None else n_frames):
        x, y, w, h = BOX
        rows.append((boxes or {}).get(i, f"{x + i},{y + i},{w},{h}"))
    (folder / "groundtruth.txt").write_text("\n".join(rows) + "\n")
    return folder


def _huge_header(path: Path, width: int, height: int) -> None:
    """Rewrite a small baseline JPEG's SOF0 size fields: the header claims width x height."""
    data = bytearray(path.read_bytes())
    k = data.index(b"\xff\xc0")
    data[k + 5 : k + 7] = height.to_bytes(2, "big")
    data[k + 7 : k + 9] = width.to_bytes(2, "big")
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    data = root / "data"
    _seq(data, "good_a")
    _seq(data, "good_b")
    (_seq(data, "truncated") / "00000003.jpg").write_bytes((data / "good_a" / "00000003.jpg").read_bytes()[:300])
    (_seq(data, "random_bytes") / "00000004.jpg").write_bytes(np.random.default_rng(0).bytes(900))
    (_seq(data, "zero_byte") / "00000005.jpg").write_bytes(b"")
    (_seq(data, "missing_frame") / "00000004.jpg").unlink()
    _seq(data, "gt_more_lines", gt_rows=N + 2)
    _seq(data, "gt_fewer_lines", gt_rows=N - 2)
    _seq(data, "bad_boxes", boxes={2: "nan,nan,nan,nan", 3: "10,10,-5,8", 4: "10,10,0,0"})
    _seq(data, "outside_box", boxes={i: "5000,5000,17,50" for i in range(N)})
    _seq(data, "absurd_box", boxes={0: "0,0,1e12,1e12"})
    _seq(data, "grayscale", mode="L")
    _seq(data, "cmyk", mode="CMYK")
    _seq(data, "png", ext=".png")
    _huge_header(_seq(data, "huge_image") / "00000001.jpg", 20000, 10000)
    _huge_header(data / "good_b" / "00000006.jpg", 20000, 10000)  # a bomb in the middle of a sequence
    _huge_header(_seq(data, "large_frame") / "00000005.jpg", 10000, 10000)  # over the limit, under Pillow's error
    (data / "good_a" / "00000009.jpg").symlink_to(data / "good_a" / "00000009.jpg")  # symlink loop (a frame)
    (data / "loop").symlink_to(data / "loop")  # symlink loop (a sequence folder)
    # UTF-16 ground truth (with its byte-order mark) is read; a stray 0xff byte is an error naming file and line
    utf16 = _seq(data, "utf16")
    (utf16 / "groundtruth.txt").write_bytes((utf16 / "groundtruth.txt").read_text().encode("utf-16"))
    bad = root / "badfile"
    _seq(bad, "ok")
    latin = _seq(bad, "latin1")
    (latin / "groundtruth.txt").write_bytes(b"# r\xe9sum\xe9\n" + (latin / "groundtruth.txt").read_bytes())
    ff = _seq(root / "badbyte", "ff")
    (ff / "groundtruth.txt").write_bytes((ff / "groundtruth.txt").read_bytes()[:20] + b"\xff\n")
    return root


def _r1track(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="default")
    return subprocess.run([sys.executable, "-m", "r1track", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def _no_traceback(p: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    assert "Warning" not in p.stderr, p.stderr[-3000:]


def test_build_skips_and_counts_every_data_problem(corpus, tmp_path):
    out = tmp_path / "built"
    p = _r1track("data", "build", f"generic:{corpus / 'data'}", "--out", str(out), "--quiet", "--val-fraction", "0",
                 "--samples-per-sequence", "12", "--max-per-sequence", "40", "--balance", "none", "--max-gap", "all",
                 cwd=tmp_path)
    _no_traceback(p)
    assert p.returncode == 0, p.stderr
    st = json.loads((out / "stats.json").read_text())
    frames, seqs = st["frames"]["skipped"], st["sequences"]["skipped"]
    assert seqs == {"frame_count_mismatch": 1, "no_usable_frames": 1}  # gt_fewer_lines; outside_box (every box)
    assert frames["missing_frame"] == 1 + 2  # missing_frame's gap; gt_more_lines' two extra rows
    assert frames["zero_area_box"] == 3  # NaN, negative and zero boxes: the same reason as in GOT-10k folders
    assert frames["box_outside_image"] == N and frames["oversized_box"] == 1
    assert frames["image_too_large"] >= 1
    issues = {(i["reason"], Path(i["path"]).name) for i in st["issues"]}
    assert ("image_too_large", "00000001.jpg") in issues
    assert ("frame_count_mismatch", "gt_fewer_lines") in issues
    broken = {str(corpus / "data" / s / f) for s, f in
              (("truncated", "00000003.jpg"), ("random_bytes", "00000004.jpg"), ("zero_byte", "00000005.jpg"))}
    unreadable = {i["path"] for i in st["issues"] if i["reason"] == "unreadable_frame"}
    assert unreadable and unreadable <= broken  # samples drawn on a broken frame are dropped, named, counted
    listed = [i["path"] for i in st["issues"] if i["reason"] == "unreadable_frame"]
    assert len(listed) == len(unreadable) == frames["unreadable_frame"]  # a broken frame is one issue, one frame ...
    assert st["samples"]["dropped"]["unreadable_frame"] >= len(listed)  # ... however many samples it drops
    used = {f for line in (out / "samples.jsonl").read_text().splitlines() for f in json.loads(line)["frames"]}
    assert not used & broken and not any("huge_image/00000001" in f or "good_b/00000006" in f for f in used)
    seqs_used = {json.loads(line)["sequence"] for line in (out / "samples.jsonl").read_text().splitlines()}
    assert {"grayscale", "cmyk", "png", "utf16"} <= seqs_used  # converted / decoded, not skipped
    assert st["samples"]["written"]["train"] > 0


@pytest.mark.parametrize("folder,line", [("badfile", 1), ("badbyte", 2)])
def test_build_names_file_and_line_of_non_utf8_ground_truth(corpus, tmp_path, folder, line):
    p = _r1track("data", "build", f"generic:{corpus / folder}", "--out", str(tmp_path / "o"), "--quiet", cwd=tmp_path)
    _no_traceback(p)
    assert p.returncode == 2
    assert f"groundtruth.txt:{line}: ground truth is not UTF-8" in p.stderr
    assert not (tmp_path / "o").exists()


def test_eval_falls_back_on_bad_frames_and_reports_unaligned_sequences(corpus, tmp_path):
    out = tmp_path / "run"
    p = _r1track("eval", str(corpus / "data"), "--backend", "ncc", "-o", str(out), "--no-progress", "--concurrency", "4", cwd=tmp_path)
    _no_traceback(p)
    assert p.returncode == 1  # some sequences were not trackable as stored
    run = json.loads((out / "run.json").read_text())
    by = {s["name"]: s for s in run["sequences"]}
    assert by["missing_frame"]["fallbacks"].get("missing_frame") == 1 and by["missing_frame"]["status"] == "done"
    assert by["gt_more_lines"]["fallbacks"].get("missing_frame") == 2
    assert by["truncated"]["fallbacks"].get("unreadable_frame") == 1
    assert by["random_bytes"]["fallbacks"].get("unreadable_frame") == 1
    assert by["zero_byte"]["fallbacks"].get("unreadable_frame") == 1
    assert by["good_b"]["fallbacks"].get("image_too_large") == 1
    assert by["large_frame"]["fallbacks"].get("image_too_large") == 1
    for name in ("grayscale", "cmyk", "png", "utf16"):
        assert by[name]["status"] == "done" and not set(by[name]["fallbacks"]) & {"unreadable_frame", "missing_frame"}
    for name in ("gt_fewer_lines", "outside_box", "absurd_box", "huge_image"):
        assert by[name]["status"] == "bad-data", name
        assert f"NOT TRACKED" in p.stdout and name in p.stdout
    assert "box_outside_image" in by["outside_box"]["error"] and "oversized_box" in by["absurd_box"]["error"]
    assert str(corpus / "data" / "huge_image" / "00000001.jpg") in by["huge_image"]["error"]
    # one box per ground-truth row, not shifted: the missing frame has the previous frame's box
    boxes = np.loadtxt(out / "results" / "missing_frame" / "missing_frame_001.txt", delimiter=",")
    assert boxes.shape == (N, 4) and (boxes[3] == boxes[2]).all()
    assert "protocol: OTB/LaSOT" in p.stdout and "rerun the same command to retry" not in p.stdout


def test_eval_reads_only_the_named_sequences_and_accepts_one_sequence_folder(corpus, tmp_path):
    p = _r1track("eval", str(corpus / "badfile"), "--backend", "ncc", "--sequences", "ok", "-o", str(tmp_path / "a"),
                 "--no-progress", cwd=tmp_path)
    _no_traceback(p)
    assert p.returncode == 0, p.stderr
    p = _r1track("eval", str(corpus / "badfile" / "ok"), "--backend", "ncc", "-o", str(tmp_path / "b"), "--no-progress",
                 "--max-frames", "4", cwd=tmp_path)
    _no_traceback(p)
    assert p.returncode == 0, p.stderr
    assert "not scored: --max-frames 4" in p.stdout and "build the server zip" not in p.stdout
    p = _r1track("eval", str(corpus / "badfile"), "--backend", "ncc", "-o", str(tmp_path / "c"), "--no-progress", cwd=tmp_path)
    _no_traceback(p)
    assert p.returncode == 2 and "latin1/groundtruth.txt:1: ground truth is not UTF-8" in p.stderr


def test_track_refuses_a_box_off_the_image_and_falls_back_on_corrupt_frames(corpus, tmp_path):
    p = _r1track("track", str(corpus / "data" / "truncated"), "--init", "5000,5000,17,50", "--backend", "ncc",
                 "-o", str(tmp_path / "t1"), cwd=tmp_path)
    _no_traceback(p)
    assert p.returncode == 2 and "box_outside_image" in p.stderr and "00000001.jpg" in p.stderr
    p = _r1track("track", str(corpus / "data" / "truncated"), "--init", ",".join(map(str, BOX)), "--backend", "ncc",
                 "-o", str(tmp_path / "t2"), cwd=tmp_path)
    _no_traceback(p)
    assert p.returncode == 0, p.stderr
    rows = [json.loads(x) for x in (tmp_path / "t2" / "frames.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows].count("unreadable_frame") == 1 and "00000003.jpg" in p.stderr
    assert len((tmp_path / "t2" / "boxes.txt").read_text().splitlines()) == N


def test_pack_refuses_results_one_frame_short(corpus, tmp_path):
    test = tmp_path / "GOT" / "test"
    seq = _seq(test, "GOT-10k_Test_000001")
    (seq / "groundtruth.txt").write_text("30,20,24,18\n")
    (seq / "00000005.jpg").unlink()
    (test / "list.txt").write_text("GOT-10k_Test_000001\n")
    out = tmp_path / "run"
    p = _r1track("eval", str(tmp_path / "GOT"), "--split", "test", "--backend", "ncc", "-o", str(out), "--no-progress", cwd=tmp_path)
    _no_traceback(p)
    assert p.returncode == 0, p.stderr
    res = out / "results" / "GOT-10k_Test_000001" / "GOT-10k_Test_000001_001.txt"
    assert len(res.read_text().splitlines()) == N  # the missing frame has its (fallback) line
    p = _r1track("pack", "got10k", str(out / "results"), "--dataset", str(tmp_path / "GOT"), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    res.write_text("".join(res.read_text().splitlines(keepends=True)[:-1]))
    p = _r1track("pack", "got10k", str(out / "results"), "--dataset", str(tmp_path / "GOT"), "-o", str(tmp_path / "x.zip"), cwd=tmp_path)
    _no_traceback(p)
    assert p.returncode == 2 and f"{res} has {N - 1} boxes for {N} frames" in p.stderr
    assert not (tmp_path / "x.zip").exists()


def test_track_accepts_a_clip_numbered_from_later_frames(tmp_path):
    clip = tmp_path / "clip"
    clip.mkdir()
    for k in (41, 42, 44):  # frame 43 is missing
        _frame(k - 41).save(clip / f"frame_{k:05d}.jpg")
    p = _r1track("track", str(clip), "--init", ",".join(map(str, BOX)), "--backend", "ncc", "-o", str(tmp_path / "o"),
                 cwd=tmp_path)
    _no_traceback(p)
    assert p.returncode == 0, p.stderr
    rows = [json.loads(x) for x in (tmp_path / "o" / "frames.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows][2] == "missing_frame" and len(rows) == 4
