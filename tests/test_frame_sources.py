"""The same frames give the same boxes whether they arrive as paths (r1track eval, track), lazily opened
PIL images or decoded arrays (PyTracking): one window rule, whatever the decoding."""

import numpy as np
from PIL import Image

from r1track.backends.base import Backend, FrameRequest, Reply
from r1track.crop import load_for_window, plan_window
from r1track.data.readers import read_generic
from r1track.tracker import Tracker, TrackerParams


class Scripted(Backend):
    """Answers frame k with the k-th box of a fixed list (crop pixels): replies independent of the pixels."""

    name = "scripted"

    def __init__(self, replies):
        self.replies = replies

    def complete(self, request: FrameRequest) -> Reply:
        return Reply(self.replies[request.frame_index - 1])


def test_paths_pil_images_and_arrays_give_identical_boxes_on_a_large_target(realseq_dir):
    seq = next(read_generic(realseq_dir, names=["ASRCF__FaceOcc1"]))  # a 114 x 162 px face in 640 x 480
    paths = seq.frames[:30]
    params = TrackerParams(crop_size=112)  # window ~540 px: JPEG frames decode at 1/4
    window = plan_window(seq.boxes_xywh_orig[0], params.search_factor, params.crop_size)
    assert load_for_window(paths[0], window).reduce == 4  # the case where decoding choices used to move the window
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
