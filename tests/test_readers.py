import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r1track.data import DatasetError, read_generic, read_got10k
from r1track.data.sequences import list_frames, read_boxes_file
from r1track.synthetic import make_sequence, write_got10k_split


def test_got10k_reader_reads_labels_and_visibility(tmp_path):
    names = write_got10k_split(tmp_path, "val", n_sequences=2, n_frames=30, full_occlusion_every=2)
    seqs = list(read_got10k(tmp_path, "val"))
    assert [s.name for s in seqs] == names
    occluded = seqs[1]
    ref = make_sequence(names[1], n_frames=30, seed=1, full_occlusion=True)
    assert len(occluded) == 30 and occluded.boxes_xywh_orig.shape == (30, 4)
    assert np.allclose(occluded.boxes_xywh_orig, ref.boxes_xywh_orig)
    assert (occluded.visible == (ref.absence == 0) & (ref.cover > 0)).all()
    assert not occluded.visible.all()
    assert occluded.image_size == (320, 240)
    # the split folder itself works as root too
    assert [s.name for s in read_got10k(tmp_path / "val", "val")] == names


def test_malformed_ground_truth_names_file_and_line(tmp_path):
    gt = tmp_path / "groundtruth.txt"
    gt.write_text("1,2,3,4\n5,6,x,8\n")
    with pytest.raises(DatasetError, match=r"groundtruth.txt:2"):
        read_boxes_file(gt)
    gt.write_text("1,2,3,4\n1,2,3\n")
    with pytest.raises(DatasetError, match=r"groundtruth.txt:2: expected 4 values"):
        read_boxes_file(gt)


def test_separators_polygons_and_numeric_frame_order(tmp_path):
    gt = tmp_path / "g.txt"
    gt.write_text("1\t2\t3\t4\n1 2 3 4\n0,0,10,0,10,5,0,5\n\n")
    boxes = read_boxes_file(gt)
    assert boxes.tolist() == [[1, 2, 3, 4], [1, 2, 3, 4], [0, 0, 10, 5]]
    for n in (10, 2, 1):
        (tmp_path / f"{n}.jpg").write_bytes(b"")
    assert [p.name for p in list_frames(tmp_path)] == ["1.jpg", "2.jpg", "10.jpg"]


def test_generic_reader_on_real_sequences(realseq_dir):
    seqs = list(read_generic(realseq_dir))
    assert len(seqs) == 6
    for s in seqs:
        assert len(s.frames) == len(s.boxes_xywh_orig) > 0
        assert s.visible.all()


def _jpeg(path, w=32, h=24):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), (10, 20, 30)).save(path)


def test_lasot_reader_labels_text_and_order(tmp_path):
    from r1track.data import read_lasot

    for name, n in (("cat-10", 3), ("cat-2", 4), ("dog-1", 2)):
        folder = tmp_path / name.split("-")[0] / name
        for i in range(1, n + 1):
            _jpeg(folder / "img" / f"{i:08d}.jpg")
        (folder / "groundtruth.txt").write_text("".join(f"{i},{i},5,6\n" for i in range(n)))
        occ = [0] * n
        oov = [0] * n
        occ[1] = 1
        oov[-1] = 1
        (folder / "full_occlusion.txt").write_text(",".join(map(str, occ)))
        (folder / "out_of_view.txt").write_text(",".join(map(str, oov)) + "\n")
        (folder / "nlp.txt").write_text(f"  a {name}\nmoving\n")
    seqs = list(read_lasot(tmp_path))
    assert [s.name for s in seqs] == ["cat-2", "cat-10", "dog-1"]  # numeric order inside a class
    cat2 = seqs[0]
    assert cat2.visible.tolist() == [True, False, True, False]
    assert cat2.text == "a cat-2 moving"
    assert [p.name for p in cat2.frames] == [f"{i:08d}.jpg" for i in range(1, 5)]
    assert cat2.dataset == "lasot" and cat2.boxes_xywh_orig[2].tolist() == [2, 2, 5, 6]
    # a split file selects and orders sequences
    (tmp_path / "split.txt").write_text("dog-1\ncat-10\n")
    assert [s.name for s in read_lasot(tmp_path, split_file=tmp_path / "split.txt")] == ["dog-1", "cat-10"]
    # a label file of the wrong length is malformed input: an error naming the file
    (tmp_path / "dog" / "dog-1" / "out_of_view.txt").write_text("0,0,0")
    with pytest.raises(DatasetError, match=r"dog-1/out_of_view.txt: 3 labels for 2 frames"):
        list(read_lasot(tmp_path, names=["dog-1"]))
    (tmp_path / "dog" / "dog-1" / "out_of_view.txt").write_text("0,x")
    with pytest.raises(DatasetError, match=r"out_of_view.txt:1: expected an integer label"):
        list(read_lasot(tmp_path, names=["dog-1"]))


def test_trackingnet_reader_zero_based_unpadded_frames(tmp_path):
    from r1track.data import read_trackingnet

    for chunk, seq, n in (("TRAIN_0", "vidA", 12), ("TRAIN_1", "vidB", 3)):
        for i in range(n):
            _jpeg(tmp_path / chunk / "frames" / seq / f"{i}.jpg")
        (tmp_path / chunk / "anno").mkdir(parents=True, exist_ok=True)
        (tmp_path / chunk / "anno" / f"{seq}.txt").write_text("".join(f"{i}.5,1,4,4\n" for i in range(n)))
    (tmp_path / "TEST" / "anno").mkdir(parents=True)
    (tmp_path / "TEST" / "frames").mkdir()
    seqs = list(read_trackingnet(tmp_path))
    assert [(s.name, s.dataset) for s in seqs] == [("vidA", "trackingnet-TRAIN_0"), ("vidB", "trackingnet-TRAIN_1")]
    a = seqs[0]
    assert [p.name for p in a.frames] == [f"{i}.jpg" for i in range(12)]  # 2 before 10
    assert a.boxes_xywh_orig[10].tolist() == [10.5, 1, 4, 4] and a.visible.all()
    assert [s.name for s in read_trackingnet(tmp_path / "TRAIN_1")] == ["vidB"]  # a chunk folder as root
    assert [s.name for s in read_trackingnet(tmp_path, chunks=["TRAIN_1"])] == ["vidB"]
    with pytest.raises(DatasetError, match="not a TrackingNet chunk"):
        list(read_trackingnet(tmp_path, chunks=["TRAIN_7"]))
    (tmp_path / "TRAIN_1" / "anno" / "vidB.txt").write_text("1,2,3,4\n1,2,3\n")
    with pytest.raises(DatasetError, match=r"vidB.txt:2"):
        list(read_trackingnet(tmp_path))


def test_detect_kind(tmp_path):
    from r1track.data import detect_kind

    write_got10k_split(tmp_path / "got", "train", n_sequences=1, n_frames=3)
    assert detect_kind(tmp_path / "got") == "got10k"
    assert detect_kind(tmp_path / "got" / "train") == "got10k"
    (tmp_path / "tn" / "TRAIN_0" / "anno").mkdir(parents=True)
    (tmp_path / "tn" / "TRAIN_0" / "frames").mkdir()
    assert detect_kind(tmp_path / "tn") == "trackingnet"
    assert detect_kind(tmp_path / "tn" / "TRAIN_0") == "trackingnet"
    (tmp_path / "la" / "cat" / "cat-1").mkdir(parents=True)
    (tmp_path / "la" / "cat" / "cat-1" / "full_occlusion.txt").write_text("0")
    assert detect_kind(tmp_path / "la") == "lasot"
    (tmp_path / "gen" / "seq").mkdir(parents=True)
    (tmp_path / "gen" / "seq" / "groundtruth_rect.txt").write_text("1,2,3,4\n")
    assert detect_kind(tmp_path / "gen") == "generic"
    with pytest.raises(DatasetError, match="not found"):
        detect_kind(tmp_path / "missing")


def test_bundled_lasot_test_split_has_280_sequences_4_per_class(tmp_path):
    from collections import Counter

    from r1track.data.readers import LASOT_TEST_SPLIT, _read_names_file, read_lasot

    names = _read_names_file(LASOT_TEST_SPLIT)
    assert len(names) == len(set(names)) == 280
    assert set(Counter(n.rsplit("-", 1)[0] for n in names).values()) == {4}
    assert "airplane-1" in names and "volleyball-19" in names and "airplane-2" not in names
    # split="test" selects exactly those sequences from a LaSOT root
    for name in ("airplane-1", "airplane-2"):
        d = tmp_path / "airplane" / name
        (d / "img").mkdir(parents=True)
        (d / "groundtruth.txt").write_text("1,2,3,4\n")
    with pytest.raises(DatasetError, match="airplane-9"):  # the rest of the test set is missing here
        list(read_lasot(tmp_path, split_file="test"))


@given(rows=st.lists(st.tuples(*[st.floats(-1e6, 1e6, allow_nan=False, width=32)] * 4), min_size=1, max_size=6),
       encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le-bom", "utf-16-be-bom"]),
       newline=st.sampled_from(["\n", "\r\n"]))
@settings(max_examples=40, deadline=None)
def test_ground_truth_round_trips_in_every_accepted_encoding(tmp_path_factory, rows, encoding, newline):
    from r1track.data.sequences import read_boxes_file

    text = newline.join(",".join(repr(float(v)) for v in r) for r in rows) + newline
    if encoding == "utf-16-le-bom":
        data = b"\xff\xfe" + text.encode("utf-16-le")
    elif encoding == "utf-16-be-bom":
        data = b"\xfe\xff" + text.encode("utf-16-be")
    else:
        data = text.encode(encoding)
    path = tmp_path_factory.mktemp("gt") / "groundtruth.txt"
    path.write_bytes(data)
    assert read_boxes_file(path).tolist() == [[float(v) for v in r] for r in rows]


@pytest.mark.parametrize("data,line", [(b"1,2,3,4\n5,6,7,8 # caf\xe9\n", 2), (b"\xff1,2,3,4\n", 1)])
def test_non_utf8_ground_truth_names_file_line_and_byte(tmp_path, data, line):
    from r1track.data.sequences import DatasetError, read_boxes_file

    path = tmp_path / "groundtruth.txt"
    path.write_bytes(data)
    with pytest.raises(DatasetError, match=rf"groundtruth.txt:{line}: ground truth is not UTF-8 text \(byte 0x(e9|ff)"):
        read_boxes_file(path)
