"""Dataset layouts (issue 24, rows 1, 4 and 6): every reader checks the folder's signature before reading, auto-
detection prefers the most specific one, and visibility labels are honoured whatever layout flag reads them.

Row 1 is checked the strong way: a GOT-10k folder -- as a dataset root, as a split, as one sequence folder -- is
built under every layout flag, and no sample may put a box on a frame its own label files (read here, not by
r1track) mark absent or fully covered: either the flag is refused, naming got10k, or the labels are honoured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1track.cli import main
from r1track.data import DatasetError, detect_kind, read_dataset
from r1track.data.build import BuildError, Source, build
from r1track.data.profiles import get_profile
from r1track.synthetic import write_got10k_split

KINDS = ("auto", "got10k", "lasot", "trackingnet", "generic")


def _labels(path: Path) -> list[int]:
    return [int(v) for v in path.read_text().split()]


@pytest.fixture(scope="module")
def got(tmp_path_factory) -> Path:
    """A GOT-10k dataset root (train/ split) whose labels also mark a frame absent with cover > 0 and a frame
    fully covered with absence 0, so each label file must be honoured on its own."""
    root = tmp_path_factory.mktemp("got") / "GOT10k"
    names = write_got10k_split(root, "train", n_sequences=3, n_frames=24, size=(160, 120), full_occlusion_every=2)
    seq = root / "train" / names[1]
    absence, cover = _labels(seq / "absence.label"), _labels(seq / "cover.label")
    absence[3], cover[3] = 1, 8  # absent, though the cover label says fully visible
    absence[5], cover[5] = 0, 0  # fully covered, though not marked absent
    (seq / "absence.label").write_text("".join(f"{v}\n" for v in absence))
    (seq / "cover.label").write_text("".join(f"{v}\n" for v in cover))
    return root


def _hidden(frame: str) -> bool:
    """Whether the label files next to ``frame`` mark it absent or fully covered (GOT-10k numbers frames from 1)."""
    path = Path(frame)
    i = int(path.stem) - 1
    return _labels(path.parent / "absence.label")[i] == 1 or _labels(path.parent / "cover.label")[i] == 0


@pytest.mark.parametrize("form", ["root", "split", "sequence"])
@pytest.mark.parametrize("kind", KINDS)
def test_no_layout_flag_puts_a_box_on_a_frame_labelled_absent_or_covered(got, tmp_path, kind, form):
    path = {"root": got, "split": got / "train", "sequence": got / "train" / "GOT-10k_Train_000002"}[form]
    cfg = get_profile("r1track").replace(samples_per_sequence=12, val_fraction=0.0, absent_fraction=0.3,
                                         prompt="r1track-vis-v1")
    try:
        build([Source.parse(f"{kind}:{path}")], tmp_path / "set", cfg, seed=1, progress=False, log=lambda m: None)
    except (DatasetError, BuildError) as exc:
        from r1track.data.layouts import LayoutMismatch

        assert kind not in ("auto",) and not (kind == "got10k" and form != "sequence"), exc
        if form != "sequence":
            assert isinstance(exc, LayoutMismatch) and exc.suggestion == "got10k" and "read it as got10k" in str(exc)
        return
    rows = [json.loads(line) for line in (tmp_path / "set" / "samples.jsonl").read_text().splitlines()]
    assert rows
    hidden_search = 0
    for r in rows:
        *prompt_frames, search = r["frames"]
        assert not any(_hidden(f) for f in prompt_frames), r  # a box in the prompt is a box on the frame
        if _hidden(search):
            hidden_search += 1
            assert r["answer"] == "[]" and r.get("absent"), r
        else:
            assert r["answer"] != "[]", r
    assert hidden_search > 0  # the labels were read: absent samples were made from them
    stats = json.loads((tmp_path / "set" / "stats.json").read_text())
    assert stats["frames"]["skipped"].get("invisible", 0) > 0 and "absence.label" in stats["visibility_labels"]


def test_issue_reproduction_lasot_flag_on_a_got10k_split_is_refused_naming_got10k(got, tmp_path, capsys):
    status = main(["data", "build", f"lasot:{got / 'train'}", "--out", str(tmp_path / "d3"), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2 and not (tmp_path / "d3").exists()
    assert "looks like GOT-10k data" in err and "absence.label" in err and f"got10k:{got / 'train'}" in err


def _otb(root: Path, names=("Basketball", "Jogging"), n=6, with_list=True) -> Path:
    from PIL import Image

    for k, name in enumerate(names):
        folder = root / name / "img"
        folder.mkdir(parents=True)
        for i in range(1, n + 1):
            Image.new("RGB", (96, 72), (40 * k, 90, 30 + 20 * i)).save(folder / f"{i:04d}.jpg")
        (root / name / "groundtruth_rect.txt").write_text("".join(f"{10 + i},{12 + i},20,16\n" for i in range(n)))
    if with_list:
        (root / "list.txt").write_text("".join(f"{n}\n" for n in names))
    return root


def test_otb_folder_with_a_list_txt_is_generic_and_a_got10k_split_is_got10k(got, tmp_path):
    from r1track.data.layouts import LayoutMismatch, check_layout, layout_evidence

    otb = _otb(tmp_path / "otb")
    assert detect_kind(otb) == "generic"  # list.txt alone is not GOT-10k's signature
    assert detect_kind(got) == detect_kind(got / "train") == "got10k"
    ev = {e.kind.value: e for e in layout_evidence(otb)}
    assert not ev["got10k"].strong and "generic" in ev
    check_layout(otb, "got10k")  # an explicit choice of a weak signature is allowed...
    with pytest.raises(LayoutMismatch, match="not LaSOT data"):  # ...a layout it lacks is not
        check_layout(otb, "lasot")
    assert [s.dataset for s in read_dataset("auto", otb)] == ["generic", "generic"]


def test_eval_names_an_otb_folder_with_a_list_txt_generic(tmp_path, monkeypatch, capsys):
    otb = _otb(tmp_path / "otb")
    monkeypatch.chdir(tmp_path)
    assert main(["eval", str(otb), "--backend", "oracle", "--no-progress"]) == 0
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["generic-oracle"]
    assert "(generic)" in capsys.readouterr().err


def test_eval_of_the_real_sequences_is_generic(realseq_dir, tmp_path, monkeypatch):
    """The issue's reproduction: /work/shared/data/realseq is OTB-style with a list.txt."""
    assert detect_kind(realseq_dir) == "generic"
    monkeypatch.chdir(tmp_path)
    assert main(["eval", str(realseq_dir), "--backend", "oracle", "--no-progress", "--sequences", "ECO__Crossing",
                 "--max-frames", "5"]) == 0
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["generic-oracle+max_frames=5"]


def test_eval_of_a_got10k_folder_as_lasot_says_it_looks_like_got10k(got, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status = main(["eval", str(got / "train"), "--dataset", "lasot", "--backend", "oracle", "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2 and "not found" not in err
    assert "looks like GOT-10k data" in err and "--dataset got10k" in err
    assert not (tmp_path / "runs").exists()


def test_lasot_test_split_missing_sequence_names_the_split(tmp_path):
    for name in ("airplane-2", "bear-3"):
        d = tmp_path / name.split("-")[0] / name
        (d / "img").mkdir(parents=True)
        (d / "groundtruth.txt").write_text("1,2,3,4\n")
    with pytest.raises(DatasetError, match=r"airplane-1.*280-sequence test split.*split 'all'"):
        list(read_dataset("lasot", tmp_path, split="test"))
    assert [s.name for s in read_dataset("lasot", tmp_path)] == ["airplane-2", "bear-3"]


def test_each_reader_refuses_another_layouts_folder(got, tmp_path):
    from r1track.data.layouts import LayoutMismatch

    lasot = tmp_path / "lasot"
    for name in ("cat-1", "dog-2"):
        d = lasot / name.split("-")[0] / name
        (d / "img").mkdir(parents=True)
        (d / "groundtruth.txt").write_text("1,2,3,4\n")
        (d / "full_occlusion.txt").write_text("0")
        (d / "out_of_view.txt").write_text("0")
    tn = tmp_path / "tn" / "TRAIN_0"
    (tn / "anno").mkdir(parents=True)
    (tn / "frames").mkdir()
    otb = _otb(tmp_path / "otb", with_list=False)
    folders = {"got10k": got, "lasot": lasot, "trackingnet": tmp_path / "tn", "generic": otb}
    for own, folder in folders.items():
        assert detect_kind(folder) == own
        for other in folders:
            if other == own:
                continue
            with pytest.raises(LayoutMismatch) as info:
                list(read_dataset(other, folder))
            assert info.value.suggestion == own, (own, other, str(info.value))


def test_lasot_labels_are_honoured_by_the_generic_reader(tmp_path):
    from PIL import Image

    seq = tmp_path / "cat" / "cat-1"
    (seq / "img").mkdir(parents=True)
    for i in range(1, 5):
        Image.new("RGB", (32, 24)).save(seq / "img" / f"{i:08d}.jpg")
    (seq / "groundtruth.txt").write_text("1,1,5,5\n" * 4)
    (seq / "full_occlusion.txt").write_text("0,1,0,0")
    (seq / "out_of_view.txt").write_text("0,0,0,1")
    s = next(iter(read_dataset("generic", seq)))  # one sequence folder, read as generic
    assert s.visible.tolist() == [True, False, True, False] and s.labels == ("full_occlusion.txt", "out_of_view.txt")
