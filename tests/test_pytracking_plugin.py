"""PyTracking contract test: the plugin in plugins/pytracking driven through a minimal stand-in of
PyTracking, written for this test from PyTracking's contract (docs/upstream.md, PyTracking)
(PyTracking is not on PyPI and none of its code is copied):

* ``pytracking.tracker.base.BaseTracker``: ``__init__(params)`` stores params, ``visdom = None``;
* ``pytracking.utils.TrackerParams``: attribute bag with ``get``/``has``/``set_default_values``;
* the runner: ``parameters()`` from ``pytracking.parameter.<name>.<param>`` per sequence, class from
  ``pytracking.tracker.<name>.get_tracker_class()``, a new instance per sequence, frames as RGB uint8
  arrays, ``initialize(image, {'init_bbox': [x, y, w, h]})`` then ``track(image, {'previous_output':
  OrderedDict(last)})`` reading ``out['target_bbox']``; exceptions caught and printed (the sequence
  then has no result).
"""

import copy
import pickle
import importlib
import logging
import shutil
import sys
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from r1track.integrations import pytracking as pytracking_adapter
from r1track.integrations import pytracking_session  # the process state the adapter's names point at
from r1track.data.readers import read_generic
from r1track.testing.openai_server import OpenAIServer, reply, status

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "plugins" / "pytracking"

BASETRACKER = '''
class BaseTracker:
    """Stand-in: stores params, visdom None; subclasses override initialize/track."""
    def __init__(self, params):
        self.params = params
        self.visdom = None
    def predicts_segmentation_mask(self):
        return False
    def initialize(self, image, info: dict) -> dict:
        raise NotImplementedError
    def track(self, image, info: dict = None) -> dict:
        raise NotImplementedError
'''

TRACKER_PARAMS = '''
class TrackerParams:
    """Stand-in attribute bag."""
    def set_default_values(self, default_vals: dict):
        for name, val in default_vals.items():
            if not hasattr(self, name):
                setattr(self, name, val)
    def get(self, name: str, *default):
        if len(default) > 1:
            raise ValueError("Can only give one default value.")
        return getattr(self, name) if not default else getattr(self, name, default[0])
    def has(self, name: str):
        return hasattr(self, name)
'''


@pytest.fixture()
def pytracking(tmp_path, monkeypatch):
    """A fake ``pytracking`` package with the r1track plugin folders installed into it."""
    root = tmp_path / "pytracking"
    for sub in ("", "tracker", "tracker/base", "utils", "parameter"):
        (root / sub).mkdir(parents=True, exist_ok=True)
        (root / sub / "__init__.py").write_text("")
    (root / "tracker/base/__init__.py").write_text("from .basetracker import BaseTracker\n")
    (root / "tracker/base/basetracker.py").write_text(BASETRACKER)
    (root / "utils/__init__.py").write_text("from .params import TrackerParams\n")
    (root / "utils/params.py").write_text(TRACKER_PARAMS)
    shutil.copytree(PLUGIN / "tracker" / "r1track", root / "tracker" / "r1track")
    shutil.copytree(PLUGIN / "parameter" / "r1track", root / "parameter" / "r1track")
    monkeypatch.syspath_prepend(str(tmp_path))
    for var in ("R1TRACK_BASE_URL", "R1TRACK_MODEL", "R1TRACK_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    yield root
    for name in [m for m in sys.modules if m == "pytracking" or m.startswith("pytracking.")]:
        del sys.modules[name]
    sys.modules.pop("r1track.integrations.pytracking_tracker", None)  # its BaseTracker was this test's stand-in
    for backend in pytracking_adapter._BACKENDS.values():
        backend.close()
    pytracking_adapter._BACKENDS.clear()
    pytracking_session._LOOKUP[:] = [0, None]  # the process's model listings: each test asks its own servers
    pytracking_session._SUMMARY_STATE = 2  # the per-process summary at exit is for real runs


@dataclass
class Seq:
    name: str
    frames: list
    init_bbox: list


QWEN25_ROOT = "/ckpt/Qwen2.5-VL-3B-Instruct"
"""What the fake servers report having loaded (vLLM's ``root``): the family the plugin asks the server for."""


def load_params(param="default", **overrides):
    params = importlib.import_module(f"pytracking.parameter.r1track.{param}").parameters()
    for k, v in overrides.items():
        setattr(params, k, v)
    return params


def _track_sequence(tracker, seq, init_info):
    """Stand-in of PyTracking's Tracker._track_sequence: RGB arrays in, target_bbox out."""
    read = lambda p: np.asarray(Image.open(p).convert("RGB"))
    out = tracker.initialize(read(seq.frames[0]), init_info) or {}
    boxes = [out.get("target_bbox", init_info["init_bbox"])]
    prev = OrderedDict(out)
    for path in seq.frames[1:]:
        out = tracker.track(read(path), {"previous_output": prev})
        prev = OrderedDict(out)
        boxes.append(out["target_bbox"])
    return boxes


def run_sequence(seq, params):
    """Stand-in of the runner: new tracker per sequence; exceptions swallowed as PyTracking does."""
    cls = importlib.import_module("pytracking.tracker.r1track").get_tracker_class()
    tracker = cls(params)
    try:
        return _track_sequence(tracker, seq, {"init_bbox": [np.float64(v) for v in seq.init_bbox]})
    except Exception as exc:  # PyTracking prints and moves on; the sequence gets no files
        print(exc)
        return None


@pytest.fixture(scope="module")
def crossing(realseq_dir):
    s = next(read_generic(realseq_dir, names=["ECO__Crossing"]))
    return Seq(s.name, s.frames[:12], list(s.boxes_xywh_orig[0]))


def test_plugin_layout_and_class_contract(pytracking):
    from pytracking.tracker.base import BaseTracker

    mod = importlib.import_module("pytracking.tracker.r1track")
    cls = mod.get_tracker_class()
    assert issubclass(cls, BaseTracker) and cls.multiobj_mode == "parallel"
    tracker = cls(load_params())
    assert tracker.initialize_features() is None
    assert tracker.visdom is None and tracker.params.multiobj_mode == "parallel"
    copy.deepcopy(tracker)  # MultiObjectWrapper(fast_load=True) deep-copies a fresh instance
    assert pickle.loads(pickle.dumps(cls)) is cls  # --threads workers receive the class pickled
    assert pytracking_adapter._BACKENDS == {}  # no client at import or construction


@pytest.mark.parametrize(
    "param, expect",
    [
        ("default", dict(think=False, prompt_version="r1track-v1", crop_size=336, memory=False, structured_output=False)),
        ("v0", dict(think=False, prompt_version="r1track-v0", crop_size=336, memory=False)),
        ("think", dict(think=True, prompt_version="r1track-v0", crop_size=336, structured_output=False, effective_max_tokens=1024,
                       think_layout="images-first")),
        ("think_instruction_first", dict(think=True, prompt_version="r1track-v0", think_layout="instruction-first")),
        ("memory", dict(think=False, memory=True, memory_prompt_version="r1track-mem-v1", crop_size=336)),
        ("motion", dict(think=False, prompt_version="r1track-v1", crop_size=336, window_policy="kalman-adaptive")),
        ("ncc", dict(think=False, prompt_version="r1track-v1")),
    ],
)
def test_parameter_files(pytracking, param, expect):
    params = load_params(param)
    tp = pytracking_adapter.tracker_params_from(params)
    for k, v in expect.items():
        assert getattr(tp, k) == v, k
    assert params.backend == ("ncc" if param == "ncc" else "openai")


def test_a_parameter_file_switches_the_model_family_with_one_setting(pytracking):
    params = load_params("default")
    params.model_family = "qwen3-vl"
    tp = pytracking_adapter.tracker_params_from(params)
    assert (tp.model_family, tp.crop_size, tp.model_min_pixels) == ("qwen3-vl", 384, 65536)
    params.crop_size = 448
    assert pytracking_adapter.tracker_params_from(params).crop_size == 448


def test_every_preset_ships_a_parameter_file_of_one_call():
    from r1track.presets import PRESETS

    files = sorted(p.stem for p in (PLUGIN / "parameter" / "r1track").glob("*.py") if p.stem != "__init__")
    assert files == sorted(PRESETS)
    for name in files:
        body = (PLUGIN / "parameter" / "r1track" / f"{name}.py").read_text()
        assert f'return preset_parameters("{name}")' in body and body.count("\n") <= 7


def test_runs_a_sequence_over_http_with_environment_overrides(pytracking, crossing, monkeypatch):
    with OpenAIServer(model="from-env", root=QWEN25_ROOT) as server:
        monkeypatch.setenv("R1TRACK_BASE_URL", server.base_url)
        monkeypatch.setenv("R1TRACK_MODEL", "from-env")
        params = load_params(server_url="http://127.0.0.1:9/v1", model="from-param")  # env wins
        assert server.connections == 0
        boxes = run_sequence(crossing, params)
    assert boxes is not None and len(boxes) == len(crossing.frames)
    reqs = server.chat_requests()
    assert len(reqs) == len(crossing.frames) - 1 and {r.body["model"] for r in reqs} == {"from-env"}
    assert all(r.content_types == ["image_url", "image_url", "text"] for r in reqs)
    assert "structured_outputs" not in reqs[0].body  # presets leave it off: servers other than vLLM >= 0.12 reject it
    # full precision: PyTracking's writer truncates to int, the plugin must not
    assert all(isinstance(v, float) for b in boxes for v in b)
    assert any(v != int(v) for b in boxes[1:] for v in b)


def test_faults_are_logged_with_the_sequence_name_and_counted(pytracking, crossing, caplog):
    before = pytracking_adapter.TOTALS.copy()
    with OpenAIServer(script=[reply("no idea"), status(500), status(500), reply("[1,1,1,1]")], root=QWEN25_ROOT) as server:
        params = load_params(server_url=server.base_url, retries=1)
        params.backoff_s = 0.01
        with caplog.at_level(logging.WARNING, logger="r1track.pytracking"):
            boxes = run_sequence(crossing, params)
    assert len(boxes) == len(crossing.frames)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert all("ECO__Crossing" in w for w in warnings)
    assert "frame 1: no-box" in warnings[0] and "frame 2: backend-error" in warnings[1] and "frame 3: empty-box" in warnings[2]
    delta = pytracking_adapter.TOTALS - before
    assert delta["faults"] == 3 and delta["no-box"] == 1 and delta["backend-error"] == 1 and delta["empty-box"] == 1
    assert delta["frames"] == len(crossing.frames) - 1 and delta["sequences"] == 1


def test_fatal_error_is_logged_before_pytracking_swallows_it(pytracking, crossing, caplog):
    with OpenAIServer(script=[status(404)], root=QWEN25_ROOT) as server:
        params = load_params(server_url=server.base_url)
        with caplog.at_level(logging.ERROR, logger="r1track.pytracking"):
            assert run_sequence(crossing, params) is None
    (err,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "ECO__Crossing frame 1" in err and "404" in err and server.base_url in err


def test_ncc_baseline_runs_without_a_server(pytracking, crossing):
    boxes = run_sequence(crossing, load_params("ncc"))
    assert boxes is not None and len(boxes) == len(crossing.frames)


def test_a_killed_server_makes_the_sequence_raise_so_pytracking_writes_no_result(pytracking, crossing, caplog):
    import threading
    import time

    before = pytracking_adapter.TOTALS.copy()
    server = OpenAIServer(latency_s=0.02).start()

    def kill_after_four_requests():
        while len(server.requests) < 4:
            time.sleep(0.002)
        server.stop()

    threading.Thread(target=kill_after_four_requests, daemon=True).start()
    params = load_params(server_url=server.base_url, model="m", model_family="qwen2.5-vl", retries=1)
    params.backoff_s = 0.01
    with caplog.at_level(logging.ERROR, logger="r1track.pytracking"):
        assert run_sequence(crossing, params) is None  # raised: PyTracking prints it and writes no files
    server.stop()
    delta = pytracking_adapter.TOTALS - before
    assert delta["stopped"] == 1 and delta["backend-error"] == 3 and delta["frames"] < len(crossing.frames) - 1
    (err,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "ECO__Crossing STOPPED" in err and server.base_url in err and "no reply for 3 frame(s)" in err
    text = pytracking_adapter.summary()
    assert "stopped for want of replies" in text and "connection" in text


WORKER_SCRIPT = """
import multiprocessing, sys
from types import SimpleNamespace

import numpy as np
from PIL import Image

from r1track.integrations.pytracking import PyTrackingSession


def one_sequence(paths, box):  # as a PyTracking --threads worker runs a sequence, with the ncc baseline
    session = PyTrackingSession(SimpleNamespace(backend="ncc"))
    read = lambda p: np.asarray(Image.open(p).convert("RGB"))
    session.initialize(read(paths[0]), {"init_bbox": box, "sequence_name": "worker-seq"})
    return [session.track(read(p))["target_bbox"] for p in paths[1:]]


if __name__ == "__main__":
    paths, box = sys.argv[1:-4], [float(v) for v in sys.argv[-4:]]
    with multiprocessing.get_context("spawn").Pool(1) as pool:  # leaving the block terminates the worker
        print(len(pool.apply(one_sequence, (paths, box))))
"""


def test_every_worker_prints_its_summary_even_when_the_pool_terminates_it(crossing, tmp_path):
    import subprocess

    script = tmp_path / "run_pool.py"
    script.write_text(WORKER_SCRIPT)
    args = [str(p) for p in crossing.frames[:4]] + [str(v) for v in crossing.init_bbox]
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "3", proc.stderr
    assert "r1track (pid" in proc.stderr and "1 sequence(s), 3 frame(s) tracked" in proc.stderr


def test_injected_faults_are_counted_and_the_key_never_logged(pytracking, crossing, caplog, monkeypatch):
    from faultproxy import FaultProxy, expected_kinds

    secret = "sk-pytracking-test-4b9a1e"
    monkeypatch.setenv("R1TRACK_API_KEY", secret)
    before = pytracking_adapter.RECORD.faults.copy()
    script = ["echo-auth", "reset", "malformed", "http-429", "truncated"]
    with OpenAIServer(root=QWEN25_ROOT) as server:
        with FaultProxy(("127.0.0.1", server.port), script=script) as proxy:
            params = load_params(server_url=proxy.base_url, retries=1)
            params.backoff_s = 0.01
            with caplog.at_level(logging.DEBUG):
                boxes = run_sequence(crossing, params)
    assert boxes is not None and len(boxes) == len(crossing.frames)  # faults, then answers: the sequence completes
    assert pytracking_adapter.RECORD.faults - before == expected_kinds(proxy.injected)
    assert secret.encode() in proxy.seen_headers[0] and secret not in caplog.text
    assert "Bearer ***" in caplog.text  # the echoed header reached the log, redacted


def test_vis_preset_reports_object_presence_score(pytracking, crossing):
    read = lambda p: np.asarray(Image.open(p).convert("RGB"))
    cls = importlib.import_module("pytracking.tracker.r1track").get_tracker_class()
    outs = {}
    for preset in ("vis", "default"):
        with OpenAIServer(script=[reply("[]")], root=QWEN25_ROOT) as server:  # then the fake server's template box
            tracker = cls(load_params(preset, server_url=server.base_url))
            tracker.initialize(read(crossing.frames[0]), {"init_bbox": list(crossing.init_bbox)})
            outs[preset] = [tracker.track(read(p), {}) for p in crossing.frames[1:3]]
    vis = outs["vis"]
    assert vis[0]["r1track_status"] == "absent" and vis[0]["object_presence_score"] == 0.0
    assert vis[1]["r1track_status"] == "ok" and vis[1]["object_presence_score"] == 1.0
    assert vis[0]["target_bbox"] == pytest.approx(list(crossing.init_bbox))  # the last box is kept
    assert all("object_presence_score" not in o for o in outs["default"])  # unchanged without a visibility prompt


def test_eval_track_and_the_plugin_give_identical_boxes_on_a_large_target(pytracking, large_target_seq, tmp_path):
    """One frame folder through ``r1track eval`` (paths), ``r1track track`` (paths) and the plugin (RGB arrays, as
    PyTracking gives them) with the ncc baseline, whose answers depend on the pixels: the same boxes, because
    exact decoding is every entry point's default (with ``--decode fast`` the paths' boxes part from the arrays'
    on this sequence)."""
    from r1track.cli import main

    seq = large_target_seq
    folder = seq.frames[0].parent
    assert main(["eval", str(folder), "--backend", "ncc", "--preset", "ncc", "-o", str(tmp_path / "eval"),
                 "--no-progress"]) == 0
    from_eval = np.loadtxt(tmp_path / "eval" / "results_pytracking" / f"{seq.name}.txt", delimiter="\t")
    init = ",".join(repr(float(v)) for v in seq.boxes_xywh_orig[0])
    assert main(["track", str(folder), "--init", init, "--backend", "ncc", "--preset", "ncc",
                 "-o", str(tmp_path / "track")]) == 0
    from_track = np.loadtxt(tmp_path / "track" / "boxes.txt", delimiter=",")
    params = load_params("ncc")
    assert params.decode == "exact"
    from_plugin = np.array(run_sequence(Seq(seq.name, list(seq.frames), list(seq.boxes_xywh_orig[0])), params),
                           dtype=float)
    assert from_eval.shape == from_track.shape == from_plugin.shape == (len(seq.frames), 4)
    assert np.abs(from_eval - from_plugin).max() <= 1e-6
    assert np.abs(from_track - from_plugin).max() <= 1e-6
    assert np.ptp(from_plugin[:, 0]) > 5 or np.ptp(from_plugin[:, 1]) > 5  # the target moved: pixels decided


@pytest.mark.parametrize("root, family, side", [("/ckpt/Qwen2.5-VL-3B-Instruct", "qwen2.5-vl", 336),
                                                ("/ckpt/Qwen3-VL-2B-Instruct-r1track", "qwen3-vl", 384)])
def test_the_family_comes_from_the_server_when_the_parameter_file_leaves_it(pytracking, crossing, root, family, side):
    """A shipped parameter file names neither model nor family: the plugin asks the server what it loaded, as the
    command line does. Before, it took qwen2.5-vl for any server: a Qwen3-VL server got 336-px crops and its
    0-1000 answers were read as pixels."""
    import base64
    import io

    read = lambda p: np.asarray(Image.open(p).convert("RGB"))
    cls = importlib.import_module("pytracking.tracker.r1track").get_tracker_class()
    with OpenAIServer(model="tracker", root=root) as server:
        tracker = cls(load_params(server_url=server.base_url))
        tracker.initialize(read(crossing.frames[0]), {"init_bbox": list(crossing.init_bbox)})
        out = tracker.track(read(crossing.frames[1]), {})
        (req,) = server.chat_requests()
    assert tracker._session.tracker.params.model_family == family and out["r1track_status"] == "ok"
    sizes = {Image.open(io.BytesIO(base64.b64decode(u.split(",", 1)[1]))).size for u in req.image_urls}
    assert sizes == {(side, side)} and req.body["model"] == "tracker"
    # the echoed template box, read back in the family's coordinates: the target stays where it was
    assert out["target_bbox"] == pytest.approx(list(crossing.init_bbox), abs=2.0)


def test_a_server_whose_family_nothing_tells_is_refused_naming_the_setting(pytracking, crossing, caplog):
    read = lambda p: np.asarray(Image.open(p).convert("RGB"))
    cls = importlib.import_module("pytracking.tracker.r1track").get_tracker_class()
    before = pytracking_adapter.TOTALS.copy()
    with OpenAIServer(model="my-finetune", root="/ckpt/step-100") as server:
        tracker = cls(load_params(server_url=server.base_url))
        with caplog.at_level(logging.ERROR, logger="r1track.pytracking"):
            with pytest.raises(ValueError, match="set params.model_family with one of: qwen2.5-vl, qwen3-vl, qwen3.5"):
                tracker.initialize(read(crossing.frames[0]), {"init_bbox": list(crossing.init_bbox)})
        assert server.chat_requests() == []  # nothing was asked in a guessed coordinate system
    assert (pytracking_adapter.TOTALS - before)["fatal"] == 1
    assert "serves 'my-finetune' (loaded from '/ckpt/step-100')" in caplog.text
