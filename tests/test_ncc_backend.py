"""The ncc classical baseline: its correlation against a brute-force one, and tracking a moving
textured patch through the full tracker pipeline."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r1track.backends import make_backend
from r1track.backends.ncc import NCCBackend, ncc_map
from r1track.boxes import iou_xywh
from r1track.tracker import Tracker, TrackerInitError, TrackerParams


def brute_ncc(search, patch):
    h, w = patch.shape
    out = np.zeros((search.shape[0] - h + 1, search.shape[1] - w + 1))
    b = patch - patch.mean()
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            a = search[i : i + h, j : j + w]
            a = a - a.mean()
            d = np.sqrt((a * a).sum() * (b * b).sum())
            out[i, j] = (a * b).sum() / d if d > 1e-9 else 0.0
    return out


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(3, 9), st.integers(3, 9))
def test_ncc_map_equals_brute_force(seed, h, w):
    rng = np.random.default_rng(seed)
    search = rng.random((h + rng.integers(0, 12), w + rng.integers(0, 12))) * 255
    patch = rng.random((h, w)) * 255
    assert np.allclose(ncc_map(search, patch), brute_ncc(search, patch), atol=1e-6)


def test_ncc_map_flat_patch_and_bad_shapes():
    assert not ncc_map(np.random.default_rng(0).random((10, 10)), np.ones((3, 3))).any()
    with pytest.raises(ValueError, match="does not fit"):
        ncc_map(np.zeros((4, 4)), np.zeros((5, 2)))


def moving_patch_sequence(n=30, size=(320, 240), box=(60, 80, 48, 40), step=(5, 2), seed=1):
    """A textured rectangle translating over a smooth background; exact ground truth."""
    rng = np.random.default_rng(seed)
    w_img, h_img = size
    yy, xx = np.mgrid[0:h_img, 0:w_img]
    background = np.stack([(96 + 60 * np.sin(xx / 23.0 + c) * np.cos(yy / 31.0 - c)) for c in range(3)], -1)
    texture = rng.integers(0, 256, size=(box[3] // 4 + 1, box[2] // 4 + 1, 3)).repeat(4, 0).repeat(4, 1)
    frames, gt = [], []
    for i in range(n):
        x, y = box[0] + step[0] * i, box[1] + step[1] * i
        img = background.copy()
        img[y : y + box[3], x : x + box[2]] = texture[: box[3], : box[2]]
        frames.append(img.astype(np.uint8))
        gt.append((x, y, box[2], box[3]))
    return frames, np.asarray(gt, dtype=float)


def test_ncc_tracks_a_moving_patch_through_the_pipeline():
    frames, gt = moving_patch_sequence()
    tr = Tracker(make_backend("ncc"), TrackerParams())
    tr.initialize(frames[0], gt[0])
    results = [tr.track(f) for f in frames[1:]]
    ious = [iou_xywh(r.box_xywh_orig, gt[r.frame_index]) for r in results]
    assert np.mean(ious) > 0.8 and min(ious) > 0.5
    assert all(r.reply.startswith("[") for r in results)  # the model's reply format, read by the parser


def test_ncc_is_labelled_a_baseline_and_cannot_ground_text():
    b = NCCBackend()
    assert b.baseline and "baseline" in b.label and "not an MLLM" in b.label
    with pytest.raises(TrackerInitError, match="baseline"):
        Tracker(b).initialize(np.zeros((64, 64, 3), np.uint8), text="a cat")
    with pytest.raises(ValueError):
        NCCBackend(scales=())
