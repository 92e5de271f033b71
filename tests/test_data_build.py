"""End-to-end tests of `r1track data build` on generated GOT-10k-layout folders and real sequences."""

from __future__ import annotations

import io
import json
import math
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datagen import corrupt_jpeg, red_extent, red_mask, write_red_split
from procs import CLI_DRIVER, on_linux_proc, sigint_blocked, wait_for_starting_workers
from r1track.cli import main
from r1track.data.build import Source, build
from r1track.data.profiles import get_profile
from r1track.reward import read_ground_truth
from r1track.synthetic import write_got10k_split

REPO = Path(__file__).resolve().parents[1]


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def stats(out: Path) -> dict:
    return json.loads((out / "stats.json").read_text())


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def expected_box_crop(box_xywh, win):
    """Independent restatement of the crop transform: x_crop = (x - x0) * out_side / side."""
    x, y, w, h = box_xywh
    k = win["out_side"] / win["side"]
    return ((x - win["x0"]) * k, (y - win["y0"]) * k, (x + w - win["x0"]) * k, (y + h - win["y0"]) * k)


def ints(text: str) -> list[int]:
    return [int(v) for v in re.findall(r"-?\d+", text)]


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def red_root(tmp_path_factory):
    """Six red-target sequences: small and large targets (so fast-mode crops decode at 1/1, 1/2 and 1/4), wide
    and tall ones, and absent stretches in two of them."""
    root = tmp_path_factory.mktemp("red")
    seqs = write_red_split(
        root,
        "train",
        n_sequences=6,
        n_frames=24,
        size=(480, 360),
        target_sizes=[(30, 24), (70, 60), (150, 120), (120, 30), (24, 80), (60, 60)],
        absent_frames={1: [5, 6, 7, 8], 4: [0, 1, 12, 13, 14]},
        seed=3,
    )
    return root, seqs


@pytest.fixture(scope="module")
def red_build(red_root, tmp_path_factory):
    root, seqs = red_root
    out = tmp_path_factory.mktemp("redout") / "set"
    # the fast decode mode: the pixel checks below then cover reduced JPEG decodes too (exact mode: see
    # test_exact_build_writes_the_crops_the_tracker_sends)
    cfg = get_profile("r1track").replace(samples_per_sequence=8, crop_sides=(112, 224, 336), val_fraction=0.2,
                                         decode="fast")
    res = build([Source.parse(f"got10k:{root}@train")], out, cfg, formats=["llamafactory", "easyr1", "verl"], seed=5, progress=False)
    return res.out, seqs


def test_answer_box_sits_on_the_target_pixel_for_pixel(red_build):
    out, seqs = red_build
    samples = manifest(out)
    assert len(samples) >= 30
    by_name = {s.name: s for s in seqs}
    for s in samples:
        seq = by_name[s["sequence"]]
        boxes_int = [ints(b) for b in s["prompt_boxes"]] + [ints(s["answer"])]
        for k, (name, win) in enumerate(zip(s["images"], s["windows"])):
            rgb = decode((out / "llamafactory" / "images" / s["split"] / name).read_bytes())
            side = win["out_side"]
            assert rgb.shape == (side, side, 3) and side == s["crop_side"]
            # the ground-truth box of that frame, mapped by the window, is where the written box says
            f = s["frame_indices"][k]
            gt = seq.boxes_xywh[f]
            assert s["boxes_xywh_orig"][k] == list(gt)
            bx = expected_box_crop(gt, win)
            assert boxes_int[k] == [round(v) for v in bx]
            # ... and where the red target actually is in the decoded JPEG: edges within 1 px
            measured = red_extent(rgb)
            assert np.abs(np.array(measured) - np.array(boxes_int[k])).max() <= 1.0, (s["index"], k, measured, boxes_int[k])
            # pixel centres: red deep inside the box, never outside it (band for bilinear + JPEG)
            scale = side / win["side"]
            margin = 1.5 + scale
            c = np.arange(side) + 0.5
            inside = ((c[:, None] >= bx[1] + margin) & (c[:, None] < bx[3] - margin)) & (
                (c[None, :] >= bx[0] + margin) & (c[None, :] < bx[2] - margin)
            )
            outside = ~(((c[:, None] >= bx[1] - margin) & (c[:, None] < bx[3] + margin)) & (
                (c[None, :] >= bx[0] - margin) & (c[None, :] < bx[2] + margin)
            ))
            red = red_mask(rgb)
            assert red[inside].all() and not red[outside].any()
    # crops decoded at full, 1/2 and 1/4 resolution were all exercised, and the windows were not moved onto
    # the decode grid (a reduced decode samples the planned window between its pixels)
    ratios = [w["side"] / w["out_side"] for s in samples for w in s["windows"]]
    assert any(r < 2 for r in ratios) and any(2 <= r < 4 for r in ratios) and any(r >= 4 for r in ratios)
    assert any(w["side"] % 4 or w["x0"] % 4 for s in samples for w in s["windows"] if w["side"] / w["out_side"] >= 4)


def test_invisible_frames_are_never_used(red_build):
    out, seqs = red_build
    by_name = {s.name: s for s in seqs}
    used = {name: set() for name in by_name}
    for s in manifest(out):
        used[s["sequence"]].update(s["frame_indices"])
        for name in s["images"]:  # and every image really shows the target
            rgb = decode((out / "llamafactory" / "images" / s["split"] / name).read_bytes())
            assert red_mask(rgb).sum() > 4
    for name, seq in by_name.items():
        absent = set(np.flatnonzero(seq.absent).tolist())
        assert not (used[name] & absent)
    assert used["RED_0002"] and used["RED_0005"]  # the sequences with absent stretches still gave samples
    st = stats(out)
    assert st["frames"]["skipped"]["invisible"] == 9


def test_templates_precede_search_within_the_gap(red_build):
    out, _ = red_build
    for s in manifest(out):
        t, f = s["frame_indices"]
        assert 0 < f - t <= 100
        assert s["roles"] == ["template", "search"]


def test_writer_schemas(red_build):
    import pyarrow.parquet as pq

    out, _ = red_build
    samples = manifest(out)
    st = stats(out)
    n = st["samples"]["written"]
    assert n["train"] > 0 and n["val"] > 0
    # LLaMA-Factory ShareGPT
    lf_dir = out.parent  # default dataset_dir: the parent of --out
    for split in ("train", "val"):
        records = json.loads((out / "llamafactory" / f"{split}.json").read_text())
        assert len(records) == n[split]
        for rec in records:
            user, assistant = rec["messages"]
            assert (user["role"], assistant["role"]) == ("user", "assistant")
            assert user["content"].count("<image>") == len(rec["images"]) == 2
            assert user["content"].startswith("<image><image>")
            assert re.fullmatch(r"\[\d+,\d+,\d+,\d+\]", assistant["content"])
            for p in rec["images"]:
                assert (lf_dir / p).is_file() and p.startswith("set/llamafactory/images/")
    entries = json.loads((out / "llamafactory" / "dataset_info.json").read_text())
    assert set(entries) == {"r1track_train", "r1track_val"}
    assert entries["r1track_train"]["file_name"] == "set/llamafactory/train.json"
    assert entries["r1track_train"]["formatting"] == "sharegpt"
    # EasyR1
    by_split = {sp: [s for s in samples if s["split"] == sp] for sp in ("train", "val")}
    for split in ("train", "val"):
        t = pq.read_table(out / "easyr1" / f"{split}.parquet")
        assert t.schema.names == ["problem", "answer", "images"]
        assert str(t.schema.field("images").type) == "list<element: struct<bytes: binary, path: string>>"
        rows = t.to_pylist()
        assert len(rows) == n[split]
        for row, m in zip(rows, by_split[split]):
            assert row["problem"].count("<image>") == len(row["images"]) == 2
            assert json.loads(row["answer"]) == ints(m["answer"])
            for img, name in zip(row["images"], m["images"]):
                assert img["path"] == name
                assert img["bytes"] == (out / "llamafactory" / "images" / split / name).read_bytes()
    # verl
    for split in ("train", "val"):
        t = pq.read_table(out / "verl" / f"{split}.parquet")
        assert t.schema.names == ["data_source", "prompt", "images", "ability", "reward_model", "extra_info"]
        rows = t.to_pylist()
        assert len(rows) == n[split]
        for row, m in zip(rows, by_split[split]):
            assert row["data_source"] == "r1track"
            (msg,) = row["prompt"]
            assert msg["role"] == "user" and msg["content"].count("<image>") == len(row["images"]) == 2
            assert row["reward_model"] == {"style": "rule", "ground_truth": m["answer"]}
            assert json.loads(row["reward_model"]["ground_truth"]) == ints(m["answer"])
            assert list(read_ground_truth(row["reward_model"]["ground_truth"])) == ints(m["answer"])  # the reward reads it
            assert row["extra_info"]["sequence"] == m["sequence"] and row["extra_info"]["frame_indices"] == m["frame_indices"]
            assert row["extra_info"]["split"] == split and row["extra_info"]["crop_side"] == m["crop_side"]


def test_triples_and_their_schema(red_root, tmp_path):
    import pyarrow.parquet as pq

    root, seqs = red_root
    out = tmp_path / "tri"
    assert main([
        "data", "build", f"got10k:{root}@train", "--out", str(out), "--triples", "--format", "llamafactory,easyr1,verl",
        "--samples-per-sequence", "5", "--memory-max-gap", "3", "--max-gap", "10", "--quiet",
    ]) == 0
    by_name = {s.name: s for s in seqs}
    samples = manifest(out)
    assert samples
    for s in samples:
        t, m, f = s["frame_indices"]
        assert t < m < f and f - m <= 3 and f - t <= 10
        assert s["roles"] == ["template", "memory", "search"] and s["prompt_version"] == "r1track-mem-v1"
        assert not by_name[s["sequence"]].absent[[t, m, f]].any()
    rec = json.loads((out / "llamafactory" / "train.json").read_text())[0]
    assert rec["messages"][0]["content"].count("<image>") == len(rec["images"]) == 3
    row = pq.read_table(out / "easyr1" / "train.parquet").to_pylist()[0]
    assert row["problem"].count("<image>") == len(row["images"]) == 3
    row = pq.read_table(out / "verl" / "train.parquet").to_pylist()[0]
    assert row["prompt"][0]["content"].count("<image>") == len(row["images"]) == 3


def test_skips_are_reported_counted_and_never_crash(tmp_path):
    root = tmp_path / "got"
    names = write_got10k_split(root, "train", n_sequences=5, n_frames=16, size=(160, 120), full_occlusion_every=2)
    split = root / "train"
    corrupt = split / names[0] / "00000005.jpg"
    corrupt_jpeg(corrupt)  # unreadable frame
    (split / names[2] / "00000007.jpg").unlink()  # missing frame
    Image.new("RGB", (160, 120)).save(split / names[3] / "00000017.jpg")  # a frame without ground truth
    gt = split / names[4] / "groundtruth.txt"
    lines = gt.read_text().splitlines()
    lines[2] = "10.0,10.0,0.0,12.0"  # zero-area box
    gt.write_text("\n".join(lines) + "\n")
    absence = {n: np.loadtxt(split / n / "absence.label", dtype=int) for n in names}
    out = tmp_path / "out"
    cfg = get_profile("r1track").replace(samples_per_sequence=16, balance=(), val_fraction=0.0)
    res = build([Source.parse(str(root))], out, cfg, seed=1, progress=False)
    st = res.stats
    assert st["sequences"]["read"] == 5 and st["sequences"]["usable"] == 4
    assert st["sequences"]["skipped"] == {"frame_count_mismatch": 1}
    skipped = st["frames"]["skipped"]
    n_invisible = sum(int(absence[n].sum()) for n in names if n != names[3])
    n_invisible -= int(absence[names[2]][6])  # the missing frame counts as missing, not invisible
    assert skipped["invisible"] == n_invisible
    assert skipped["missing_frame"] == 1 and skipped["zero_area_box"] == 1
    assert skipped["frame_count_mismatch"] == 16
    assert st["samples"]["dropped"].get("unreadable_frame", 0) >= 1
    reasons = {(i["reason"], Path(i["path"]).name if i["reason"] == "unreadable_frame" else "") for i in st["issues"]}
    assert ("unreadable_frame", "00000005.jpg") in reasons
    assert any(i["reason"] == "frame_count_mismatch" and names[3] in i["path"] for i in st["issues"])
    for s in manifest(out):
        frames = [Path(f).name for f in s["frames"]]
        if s["sequence"] == names[0]:
            assert "00000005.jpg" not in frames
        if s["sequence"] == names[4]:
            assert 2 not in s["frame_indices"]
        assert s["sequence"] != names[3]
        assert not absence[s["sequence"]][s["frame_indices"]].any()


def test_malformed_input_is_an_error_naming_file_and_line(tmp_path, capsys):
    root = tmp_path / "got"
    names = write_got10k_split(root, "train", n_sequences=2, n_frames=6, size=(160, 120))
    gt = root / "train" / names[1] / "groundtruth.txt"
    lines = gt.read_text().splitlines()
    lines[2] = "1.0,2.0,abc,4.0"
    gt.write_text("\n".join(lines) + "\n")
    assert main(["data", "build", str(root), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{names[1]}/groundtruth.txt:3: expected numbers" in err
    assert not (tmp_path / "o").exists()


def _skewed_root(root: Path):
    """18 sequences with near-square targets and 6 with wide ones, all mid-sized: the raw
    distribution is far from even over aspect bins."""
    sizes = [(40 + k, 38 + k) for k in range(18)] + [(120, 50), (110, 48), (126, 52), (100, 44), (96, 40), (130, 56)]
    write_red_split(root, "train", n_sequences=24, n_frames=24, size=(240, 180), target_sizes=sizes, seed=9)


def _hist(values, edges):
    return np.bincount(np.searchsorted(np.asarray(edges), values, side="right"), minlength=len(edges) + 1).tolist()


def test_balancing_changes_the_histograms_as_reported(tmp_path):
    from r1track.data.balance import EDGES

    root = tmp_path / "skewed"
    _skewed_root(root)
    results = {}
    for balance in ("none", "aspect,scale"):
        out = tmp_path / f"out-{balance.replace(',', '-')}"
        assert main(["data", "build", str(root), "--out", str(out), "--balance", balance, "--samples-per-sequence", "4",
                     "--val-fraction", "0", "--crop-sizes", "112", "--quiet"]) == 0
        st, samples = stats(out), manifest(out)
        h = st["histograms"]
        # "after" is exactly the histogram of the written samples' search targets
        boxes = np.array([s["boxes_xywh_orig"][-1] for s in samples])
        sizes = np.array([s["image_size"] for s in samples], dtype=float)
        aspect = np.log2(boxes[:, 2] / boxes[:, 3])
        scale = 0.5 * np.log2(boxes[:, 2] * boxes[:, 3] / (sizes[:, 0] * sizes[:, 1]))
        assert h["aspect"]["after"] == _hist(aspect, EDGES["aspect"])
        assert h["scale"]["after"] == _hist(scale, EDGES["scale"])
        # "before": every usable frame that has an earlier usable frame within max_gap (all but frame 0)
        gts = [np.loadtxt(root / "train" / f"RED_{k:04d}" / "groundtruth.txt", delimiter=",")[1:] for k in range(1, 25)]
        allb = np.concatenate(gts)
        assert h["aspect"]["before"] == _hist(np.log2(allb[:, 2] / allb[:, 3]), EDGES["aspect"])
        results[balance] = (h, len(samples), aspect)
    (h0, n0, a0), (h1, n1, a1) = results["none"], results["aspect,scale"]
    assert n0 == n1 == 96 and h0["aspect"]["before"] == h1["aspect"]["before"]
    # unbalanced follows the raw data; balanced gives wide targets (log2 w/h >= 1) a far larger share
    wide0, wide1 = (a0 >= 1).mean(), (a1 >= 1).mean()
    assert abs(wide0 - 0.25) < 0.01 and wide1 > 0.4
    assert h1["aspect"]["spread_after"] > h0["aspect"]["spread_after"] + 0.05
    # the reported evenness is the normalised entropy of the reported counts
    c = np.array(h1["aspect"]["after"], float)
    p = c[c > 0] / c.sum()
    assert h1["aspect"]["spread_after"] == pytest.approx(-(p * np.log(p)).sum() / math.log(len(c)), abs=1e-6)


def test_same_seed_gives_byte_identical_outputs_for_any_worker_count(red_root, tmp_path):
    root, _ = red_root
    trees = []
    for run, workers in (("a", 1), ("b", 1), ("c", 2)):
        out = tmp_path / run / "set"
        assert main(["data", "build", f"got10k:{root}@train", "--out", str(out), "--format", "llamafactory,easyr1,verl",
                     "--workers", str(workers), "--seed", "11", "--crop-sizes", "112,224", "--quiet"]) == 0
        trees.append(tree_bytes(out))
    assert trees[0].keys() == trees[1].keys() == trees[2].keys()
    assert len(trees[0]) > 20
    for name in trees[0]:
        assert trees[0][name] == trees[1][name] == trees[2][name], name
    out = tmp_path / "d" / "set"
    assert main(["data", "build", f"got10k:{root}@train", "--out", str(out), "--format", "llamafactory",
                 "--seed", "12", "--crop-sizes", "112,224", "--quiet"]) == 0
    assert tree_bytes(out)["samples.jsonl"] != trees[0]["samples.jsonl"]


class Boom(RuntimeError):
    pass


def test_a_failing_build_leaves_nothing_behind(red_root, tmp_path):
    root, _ = red_root
    out = tmp_path / "set"

    def explode(n):
        if n == 3:
            raise Boom("disk full")

    with pytest.raises(Boom):
        build([Source.parse(f"got10k:{root}@train")], out, formats=["llamafactory", "easyr1", "verl"], progress=False,
              _after_sample=explode)
    assert list(tmp_path.iterdir()) == []


CRASH_SCRIPT = """
import os, signal, sys
from r1track.data.build import Source, build
def die(n):
    if n == 4:
        os.kill(os.getpid(), signal.SIGKILL)
build([Source.parse(sys.argv[1])], sys.argv[2], formats=["llamafactory", "easyr1", "verl"], progress=False,
      _after_sample=die)
"""


def test_a_killed_build_never_leaves_a_file_that_looks_complete(red_root, tmp_path):
    root, _ = red_root
    out = tmp_path / "set"
    proc = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, f"got10k:{root}@train", str(out)], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    leftovers = list(tmp_path.iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".set.partial-")
    assert not (leftovers[0] / "stats.json").exists()
    # a later build removes the dead run's partial folder and completes
    assert main(["data", "build", f"got10k:{root}@train", "--out", str(out), "--quiet"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["set"]
    assert (out / "stats.json").is_file()


@pytest.mark.slow  # two spawned render workers in a subprocess (about 3 s): CI runs it
@pytest.mark.skipif(not on_linux_proc(), reason="watches the workers through /proc")
def test_ctrl_c_while_the_render_workers_start_says_so_once_and_leaves_nothing(red_root, tmp_path):
    """A terminal's Ctrl-C reaches the whole process group. The moment it lands here, the workers' Python is up
    and importing r1track, before any of r1track's code could ignore it: each used to print a KeyboardInterrupt
    traceback under the parent's one line."""
    import os

    root, _ = red_root
    out = tmp_path / "set"
    args = ["data", "build", f"got10k:{root}@train", "--out", str(out), "--format", "llamafactory", "--workers", "2"]
    proc = subprocess.Popen([sys.executable, "-c", CLI_DRIVER, *args, "--quiet"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        workers = wait_for_starting_workers(proc, 2)
        assert all(sigint_blocked(k) for k in workers)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert err.splitlines() == ["r1track: interrupted"], err
    assert list(tmp_path.iterdir()) == []  # no partial folder, no output
    assert main([*args, "--quiet"]) == 0 and (out / "stats.json").is_file()


def test_existing_output_needs_overwrite(red_root, tmp_path, capsys):
    root, _ = red_root
    out = tmp_path / "set"
    args = ["data", "build", f"got10k:{root}@train", "--out", str(out), "--quiet", "--samples-per-sequence", "1"]
    assert main(args) == 0
    before = stats(out)
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite", "--seed", "3"]) == 0
    assert stats(out)["seed"] == 3 and before["seed"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_bad_options_are_clear_errors(red_root, tmp_path, capsys):
    root, _ = red_root
    assert main(["data", "build", str(root), "--out", str(tmp_path / "o"), "--crop-sizes", "300"]) == 2
    assert "280 or 308" in capsys.readouterr().err
    assert main(["data", "build", str(root), "--out", str(tmp_path / "o"), "--crop-sizes", "560"]) == 2
    assert "112..504" in capsys.readouterr().err
    assert main(["data", "build", str(root), "--out", str(tmp_path / "o"), "--format", "csv"]) == 2
    assert "unknown output format" in capsys.readouterr().err
    assert main(["data", "build", str(root), "--out", str(tmp_path / "o"), "--profile", "nope"]) == 2
    assert "unknown profile" in capsys.readouterr().err
    assert main(["data", "build", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_report_shows_both_histograms(red_root, tmp_path, capsys):
    root, _ = red_root
    assert main(["data", "build", f"got10k:{root}@train", "--out", str(tmp_path / "o"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "aspect histogram" in out and "scale histogram" in out and "->" in out
    assert "r1track_train, r1track_val" in out


def test_reference_profile_recipe(red_root, tmp_path):
    """r1track-5k: one pair per sequence, either temporal order, independent crops with factor in
    [2, 8] and centre shift within 0.2 of the side, 336 px, r1track-v0 prompt."""
    root, seqs = red_root
    out = tmp_path / "ref"
    assert main(["data", "build", f"got10k:{root}@train", "--out", str(out), "--profile", "r1track-5k", "--quiet",
                 "--val-fraction", "0"]) == 0
    samples = manifest(out)
    assert len(samples) == len(seqs) and len({s["sequence"] for s in samples}) == len(seqs)
    for s in samples:
        assert s["crop_side"] == 336 and s["prompt_version"] == "r1track-v0"
        for box, win in zip(s["boxes_xywh_orig"], s["windows"]):
            x, y, w, h = box
            factor = win["side"] / math.sqrt(w * h)
            assert 2.0 - 1e-9 <= factor <= 8.0 + 4 / math.sqrt(w * h)  # ceil and the decode grid add < 4 px
            shift_x = (win["x0"] + win["side"] / 2) - (x + w / 2)
            shift_y = (win["y0"] + win["side"] / 2) - (y + h / 2)
            assert abs(shift_x) <= 0.2 * win["side"] + 3 and abs(shift_y) <= 0.2 * win["side"] + 3
    rec = json.loads((out / "llamafactory" / "train.json").read_text())[0]
    assert "Please identify the target specified by the bounding box" in rec["messages"][0]["content"]


def test_real_sequences_crops_show_the_window(realseq_dir, tmp_path):
    out = tmp_path / "real"
    cfg = get_profile("r1track").replace(samples_per_sequence=3, crop_sides=(112, 336))
    build([Source.parse(str(realseq_dir))], out, cfg, formats=["llamafactory"], seed=2, workers=2, progress=False)
    samples = manifest(out)
    assert len(samples) == 18
    for s in samples:
        for k, (name, win) in enumerate(zip(s["images"], s["windows"])):
            got = decode((out / "llamafactory" / "images" / s["split"] / name).read_bytes()).astype(int)
            # independent crop of the same window from a full-resolution decode
            frame = np.asarray(Image.open(s["frames"][k]).convert("RGB"))
            side, x0, y0 = int(win["side"]), int(win["x0"]), int(win["y0"])
            canvas = np.zeros((side, side, 3), np.uint8)
            H, W = frame.shape[:2]
            ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + side, W), min(y0 + side, H)
            canvas[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = frame[iy0:iy1, ix0:ix1]
            want = np.asarray(Image.fromarray(canvas).resize((win["out_side"],) * 2, Image.Resampling.BILINEAR)).astype(int)
            assert np.abs(got - want).mean() < 8.0
            bx = expected_box_crop(s["boxes_xywh_orig"][k], win)
            bx = [min(max(v, 0), win["out_side"]) for v in bx]
            written = ints(s["prompt_boxes"][0]) if k == 0 else ints(s["answer"])
            assert written == [round(v) for v in bx]


def test_exact_build_writes_the_crops_the_tracker_sends(large_target_seq, tmp_path):
    """Training and tracking see the same pixels: by default the builder decodes like the tracker's default
    (exact), so every written crop is byte for byte the JPEG the openai backend would send for that window,
    whether the tracker got the frame as a path or as an array."""
    import base64

    from r1track.backends.base import RequestImage
    from r1track.backends.openai import cached_data_url
    from r1track.crop import CropWindow, DecodeMode, load_for_window, render_crop
    from r1track.tracker import TrackerParams

    assert get_profile("r1track").decode == TrackerParams().decode == DecodeMode.EXACT
    out = tmp_path / "exact"
    cfg = get_profile("r1track").replace(samples_per_sequence=4, crop_sides=(112, 336), val_fraction=0.0)
    build([Source.parse(str(large_target_seq.frames[0].parent))], out, cfg, formats=["llamafactory"], seed=4,
          progress=False)
    assert stats(out)["config"]["decode"] == "exact"
    samples = manifest(out)
    assert samples
    large = 0
    for s in samples:
        for name, win, frame in zip(s["images"], s["windows"], s["frames"]):
            window = CropWindow(int(win["x0"]), int(win["y0"]), int(win["side"]), int(win["out_side"]))
            large += window.side > 2 * window.out_side
            written = (out / "llamafactory" / "images" / s["split"] / name).read_bytes()
            for source in (frame, np.asarray(Image.open(frame).convert("RGB"))):
                crop = render_crop(load_for_window(source, window, decode=TrackerParams().decode), window)
                sent = cached_data_url(RequestImage(crop.image, "search"))  # what the backend puts in the request
                assert sent == "data:image/jpeg;base64," + base64.b64encode(written).decode()
    assert large  # windows a fast decode would have taken at reduced scale were among them


def test_default_output_path_matches_the_committed_dataset_info(red_root, tmp_path, monkeypatch):
    root, _ = red_root
    committed = json.loads((REPO / "datasets_info" / "dataset_info.json").read_text())
    monkeypatch.chdir(tmp_path)
    assert main(["data", "build", f"got10k:{root}@train", "--quiet", "--samples-per-sequence", "2"]) == 0
    ds_dir = tmp_path / "datasets_info"
    built = json.loads((ds_dir / "r1track" / "llamafactory" / "dataset_info.json").read_text())
    for name, entry in built.items():
        assert committed[name] == entry
        records = json.loads((ds_dir / entry["file_name"]).read_text())
        assert records
        for rec in records:  # LLaMA-Factory joins image paths to dataset_dir (media_dir default)
            assert all((ds_dir / p).is_file() for p in rec["images"])
    hub = committed["r1track_5k_sharegpt"]
    assert hub["hf_hub_url"] == "WangBiao/R1-Track-Data-ShareGPT" and hub["formatting"] == "sharegpt"
    assert "file_name" not in hub


def test_lasot_and_trackingnet_layouts_build_with_their_labels(red_root, tmp_path):
    """The same red sequences laid out as LaSOT (1-based, occlusion labels) and TrackingNet (0-based
    unpadded names, one frame missing): built together, every answer box is on the red target."""
    import shutil

    root, seqs = red_root
    la, tn = tmp_path / "lasot", tmp_path / "tn" / "TRAIN_0"
    for k, s in enumerate(seqs[:3]):
        src = root / "train" / s.name
        dst = la / "red" / f"red-{k + 1}"
        (dst / "img").mkdir(parents=True)
        for f in sorted(src.glob("*.jpg")):
            shutil.copy(f, dst / "img" / f.name)
        shutil.copy(src / "groundtruth.txt", dst / "groundtruth.txt")
        (dst / "full_occlusion.txt").write_text(",".join(str(int(a)) for a in s.absent))
        (dst / "out_of_view.txt").write_text(",".join("0" for _ in s.absent))
        (dst / "nlp.txt").write_text("a red box")
        (tn / "frames" / s.name).mkdir(parents=True)
        for i, f in enumerate(sorted(src.glob("*.jpg"))):
            if not (k == 0 and i == 3):
                shutil.copy(f, tn / "frames" / s.name / f"{i}.jpg")
        (tn / "anno").mkdir(exist_ok=True)
        shutil.copy(src / "groundtruth.txt", tn / "anno" / f"{s.name}.txt")
    (tn.parent / "TEST" / "anno").mkdir(parents=True)  # TEST is not read by default
    (tn.parent / "TEST" / "frames").mkdir()
    out = tmp_path / "set"
    assert main(["data", "build", f"lasot:{la}", str(tn.parent), "--out", str(out), "--samples-per-sequence", "6",
                 "--val-fraction", "0", "--quiet"]) == 0
    st = stats(out)
    assert st["sequences"]["read"] == 6 and st["frames"]["skipped"]["missing_frame"] == 1
    assert st["frames"]["skipped"]["invisible"] == int(seqs[1].absent.sum())  # LaSOT copy only (TrackingNet has no labels)
    samples = manifest(out)
    assert {s["dataset"] for s in samples} == {"lasot", "trackingnet-TRAIN_0"}
    for s in samples:
        if s["dataset"] == "trackingnet-TRAIN_0" and s["sequence"] == seqs[0].name:
            assert 3 not in s["frame_indices"]
        for k, (name, _win) in enumerate(zip(s["images"], s["windows"])):
            rgb = decode((out / "llamafactory" / "images" / "train" / name).read_bytes())
            written = ints(s["prompt_boxes"][0]) if k == 0 else ints(s["answer"])
            if s["dataset"] == "lasot" or not seqs[[q.name for q in seqs].index(s["sequence"])].absent[s["frame_indices"][k]]:
                assert np.abs(np.array(red_extent(rgb)) - np.array(written)).max() <= 1.0


def test_reference_profile_think_data_uses_the_reference_layout(red_root, tmp_path):
    from r1track.prompts import THINK_WRAPPER

    root, _ = red_root
    out = tmp_path / "think5k"
    assert main(["data", "build", f"got10k:{root}@train", "--out", str(out), "--profile", "r1track-5k", "--quiet",
                 "--val-fraction", "0", "--think", "--num-samples", "1"]) == 0
    text = json.loads((out / "llamafactory" / "train.json").read_text())[0]["messages"][0]["content"]
    assert text.startswith(THINK_WRAPPER + " <image> <image>Please identify")  # instruction, images, task
    out2 = tmp_path / "think_default"
    assert main(["data", "build", f"got10k:{root}@train", "--out", str(out2), "--profile", "r1track-5k", "--quiet",
                 "--val-fraction", "0", "--think", "--think-layout", "images-first", "--num-samples", "1"]) == 0
    text = json.loads((out2 / "llamafactory" / "train.json").read_text())[0]["messages"][0]["content"]
    assert text.startswith("<image><image>" + THINK_WRAPPER)
