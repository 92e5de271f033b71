import numpy as np

from r1track.synthetic import make_sequence, write_got10k_split


def test_sequences_are_deterministic_and_labels_consistent():
    a = make_sequence("s", n_frames=30, seed=5, full_occlusion=True)
    b = make_sequence("s", n_frames=30, seed=5, full_occlusion=True)
    assert np.array_equal(a.boxes_xywh_orig, b.boxes_xywh_orig)
    assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames))
    assert a.absence.sum() > 0 and (a.cover[a.absence == 1] == 0).all() and (a.cover[a.absence == 0] > 0).all()
    w, h = a.size
    x, y, bw, bh = a.boxes_xywh_orig.T
    assert (x >= 0).all() and (y >= 0).all() and (x + bw <= w).all() and (y + bh <= h).all()
    assert a.cover[0] == 8


def test_object_is_where_the_ground_truth_says():
    seq = make_sequence("s", n_frames=10, seed=1)
    bg = make_sequence("s", n_frames=10, seed=1).frames[0].copy()  # same background
    assert np.isfinite(seq.occluder_xywh_orig).all(axis=1).any()
    for frame, (x, y, w, h), occ in list(zip(seq.frames, seq.boxes_xywh_orig.astype(int), seq.occluder_xywh_orig))[1:]:
        diff = np.abs(frame.astype(int) - bg.astype(int)).sum(axis=2) > 0
        # outside the box the frame equals the first frame's background except where frame 0's object sat
        assert diff[y : y + h, x : x + w].mean() > 0.3  # the object is drawn inside its box
        x0, y0, w0, h0 = seq.boxes_xywh_orig[0].astype(int)
        diff[y0 : y0 + h0, x0 : x0 + w0] = False
        diff[y : y + h, x : x + w] = False
        if np.isfinite(occ).all():
            ox, oy, ow, oh = occ.astype(int)
            diff[oy : oy + oh, ox : ox + ow] = False
        assert not diff.any()  # and nowhere else


def test_got10k_layout_is_written(tmp_path):
    names = write_got10k_split(tmp_path, "val", n_sequences=2, n_frames=12, full_occlusion_every=2)
    assert (tmp_path / "val" / "list.txt").read_text().split() == names
    for name in names:
        d = tmp_path / "val" / name
        assert len(list(d.glob("*.jpg"))) == 12
        for f in ("groundtruth.txt", "absence.label", "cover.label", "cut_by_image.label"):
            assert len((d / f).read_text().splitlines()) == 12
        meta = (d / "meta_info.ini").read_text()
        assert "resolution: (320, 240)" in meta
