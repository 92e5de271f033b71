"""The replay profile (``r1track data build --profile r1track-replay``) against the tracker itself.

The tracker, driven by the ``oracle`` backend (the ground truth in every crop), tracks the same generated
sequences; it must ask for exactly the replay set's questions, frame by frame: the same search windows, the same
template window, the same prompt text, the same answer, and the same JPEG bytes for both images. Then where a
replay stops, the tracker leaves the perfect path at that very frame.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1track.backends.base import Backend, Reply
from r1track.backends.oracle import OracleBackend
from r1track.cli import main
from r1track.boxes import clip_xyxy, xywh_to_xyxy
from r1track.crop import encode_jpeg
from r1track.data.build import BuildError, Source, build
from r1track.data.profiles import get_profile
from r1track.data.readers import read_got10k
from r1track.data.replay import replay_params
from r1track.prompts import IMAGE_PLACEHOLDER
from r1track.synthetic import write_got10k_split
from r1track.tracker import Status, Tracker

FAMILIES = ("qwen2.5-vl", "qwen3-vl", "qwen3.5")


class Recording(Backend):
    """The oracle, keeping every request it answered."""

    name = "recording-oracle"

    def __init__(self, oracle: OracleBackend):
        self.oracle = oracle
        self.requests = []

    def complete(self, request):
        self.requests.append(request)
        return self.oracle.complete(request)


def _text_of(request) -> str:
    """The request as LLaMA-Factory's user text: image parts become ``<image>``, text parts stay."""
    parts = request.chat_content([f"img{k}" for k in range(len(request.images))])
    return "".join(IMAGE_PLACEHOLDER if p["type"] == "image_url" else p["text"] for p in parts)


def _window(w: dict) -> tuple[float, float, float, float]:
    return (w["x0"], w["y0"], w["x0"] + w["side"], w["y0"] + w["side"])


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Four 12-frame sequences with the slow motion of 40-frame ones (every replay runs to the end)."""
    root = tmp_path_factory.mktemp("replay")
    write_got10k_split(root, "train", n_sequences=4, n_frames=12, path_frames=40, size=(320, 240), seed=3)
    return root


def _build(data: Path, out: Path, **changes):
    cfg = get_profile("r1track-replay").replace(**changes)
    result = build([Source("got10k", data, "train")], out, cfg, formats=("llamafactory",), progress=False,
                   log=lambda msg: None)
    records = json.loads((out / "llamafactory" / "train.json").read_text())
    manifest = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    return cfg, result.stats, records, manifest


@pytest.mark.parametrize("family,changes", [
    ("qwen2.5-vl", {}),
    ("qwen2.5-vl", {"crop_sides": (224,), "search_factor": (3.5, 3.5), "template_factor": (2.5, 2.5)}),
    ("qwen3-vl", {}),
    ("qwen3-vl", {"crop_sides": (256,), "search_factor": (5.0, 5.0)}),
    ("qwen3.5", {"think": True}),
])
def test_oracle_tracking_asks_exactly_the_replay_questions(data, tmp_path, family, changes):
    cfg, stats, records, manifest = _build(data, tmp_path / "set", model_family=family, **changes)
    assert stats["samples"]["replay"]["stopped"] == {}  # slow motion: every frame is on the perfect path
    assert len(records) == len(manifest) == 4 * 11
    params = replay_params(cfg)
    by_seq: dict[str, list[int]] = {}
    for k, m in enumerate(manifest):
        by_seq.setdefault(m["sequence"], []).append(k)
    images = tmp_path  # ShareGPT image paths are relative to the parent of the set (LLaMA-Factory dataset_dir)
    for seq in read_got10k(data, "train"):
        backend = Recording(OracleBackend(seq.boxes_xywh_orig))
        results = list(Tracker(backend, params, name=seq.name).run([str(f) for f in seq.frames],
                                                                   box_xywh=seq.boxes_xywh_orig[0]))
        assert [r.status for r in results[1:]] == [Status.OK] * 11
        rows = by_seq[seq.name]
        assert [manifest[k]["frame_indices"] for k in rows] == [[0, i] for i in range(1, 12)]
        for k, request, result in zip(rows, backend.requests, results[1:]):
            m, record = manifest[k], records[k]
            # the search window of this frame, and the template window of the first
            assert _window(m["windows"][1]) == tuple(result.search_window_xyxy_orig)
            assert _window(m["windows"][0]) == tuple(results[0].search_window_xyxy_orig)
            assert m["windows"][1]["out_side"] == request.model_size[0] == cfg.crop_sides[0]
            # the same text, the same answer, the same JPEG bytes
            assert record["messages"][0]["content"] == _text_of(request)
            assert record["messages"][1]["content"] == m["answer"] == backend.oracle.complete(request).text
            for name, image in zip(record["images"], request.images):
                assert (images / name).read_bytes() == encode_jpeg(image.image, cfg.jpeg_quality)


class TrainedAnswers(OracleBackend):
    """A perfectly trained model: the training answer -- the true box in the search crop *clipped to the crop*,
    in the family's coordinates (the plain oracle answers the unclipped box)."""

    def complete(self, request):
        truth = request.orig_to_model_xyxy(xywh_to_xyxy(self.boxes_xywh_orig[request.frame_index]))
        w, h = request.model_size
        return Reply(request.answer_text(clip_xyxy(truth, w, h)))


def test_replay_stops_where_the_tracker_leaves_the_perfect_path(tmp_path):
    """Fast motion (6 frames over the whole path): where a replay stops, a tracker whose model gives the training
    answers falls back at that very frame, with the replay's stop reason, after asking exactly the replay's
    windows; a fully hidden stretch ends the replay on the frame before it."""
    data = tmp_path / "data"
    write_got10k_split(data, "train", n_sequences=8, n_frames=6, size=(320, 240), seed=1)
    cfg, stats, records, manifest = _build(data, tmp_path / "set")
    stopped = stats["samples"]["replay"]["stopped"]
    assert stopped and set(stopped) <= {s.value for s in Status}
    params = replay_params(cfg)
    stops = []
    for seq in read_got10k(data, "train"):
        results = list(Tracker(TrainedAnswers(seq.boxes_xywh_orig), params).run([str(f) for f in seq.frames],
                                                                                  box_xywh=seq.boxes_xywh_orig[0]))
        rows = [m for m in manifest if m["sequence"] == seq.name]
        n = len(rows)
        assert [r.status for r in results[1:n + 1]] == [Status.OK] * n
        assert [_window(m["windows"][1]) for m in rows] == [tuple(r.search_window_xyxy_orig) for r in results[1:n + 1]]
        if n + 1 < len(results):
            stops.append(results[n + 1].status.value)  # the tracker falls back where the replay ends
    left_out = sum(len(seq.frames) - 1 for seq in read_got10k(data, "train")) - len(manifest)
    assert sum(stopped.values()) == left_out > 0  # every frame after a stop is counted under its reason
    assert set(stops) == set(stopped)

    occ = tmp_path / "occ"
    write_got10k_split(occ, "train", n_sequences=2, n_frames=14, full_occlusion_every=1)
    _, occ_stats, _, occ_manifest = _build(occ, tmp_path / "occ-set")
    assert occ_stats["samples"]["replay"]["stopped"].get("not_usable", 0) > 0
    for seq in read_got10k(occ, "train"):
        first_hidden = int(next(i for i, v in enumerate(seq.visible) if not v))
        assert max(m["frame_indices"][1] for m in occ_manifest if m["sequence"] == seq.name) == first_hidden - 1


@pytest.mark.parametrize("changes,message", [
    ({"search_factor": (3.0, 5.0)}, "one search factor"),
    ({"template_factor": (2.0, 8.0)}, "one template factor"),
    ({"search_center_jitter": 0.1}, "no crop jitter"),
    ({"search_scale_jitter": (0.8, 1.25)}, "no crop jitter"),
    ({"crop_sides": (224, 336)}, "one crop side"),
    ({"n_images": 3, "prompt": "r1track-mem-v1"}, "pairs"),
])
def test_replay_refuses_settings_the_tracker_cannot_have(changes, message):
    with pytest.raises(ValueError, match=message):
        get_profile("r1track-replay").replace(**changes)


def test_cli_builds_a_replay_set_and_documents_it(data, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["data", "build", "--help"])
    help_text = capsys.readouterr().out
    assert "r1track-replay" in help_text and "asks about when its model answers perfectly" in help_text
    out = tmp_path / "cli"
    assert main(["data", "build", f"got10k:{data}@train", "--profile", "r1track-replay", "--crop-sizes", "256",
                 "--model-family", "qwen3-vl", "--out", str(out), "--quiet", "--format", "llamafactory,easyr1"]) == 0
    s = json.loads((out / "stats.json").read_text())
    assert s["profile"] == "r1track-replay" and s["config"]["replay"] is True and s["crop_sides"] == {"256": 44}
    assert s["sequences"]["val"] == 0 and s["samples"]["written"] == {"train": 44, "val": 0}
    assert main(["data", "build", f"got10k:{data}@train", "--profile", "r1track-replay", "--crop-sizes", "224,336",
                 "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    assert "one crop side" in capsys.readouterr().err


def test_replay_of_sequences_without_a_usable_first_frame_is_an_error(tmp_path):
    data = tmp_path / "data"
    write_got10k_split(data, "train", n_sequences=1, n_frames=1)
    with pytest.raises(BuildError, match="no training sample"):
        _build(data, tmp_path / "set")
