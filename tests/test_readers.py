import numpy as np
import pytest

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
