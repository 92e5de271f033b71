"""r1track demo (the README's first command) and r1track track."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from r1track.cli import main
from r1track.demo import run_demo
from r1track.synthetic import make_sequence, write_got10k_sequence
from r1track.testing.openai_server import OpenAIServer


def test_demo_runs_the_whole_pipeline(tmp_path):
    r = run_demo(tmp_path / "demo", sequences=2, frames=12, progress=False, say=lambda m: None)
    assert (r.out / "data/GOT10k/train/list.txt").is_file() and (r.out / "data/GOT10k/val/list.txt").is_file()
    for f in ("llamafactory/train.json", "llamafactory/dataset_info.json", "easyr1/train.parquet", "easyr1/val.parquet",
              "verl/train.parquet", "stats.json"):
        assert (r.train_data / f).is_file(), f
    assert sum(r.samples.values()) > 0
    report = json.loads(r.report_json.read_text())
    assert report["protocol"] == "got10k" and 0.0 < report["overall"]["ao"] <= 1.0
    assert len(list((r.run_dir / "results").iterdir())) == 2
    with Image.open(r.gif) as gif:
        assert gif.n_frames == 12
    # a second run replaces its own folder; a foreign folder is refused
    run_demo(tmp_path / "demo", sequences=1, frames=5, progress=False, say=lambda m: None)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError):
        run_demo(tmp_path / "mine", sequences=1, frames=5, progress=False, say=lambda m: None)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_demo_command_from_a_fresh_process(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "r1track", "demo", "--sequences", "1", "--frames", "8", "--no-progress",
                           "-o", str(tmp_path / "d")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Scores of the ncc baseline" in proc.stdout and "demo.gif" in proc.stdout


@pytest.fixture
def frame_folder(tmp_path):
    seq = make_sequence("clip", n_frames=12, seed=4)
    write_got10k_sequence(seq, tmp_path / "clip")
    return tmp_path / "clip", seq


@pytest.mark.parametrize("name", ["track.gif", "track.mp4"])
def test_track_a_frame_folder_with_the_baseline(tmp_path, frame_folder, capsys, name):
    folder, seq = frame_folder
    x, y, w, h = seq.boxes_xywh_orig[0]
    out = tmp_path / "out"
    assert main(["track", str(folder), "--init", f"{x},{y},{w},{h}", "--backend", "ncc", "-o", str(out), "--annotated", name]) == 0
    boxes = np.loadtxt(out / "boxes.txt", delimiter=",")
    assert boxes.shape == (12, 4) and np.array_equal(boxes[0], seq.boxes_xywh_orig[0])
    rows = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    assert rows[0]["status"] == "init" and len(rows) == 12
    if name.endswith(".gif"):
        with Image.open(out / name) as gif:
            assert gif.n_frames == 12
            first = np.asarray(gif.convert("RGB")).astype(int)
        # the initial box is drawn in yellow along its top edge
        edge = first[int(y), int(x) + 2 : int(x + w) - 2]
        assert (np.abs(edge - [255, 255, 0]).max(axis=1) < 80).mean() > 0.9  # GIF palette: close to yellow
    else:
        import av

        with av.open(str(out / name)) as c:
            assert sum(1 for _ in c.decode(video=0)) == 12
    assert "annotated:" in capsys.readouterr().out


def test_track_with_text_initialisation_against_a_server(tmp_path, frame_folder):
    folder, _ = frame_folder
    with OpenAIServer() as server:  # grounding requests get [{"bbox_2d": [10, 10, 60, 60]}]
        rc = main(["track", str(folder), "--text", "the striped box", "--server", server.base_url, "--model", "m",
                   "--model-family", "qwen2.5-vl", "-o", str(tmp_path / "o")])
        assert rc == 0
        grounding = server.chat_requests()[0]
        assert "striped box" in grounding.text and len(grounding.image_urls) == 1
    first = np.loadtxt(tmp_path / "o" / "boxes.txt", delimiter=",")[0]
    assert first[2] > 0 and first[3] > 0


def test_track_input_errors(tmp_path, capsys):
    assert main(["track", str(tmp_path / "nope"), "--init", "1,2,3,4", "--backend", "ncc"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["track", str(tmp_path), "--init", "1,2,0,4", "--backend", "ncc"]) == 2
    assert "positive" in capsys.readouterr().err


@pytest.mark.parametrize("max_side", [200, 450, 800, None])
def test_annotated_jpeg_frame_has_the_box_where_a_full_decode_puts_it(tmp_path, max_side):
    from r1track.video import annotate

    yy, xx = np.mgrid[0:1200, 0:1600]
    frame = np.stack([xx * 60 // 1600, yy * 60 // 1200, (xx + yy) % 60], -1).astype(np.uint8)  # dark: green stands out
    path = tmp_path / "frame.jpg"
    Image.fromarray(frame).save(path, quality=92)
    box = (400.0, 300.0, 480.0, 360.0)
    from_file = np.asarray(annotate(path, box, max_side=max_side))  # reduced DCT decode when max_side allows
    from_array = np.asarray(annotate(np.asarray(Image.open(path).convert("RGB")), box, max_side=max_side))
    s = 1.0 if max_side is None else min(1.0, max_side / 1600)
    assert from_file.shape == from_array.shape == (round(1200 * s), round(1600 * s), 3)
    green = lambda a: (a[..., 1] == 255) & (a[..., 0] == 0) & (a[..., 2] == 0)  # noqa: E731
    assert green(from_file).sum() > 0 and np.array_equal(green(from_file), green(from_array))
    ys, xs = np.nonzero(green(from_file))
    assert abs(xs.min() - 400 * s) <= 1 and abs(ys.min() - 300 * s) <= 1
    assert abs(xs.max() - 880 * s) <= 2 and abs(ys.max() - 660 * s) <= 2
    assert np.abs(from_file.astype(int) - from_array.astype(int)).mean() < 4


def test_track_with_the_vis_preset_records_presence(tmp_path, frame_folder):
    folder, seq = frame_folder
    x, y, w, h = seq.boxes_xywh_orig[0]
    out = tmp_path / "vis"
    assert main(["track", str(folder), "--init", f"{x},{y},{w},{h}", "--backend", "ncc", "--preset", "vis",
                 "-o", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    assert rows[0]["object_presence_score"] == 1.0 and all("redetect" in r for r in rows)
    assert all(r["object_presence_score"] == (1.0 if r["status"] in ("ok", "init") else 0.5) for r in rows)
