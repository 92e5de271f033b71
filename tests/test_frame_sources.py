"""The same frames give the same boxes whether they arrive as paths (r1track eval, track), lazily opened
PIL images or decoded arrays (PyTracking): in the default exact decode mode the same pixels, so even a backend
whose answer depends on the pixels answers alike; in the fast mode at least the same window."""

import numpy as np
from PIL import Image

from r1track.backends.base import Backend, FrameRequest, Reply
from r1track.backends.ncc import NCCBackend
from r1track.crop import DecodeMode, load_for_window, plan_window
from r1track.data.readers import read_generic
from r1track.tracker import Tracker, TrackerParams


class Scripted(Backend):
    """Answers frame k with the k-th box of a fixed list (crop pixels): replies independent of the pixels."""

    name = "scripted"

    def __init__(self, replies):
        self.replies = replies

    def complete(self, request: FrameRequest) -> Reply:
        return Reply(self.replies[request.frame_index - 1])


def test_fast_decoding_keeps_the_window_whatever_the_frame_source(realseq_dir):
    seq = next(read_generic(realseq_dir, names=["ASRCF__FaceOcc1"]))  # a 114 x 162 px face in 640 x 480
    paths = seq.frames[:30]
    params = TrackerParams(crop_size=112, decode="fast")  # window ~540 px: JPEG frames decode at 1/4
    window = plan_window(seq.boxes_xywh_orig[0], params.search_factor, params.crop_size)
    assert load_for_window(paths[0], window, decode=DecodeMode.FAST).reduce == 4  # decoding choices used to move the window
    rng = np.random.default_rng(3)
    replies = []
    for _ in paths[1:]:
        cx, cy = rng.uniform(50, 62, 2)
        w, h = rng.uniform(24, 32), rng.uniform(34, 44)
        replies.append(f"[{round(cx - w / 2)},{round(cy - h / 2)},{round(cx + w / 2)},{round(cy + h / 2)}]")
    sources = {
        "path": lambda: list(paths),
        "pil": lambda: [Image.open(p) for p in paths],  # lazily opened, not yet decoded
        "array": lambda: [np.asarray(Image.open(p).convert("RGB")) for p in paths],
    }
    boxes = {}
    for kind, make in sources.items():
        frames = make()
        tr = Tracker(Scripted(replies), params, name=kind)
        tr.initialize(frames[0], seq.boxes_xywh_orig[0])
        results = [tr.track(f) for f in frames[1:]]
        assert all(r.ok for r in results), kind
        boxes[kind] = np.array([r.box_xywh_orig for r in results])
        windows = np.array([r.search_window_xyxy_orig for r in results])
        boxes[kind + "-window"] = windows
    assert np.array_equal(boxes["path"], boxes["array"])
    assert np.array_equal(boxes["pil"], boxes["array"])
    assert np.array_equal(boxes["path-window"], boxes["array-window"])
    assert np.ptp(boxes["array"][:, 0]) > 5  # the replies moved the target: windows differed frame to frame


class Recording(Backend):
    """Wraps a backend and keeps the pixels of every search crop it was asked about."""

    name = "recording"

    def __init__(self, inner: Backend):
        self.inner = inner
        self.crops: list[np.ndarray] = []

    def complete(self, request: FrameRequest) -> Reply:
        self.crops.append(np.asarray(request.images[-1].image).copy())
        return self.inner.complete(request)


def _track_every_form(seq, params):
    """Boxes and search crops of ``seq`` tracked with the ncc baseline from paths, lazy PIL images and arrays."""
    forms = {
        "path": lambda: list(seq.frames),
        "pil": lambda: [Image.open(p) for p in seq.frames],  # lazily opened, not yet decoded
        "array": lambda: [np.asarray(Image.open(p).convert("RGB")) for p in seq.frames],
    }
    out = {}
    for kind, make in forms.items():
        backend = Recording(NCCBackend())
        tr = Tracker(backend, params, name=kind)
        boxes = np.array([r.box_xywh_orig for r in tr.run(make(), seq.boxes_xywh_orig[0])])
        out[kind] = (boxes, backend.crops)
    return out


def test_exact_mode_gives_identical_boxes_for_paths_pil_images_and_arrays_on_a_large_target(large_target_seq):
    seq = large_target_seq
    params = TrackerParams()  # the default: exact decoding
    assert params.decode == DecodeMode.EXACT
    window = plan_window(seq.boxes_xywh_orig[0], params.search_factor, params.crop_size)
    assert window.side > 2 * params.crop_size  # a window a reduced JPEG decode would have shrunk
    got = _track_every_form(seq, params)
    boxes, crops = got["array"]
    assert len(crops) == len(seq.frames) - 1
    for kind in ("path", "pil"):
        assert np.abs(got[kind][0] - boxes).max() <= 1e-6, kind
        assert all(np.array_equal(a, b) for a, b in zip(got[kind][1], crops)), kind  # bit-identical crops
    assert np.ptp(boxes[:, 0]) > 5 or np.ptp(boxes[:, 1]) > 5  # ncc followed a moving target: the pixels decided


def test_fast_mode_changes_the_pixels_of_a_large_target_path(large_target_seq):
    """What exact mode protects against: the reduced decode of a path gives other pixels than the array."""
    seq = large_target_seq
    fast = TrackerParams(decode="fast")
    window = plan_window(seq.boxes_xywh_orig[0], fast.search_factor, fast.crop_size)
    assert load_for_window(seq.frames[1], window, decode=DecodeMode.FAST).reduce >= 2
    from_path = Recording(NCCBackend())
    from_array = Recording(NCCBackend())
    for backend, frames in ((from_path, seq.frames[:3]),
                            (from_array, [np.asarray(Image.open(p).convert("RGB")) for p in seq.frames[:3]])):
        tr = Tracker(backend, fast)
        list(tr.run(frames, seq.boxes_xywh_orig[0]))
    assert not np.array_equal(from_path.crops[0], from_array.crops[0])
