"""What the in-process engines (``transformers``, ``vllm``) share: one model in this process, requests from
every sequence in flight gathered into batches.

:class:`LocalEngineBackend` owns the engine (loaded on first use, never at import or construction: PyTracking
spawns worker processes, and ``--help`` must stay instant) and runs every engine call on one dedicated thread,
so the event loop never blocks and the engine is never entered twice at once.

Batching: :meth:`LocalEngineBackend.complete_async` parks the request and its future in a queue. One batcher
task per event loop takes up to ``batch_size`` waiting requests, runs them as one engine call, answers their
futures, and goes on while requests wait. While a batch runs the other sequences' next requests (decoded and
cropped in the evaluation's thread pool meanwhile) pile up, so with more sequences in flight than
``batch_size`` every call after the first is full. The sync path (:meth:`LocalEngineBackend.complete`: the
tracker's ``track``, PyTracking) is a batch of one.

Images reach the model as the same baseline JPEG bytes the ``openai`` backend sends (quality 95 by default,
cached per :class:`~r1track.backends.RequestImage`), so a model sees identical pixels whether it is served or
loaded in process, and the replies of the same engine agree.

Faults: an exception inside the engine (out of memory, a prompt longer than the engine allows, a broken
checkpoint) fails every request of its batch with a *fatal* :class:`~r1track.backends.BackendError` naming the
model: ``r1track eval`` stops, keeps the replay logs, and a rerun resumes. ``stats`` counts ``requests``,
``batches``, ``replies``, ``failures`` and ``batched`` (requests that shared a call with others).

Engine report: every engine call leaves a :class:`~r1track.backends.engine_report.BatchRecord` (requests, fill,
seconds, idle time before it, and what the engine measured inside it); :meth:`LocalEngineBackend.engine_report`
sums them for ``run.json`` and the end-of-run summary.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from PIL import Image

from ..redact import get_logger
from .base import Backend, BackendError, FrameRequest, Reply, RequestImage
from .engine_report import BatchRecord, EngineReport
from .openai import cached_data_url

__all__ = ["LocalEngineBackend", "EngineReply", "jpeg_roundtrip"]

log = get_logger(__name__)



def jpeg_roundtrip(image: RequestImage, quality: int = 95) -> Image.Image:
    """The RGB pixels a server decodes from :func:`r1track.backends.openai.cached_data_url` (cached): what a served model sees."""
    key = ("jpeg-decoded", quality)
    decoded = image.cache.get(key)
    if decoded is None:
        url = cached_data_url(image, quality)
        decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
        image.cache[key] = decoded
    return decoded


def _merged(model: str) -> bool:
    """True when ``model`` names a full model rather than an adapter: a name ending in ``-merged`` / ``_merged``,
    or a folder with a ``config.json`` and no ``adapter_config.json``."""
    if re.search(r"[-_]merged$", model.rstrip("/"), re.IGNORECASE):
        return True
    folder = Path(model)
    return folder.is_dir() and (folder / "config.json").is_file() and not (folder / "adapter_config.json").is_file()


@dataclass(frozen=True)
class EngineReply:
    """One request's answer from an engine call: the text, why generation stopped (``stop`` /
    ``length``) and token counts (``prompt_tokens``, ``completion_tokens``)."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class LocalEngineBackend(Backend):
    """Base class of the in-process engines (see the module docstring).

    ``model``: hub id or local folder of the checkpoint (None: ``$R1TRACK_MODEL``). ``batch_size``: most requests per engine call
    (>= 1; None: the engine's :attr:`default_batch_size`). ``jpeg_quality``: of the images the model sees (as the ``openai`` backend sends them). A LoRA
    adapter of the checkpoint registry is refused (ValueError) with the command that merges it.
    Subclasses implement :meth:`_load` (build the engine; runs on the engine thread) and :meth:`_generate`
    (answer a batch, in order)."""

    supports_grounding = True

    default_batch_size: int = 32
    """Requests per engine call when none is given (each engine sets its own)."""

    def __init__(self, model: str | None = None, *, batch_size: int | None = None, jpeg_quality: int = 95) -> None:
        batch_size = self.default_batch_size if batch_size is None else batch_size
        model = model or os.environ.get("R1TRACK_MODEL")
        if not model:
            raise ValueError(f"the {self.name} backend needs --model (or $R1TRACK_MODEL): a hub id or a checkpoint folder")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {jpeg_quality}")
        from ..checkpoints import find_checkpoint

        ckpt = find_checkpoint(str(model))
        if ckpt is not None and ckpt.lora and not _merged(str(model)):
            raise ValueError(
                f"{ckpt.name} is a LoRA adapter: merge it into {ckpt.base_model} first (LLaMA-Factory: "
                "llamafactory-cli export examples/r1_track_lora_merge.yaml) and pass the merged folder as --model")
        self.model = str(model)
        self.base_url = f"{self.name}:{self.model}"  # what run logs show as the "server"
        self.batch_size = batch_size
        self.jpeg_quality = jpeg_quality
        self.stats: Counter[str] = Counter()
        self._engine: Any = None
        self._lock = threading.Lock()  # one engine call at a time, sync and async paths alike
        self._thread: ThreadPoolExecutor | None = None
        self._queues: dict[asyncio.AbstractEventLoop, list[tuple[FrameRequest, asyncio.Future]]] = {}
        self._batchers: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}
        self.batch_records: list[BatchRecord] = []
        self.resolved: dict[str, Any] = {}
        """What the engine resolved at load (device, dtype, ...): the engine report's settings."""
        self._detail: dict[str, Any] = {}
        self._last_end: float | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, batch_size={self.batch_size})"

    # ------------------------------------------------------------------ subclass hooks
    def _load(self) -> Any:
        """Build and return the engine (runs once, on the engine thread)."""
        raise NotImplementedError

    def _generate(self, engine: Any, requests: Sequence[FrameRequest]) -> list[EngineReply]:
        """Answer ``requests`` in one engine call, one :class:`EngineReply` each, in order."""
        raise NotImplementedError

    # ------------------------------------------------------------------ shared
    def prepare(self, request: FrameRequest) -> None:
        """Encode the images (cached per image), then the engine's own preparation (:meth:`_prepare_request`),
        off the event loop: in ``r1track eval`` this runs in the evaluation's thread pool while the engine answers
        earlier batches."""
        for image in request.images:
            cached_data_url(image, self.jpeg_quality)
        self._prepare_request(request)

    def _prepare_request(self, request: FrameRequest) -> None:
        """Engine-specific preparation of one request ahead of its batch (thread-safe). Default: none."""

    def _note(self, **fields: Any) -> None:
        """Add measurements of the running engine call to its :class:`BatchRecord` (numbers add up across the
        sampling groups of one call)."""
        for key, value in fields.items():
            if value is None:
                continue
            old = self._detail.get(key)
            self._detail[key] = value if old is None or not isinstance(value, (int, float)) else (
                max(old, value) if key == "peak_memory_mb" else old + value)

    def engine_report(self) -> EngineReport:
        """Every engine call so far (module docstring) and the resolved settings."""
        return EngineReport(self.name, self.batch_size, dict(self.resolved), list(self.batch_records))

    def engine(self) -> Any:
        """The loaded engine (loads it on first use)."""
        with self._lock:
            return self._engine_locked()

    def _engine_locked(self) -> Any:
        if self._engine is None:
            t0 = time.perf_counter()
            from ..extras import MissingPackage, require

            try:
                require(self.extra, f"the {self.name} backend")
                self._engine = self._load()
            except MissingPackage as exc:
                raise BackendError(str(exc), kind="unsupported", url=self.base_url, fatal=True) from None
            except ImportError as exc:  # something the extra's packages import themselves
                missing = getattr(exc, "name", None)
                hint = f"pip install {missing}" if missing else f"pip install \"r1track[{self.extra}]\""
                raise BackendError(f"{self.name} backend: {exc} ({hint})", kind="unsupported", url=self.base_url,
                                   fatal=True) from None
            except Exception as exc:
                raise BackendError(f"{self.name} backend could not load {self.model}: {type(exc).__name__}: {exc}",
                                   kind="engine", url=self.base_url, fatal=True) from exc
            log.info("%s: loaded %s in %.1f s", self.name, self.model, time.perf_counter() - t0)
        return self._engine

    extra: str = ""
    """The ``pip install "r1track[EXTRA]"`` that brings this engine (a name of :data:`r1track.extras.EXTRAS`, whose
    packages are checked before the engine loads)."""

    def _run_batch(self, requests: Sequence[FrameRequest]) -> list[Reply]:
        """One engine call for ``requests`` (engine thread or caller); fatal BackendError on any engine fault."""
        with self._lock:
            engine = self._engine_locked()
            self.stats["requests"] += len(requests)
            self.stats["batches"] += 1
            if len(requests) > 1:
                self.stats["batched"] += len(requests)
            t0 = time.perf_counter()
            idle = 0.0 if self._last_end is None else t0 - self._last_end
            self._detail = {}
            try:
                answers = self._generate(engine, requests)
                if len(answers) != len(requests):
                    raise RuntimeError(f"{len(answers)} answers for {len(requests)} requests")
            except BackendError:
                self.stats["failures"] += len(requests)
                raise
            except Exception as exc:
                self.stats["failures"] += len(requests)
                raise BackendError(f"{self.name} engine ({self.model}) failed on a batch of {len(requests)}: "
                                   f"{type(exc).__name__}: {exc}", kind="engine", url=self.base_url, fatal=True) from exc
            finally:
                self._last_end = time.perf_counter()
            seconds = self._last_end - t0
            self.stats["replies"] += len(answers)
            detail = {k: v for k, v in self._detail.items() if k in BatchRecord.__dataclass_fields__}
            self.batch_records.append(BatchRecord(len(requests), round(len(requests) / self.batch_size, 4), seconds,
                                                  idle, **detail))
        return [
            Reply(a.text, seconds, 1, a.finish_reason,
                  {"prompt_tokens": a.prompt_tokens, "completion_tokens": a.completion_tokens, "batch": len(requests)})
            for a in answers
        ]

    def complete(self, request: FrameRequest) -> Reply:
        """A batch of one, in the calling thread."""
        return self._run_batch([request])[0]

    async def complete_async(self, request: FrameRequest) -> Reply:
        """Park the request for the event loop's batcher and await its answer."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._queues.setdefault(loop, []).append((request, future))
        task = self._batchers.get(loop)
        if task is None or task.done():
            self._batchers[loop] = loop.create_task(self._batcher(loop))
        return await future

    async def _batcher(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"r1track-{self.name}")
        queue = self._queues[loop]
        while queue:
            await asyncio.sleep(0)  # let requests that are ready this turn of the loop join
            batch, queue[: self.batch_size] = queue[: self.batch_size], []
            batch = [(r, f) for r, f in batch if not f.cancelled()]
            if not batch:
                continue
            try:
                replies = await loop.run_in_executor(self._thread, self._run_batch, [r for r, _ in batch])
            except BaseException as exc:  # noqa: BLE001 - every waiting request learns why
                for _, f in batch:
                    if not f.done():
                        f.set_exception(exc if isinstance(exc, Exception) else BackendError(
                            f"{self.name} engine call interrupted", kind="engine", url=self.base_url, fatal=True))
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, f), reply in zip(batch, replies):
                if not f.done():
                    f.set_result(reply)
        self._batchers.pop(loop, None)

    def close(self) -> None:
        """Stop the engine thread and drop the engine (the memory is freed when nothing else holds it)."""
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None
        with self._lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            self._unload(engine)

    def _unload(self, engine: Any) -> None:
        """Release what the engine holds beyond garbage collection. Default: nothing."""

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        task = self._batchers.pop(loop, None)
        if task is not None and not task.done():
            task.cancel()
        self._queues.pop(loop, None)
        await asyncio.to_thread(self.close)
