"""The in-process engines' shared machinery (no torch, no vLLM): batching across sequences in flight, answers
reaching the right request, engine faults fatal and counted, the engines' construction checks."""

import asyncio

import numpy as np
import pytest

from r1track.backends import BACKENDS, BackendError, make_backend
from r1track.backends.local import EngineReply, LocalEngineBackend, jpeg_roundtrip
from r1track.backends.openai import cached_data_url
from r1track.tracker import Tracker, TrackerParams


class Echo(LocalEngineBackend):
    """Answers each request with its sequence name and frame index; records the batch sizes."""

    name = "echo"
    extra = "echo"

    def __init__(self, *a, fail_on=None, **kw):
        super().__init__(*a, **kw)
        self.sizes = []
        self.loads = 0
        self.fail_on = fail_on

    def _load(self):
        self.loads += 1
        return object()

    def _generate(self, engine, requests):
        self.sizes.append(len(requests))
        if self.fail_on is not None and any(r.frame_index == self.fail_on for r in requests):
            raise RuntimeError("CUDA out of memory")
        return [EngineReply(f"{r.sequence}:{r.frame_index}", "stop", 10, 3) for r in requests]


def _frame(seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)


def test_requests_of_sequences_in_flight_are_batched_and_answered_in_place():
    backend = Echo("ckpt", batch_size=4)
    params = TrackerParams(crop_size=112)

    async def run():
        trackers = [Tracker(backend, params, name=f"s{i}") for i in range(10)]
        for t in trackers:
            await t.initialize_async(_frame(0), (40, 30, 30, 30))
        results = []
        for frame in range(1, 4):
            results.append(await asyncio.gather(*(t.track_async(_frame(frame)) for t in trackers)))
        await backend.aclose()
        return results

    rounds = asyncio.run(run())
    for frame, results in enumerate(rounds, start=1):
        assert [r.reply for r in results] == [f"s{i}:{frame}" for i in range(10)]  # each answer to its own request
    assert backend.loads == 1
    assert max(backend.sizes) == 4 and sum(backend.sizes) == 30
    assert len(backend.sizes) < 30  # batched, not one call per request
    assert backend.stats["requests"] == backend.stats["replies"] == 30 and backend.stats["batched"] > 0


def test_sync_path_is_a_batch_of_one():
    backend = Echo("ckpt", batch_size=8)
    tracker = Tracker(backend, TrackerParams(crop_size=112), name="solo")
    tracker.initialize(_frame(0), (40, 30, 30, 30))
    assert tracker.track(_frame(1)).reply == "solo:1"
    assert backend.sizes == [1]


def test_an_engine_fault_fails_its_batch_fatally_and_is_counted():
    backend = Echo("ckpt", batch_size=16, fail_on=2)
    params = TrackerParams(crop_size=112)

    async def run():
        trackers = [Tracker(backend, params, name=f"s{i}") for i in range(3)]
        for t in trackers:
            await t.initialize_async(_frame(0), (40, 30, 30, 30))
        await asyncio.gather(*(t.track_async(_frame(1)) for t in trackers))
        return await asyncio.gather(*(t.track_async(_frame(2)) for t in trackers), return_exceptions=True)

    outcomes = asyncio.run(run())
    assert all(isinstance(o, BackendError) and o.fatal and o.kind == "engine" for o in outcomes)
    assert "CUDA out of memory" in str(outcomes[0]) and "ckpt" in str(outcomes[0])
    assert backend.stats["failures"] == 3


def test_missing_engine_package_names_the_extra():
    class Missing(Echo):
        def _load(self):
            raise ImportError("No module named 'torch'")

    with pytest.raises(BackendError, match=r'pip install "r1track\[echo\]"') as info:
        Missing("ckpt").engine()
    assert info.value.fatal


def test_engines_are_registered_and_check_their_options_without_loading(monkeypatch):
    monkeypatch.delenv("R1TRACK_MODEL", raising=False)
    for name in ("transformers", "vllm"):
        assert BACKENDS[name].in_process and BACKENDS[name].grounding
        with pytest.raises(ValueError, match="needs --model"):
            make_backend(name)
        with pytest.raises(ValueError, match="batch_size"):
            make_backend(name, model="/ckpt", batch_size=0)
        assert make_backend(name, model="/ckpt")._engine is None  # nothing loaded yet
        with pytest.raises(ValueError, match="LoRA adapter: merge it"):
            make_backend(name, model="WangBiao/R1-Track-SFT-5k-lora")
    assert make_backend("vllm", model="/ckpt/R1-Track-SFT-5k-lora-merged").model.endswith("merged")
    with pytest.raises(ValueError, match="dtype"):
        make_backend("transformers", model="/ckpt", dtype="int3")


def test_the_model_sees_the_served_jpeg_pixels():
    from r1track.backends.base import RequestImage
    from PIL import Image

    image = RequestImage(Image.fromarray(_frame(5)), "search")
    decoded = jpeg_roundtrip(image)
    assert decoded.size == image.size and decoded.mode == "RGB"
    assert np.asarray(decoded).tobytes() != np.asarray(image.image).tobytes()  # lossy: what a server decodes
    assert jpeg_roundtrip(image) is decoded and cached_data_url(image) in image.cache.values()


def test_pytracking_parameters_build_an_in_process_engine(monkeypatch):
    from r1track.integrations import pytracking as adapter
    from r1track.integrations import pytracking_session

    monkeypatch.delenv("R1TRACK_MODEL", raising=False)
    monkeypatch.setattr(pytracking_session, "_BACKENDS", {})

    class Params:
        backend = "vllm"
        model = "/ckpt/merged"
        memory = True
        batch_size = 4
        max_model_len = 8192

    backend = adapter.backend_from(Params())
    assert backend.name == "vllm" and backend.model == "/ckpt/merged" and backend.batch_size == 4
    assert backend.engine_kwargs["limit_mm_per_prompt"] == {"image": 3} and backend.engine_kwargs["max_model_len"] == 8192
    assert adapter.backend_from(Params()) is backend  # one engine per process
    monkeypatch.setenv("R1TRACK_MODEL", "/ckpt/other")
    assert adapter.backend_from(Params()).model == "/ckpt/other"  # the environment wins, as for servers
    monkeypatch.setenv("R1TRACK_BACKEND", "transformers")
    assert adapter.backend_from(Params()).name == "transformers"


def test_in_process_engines_take_the_model_family_from_the_checkpoint_folder(tmp_path, monkeypatch):
    import json

    from r1track.cli import build_parser
    from r1track.commands.tracking import resolve_settings

    monkeypatch.delenv("R1TRACK_MODEL", raising=False)
    folder = tmp_path / "my-finetune"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen3_vl"}))
    for backend in ("transformers", "vllm"):
        r = resolve_settings(build_parser().parse_args(["eval", "x", "--backend", backend, "--model", str(folder)]))
        assert r.params.model_family == "qwen3-vl" and r.params.crop_size == 384 and r.tag == "my-finetune"
        r = resolve_settings(build_parser().parse_args(["track", "v", "--init", "1,1,4,4", "--backend", backend,
                                                        "--model", str(folder), "--model-family", "qwen2.5-vl"]))
        assert r.params.model_family == "qwen2.5-vl"  # an explicit family wins
    with pytest.raises(ValueError, match="model family"):
        resolve_settings(build_parser().parse_args(["eval", "x", "--backend", "vllm", "--model", str(tmp_path / "nothing")]))
