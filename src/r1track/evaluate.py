"""Run the tracker over a dataset: many sequences in flight in one process, resumable, then scored.

One asyncio event loop drives up to ``concurrency`` sequences at once (each a :class:`~r1track.tracker.Tracker`
calling :meth:`~r1track.tracker.Tracker.track_async`); decoding and cropping run in a thread pool, requests
are awaited, so a single process keeps hundreds of requests in flight against one or several servers.
With several OpenAI-compatible servers each *sequence* goes to the server with the fewest active sequences
and stays there (vLLM then reuses its prefix and encoder caches for the sequence's template).

Output folder::

    results/{seq}/{seq}_001.txt, {seq}_time.txt   got10k toolkit / server layout (what `r1track pack` zips)
    results_pytracking/{seq}.txt, {seq}_time.txt   PyTracking's layout (tab-separated), full precision
    partial/{seq}.jsonl                           replay log of a sequence in progress (deleted when done)
    records/{seq}.json                            the sequence's counts (requests, retries, faults, fallbacks, time)
    run.json                                      settings, per-sequence and total counts, each invocation's timing
    report/                                       scores, table and plots (when the dataset has ground truth)

Resuming: a finished sequence (its result file exists; result files are written atomically, last) is
skipped. A sequence cut off mid-way has a replay log with one line per tracked frame (the reply text or
the backend error, attempts and faults met): on restart its first frames are replayed through the same
pure tracker steps without asking the model again, so the model does each frame exactly once and the
results equal an uninterrupted run's.

A dead server: a sequence whose backend gives no reply for ``FaultPolicy`` frames in a row or seconds
(:mod:`r1track.faults`) is stopped and reported *failed*, with no result file. The frames of that run of
faults are dropped from its replay log (their counts move to the log's ``carry`` line), so a rerun with
the server back asks them again and the results equal an uninterrupted run's.

Counts are cumulative over resumed invocations: a sequence's record is its replay log's (``carry`` plus
every frame) and, once finished, ``records/{seq}.json``; ``run.json`` sums the records of the run's
sequences and keeps each invocation's own timing in ``invocations``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence as Seq

import numpy as np

from .backends import Backend, BackendError, Reply, get_backend_spec, make_backend
from .data.checks import Reason, box_problem, frame_slots, read_image_header
from .data.sequences import Sequence
from .faults import FaultGuard, FaultPolicy, FaultRecord, SequenceStopped
from .fsutil import append_line, atomic_write_text, raise_open_file_limit
from .results import has_result, write_result
from .progress import progress_bar
from .tracker import SKIP_STATUSES, Status, Tracker, TrackerParams, TrackResult, frame_fault, presence_score

__all__ = ["EvalSettings", "SequenceOutcome", "EvalRun", "EvalAborted", "evaluate", "evaluate_async", "has_ground_truth"]

log = logging.getLogger(__name__)

RESULTS = "results"
RESULTS_PYTRACKING = "results_pytracking"
PARTIAL = "partial"
RECORDS = "records"
_FD_RESERVE = 128  # file descriptors kept for frames being decoded, logs, threads, the interpreter


class EvalAborted(RuntimeError):
    """The run stopped: a fatal backend error (the server rejects every request) or a bad setting."""


@dataclass
class EvalSettings:
    """How to run. ``backend``: a name of :data:`r1track.backends.BACKENDS`. ``servers``: base URLs of
    OpenAI-compatible servers (openai; empty = ``R1TRACK_BASE_URL`` or the default). ``model``: served
    model name (None: ask the server). ``concurrency``: sequences in flight. ``params``: tracker
    settings. ``init``: ``box`` (first ground-truth box) or ``text`` (the sequence's description,
    LaSOT ``nlp.txt``). ``threads``: pool for decoding/cropping (None: 2 x cores).
    ``backend_options``: extra keyword options for the backend. ``max_frames``: track only the first
    n frames of each sequence (quick checks). ``faults``: when a sequence is stopped for want of
    replies (:class:`~r1track.faults.FaultPolicy`; may change between a run and its resumption). ``workers``:
    client processes (:mod:`r1track.evalpool`; the in-process engines need 1)."""

    out_dir: Path
    backend: str = "openai"
    servers: tuple[str, ...] = ()
    model: str | None = None
    concurrency: int = 256
    params: TrackerParams = field(default_factory=TrackerParams)
    init: str = "box"
    threads: int | None = None
    backend_options: dict[str, Any] = field(default_factory=dict)
    max_frames: int | None = None
    progress: bool = True
    faults: FaultPolicy = field(default_factory=FaultPolicy)
    workers: int = 1

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        spec = get_backend_spec(self.backend)  # ValueError naming the known backends
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {self.workers!r}")
        if self.workers > 1 and spec.in_process:
            raise ValueError(f"--workers {self.workers} would load the {self.backend} engine once per process: use "
                             "--workers 1 (the engine batches every sequence in flight), or serve the model and use "
                             "--backend openai")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.init not in ("box", "text"):
            raise ValueError(f"init must be 'box' or 'text', got {self.init!r}")
        if self.max_frames is not None and self.max_frames < 2:
            raise ValueError("max_frames must be >= 2")


STATUS_BAD_DATA = "bad-data"
"""A sequence that cannot be tracked as stored (frames and ground truth cannot be aligned, the first frame
is unreadable, the initial box is unusable): reported and skipped; a rerun does the same until the data
is fixed."""

@dataclass
class SequenceOutcome:
    """One sequence of a run. ``status``: ``done``, ``skipped`` (finished earlier), ``failed``
    (``error`` says why; ``stopped``: because the server gave no reply) or :data:`STATUS_BAD_DATA`. ``requests``: frames asked in
    this invocation; ``replayed``: frames replayed from the log; ``record``: counts over every
    invocation (:class:`~r1track.faults.FaultRecord`)."""

    name: str
    frames: int
    status: str
    replayed: int = 0
    requests: int = 0
    seconds: float = 0.0
    error: str = ""
    server: str = ""
    stopped: bool = False
    record: FaultRecord = field(default_factory=FaultRecord)
    worker: int = 0  # the client process (r1track eval --workers)

    def to_json(self) -> dict[str, Any]:
        doc = {"name": self.name, "frames": self.frames, "status": self.status, "server": self.server}
        if self.worker:
            doc["worker"] = self.worker
        if self.error:
            doc["error"] = self.error
        return {**doc, **self.record.to_json()}


@dataclass
class EvalRun:
    """What :func:`evaluate` did. ``seconds`` / ``frames_tracked``: this invocation's; ``record``: the
    counts summed over the run's sequences (cumulative over resumed invocations)."""

    outcomes: list[SequenceOutcome]
    seconds: float
    frames_tracked: int
    record: FaultRecord = field(default_factory=FaultRecord)

    @property
    def fps(self) -> float:
        return self.frames_tracked / self.seconds if self.seconds > 0 else 0.0

    @property
    def failed(self) -> list[SequenceOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def bad_data(self) -> list[SequenceOutcome]:
        """Sequences skipped because their data cannot be tracked (:data:`STATUS_BAD_DATA`)."""
        return [o for o in self.outcomes if o.status == STATUS_BAD_DATA]


def has_ground_truth(seq: Sequence) -> bool:
    """True when every frame has a ground-truth row (val/train splits, OTB-style folders): more than one
    row, and the frame files align with the rows (a missing frame file is a fallback frame, not a shift)."""
    n = len(seq.boxes_xywh_orig)
    return n > 1 and frame_slots(seq) is not None


def _check_start(seq: Sequence, slots: list[Path | None] | None, init: str) -> str:
    """Why ``seq`` cannot be started (a one-line message naming the file), or "" when it can."""
    if slots is None:
        where = seq.frames[0].parent if seq.frames else seq.name
        return (f"{where}: {len(seq.frames)} frame files for {len(seq.boxes_xywh_orig)} ground-truth rows, and the "
                f"frame numbers do not say which row is which ({Reason.FRAME_COUNT_MISMATCH.value}); not tracked")
    if not slots or slots[0] is None:
        where = seq.frames[0].parent if seq.frames else seq.name
        return f"{where}: the first frame is missing ({Reason.MISSING_FRAME.value}); not tracked"
    size, reason, detail = read_image_header(slots[0])
    if size is None:
        return f"{slots[0]}: {detail} ({reason}); the first frame is needed to start, not tracked"
    if init == "box":
        problem = box_problem(seq.boxes_xywh_orig[0], size)
        if problem is not None:
            box = ",".join(f"{v:g}" for v in seq.boxes_xywh_orig[0])
            return f"{seq.name}: initial box {box} (ground-truth row 1) is unusable on the {size[0]}x{size[1]} first frame ({problem}); not tracked"
    return ""


class _ReplayLog:
    """``partial/{seq}.jsonl``: an optional first line ``{"carry": record}`` (counts of frames dropped
    from the log to be asked again), then one JSON line per tracked frame: ``i`` (frame index), ``t``
    (seconds), ``a`` (attempts), ``f`` (faults by kind, when any), and ``reply``, ``error`` or ``skip`` (a
    frame not sent: the data reason). A torn
    last line is ignored. The file is opened per append and closed again, so sequences in flight hold
    no file open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: list[dict] = []
        self.carry = FaultRecord()
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file():
            for n, line in enumerate(path.read_text().splitlines()):
                try:
                    entry = json.loads(line)
                except ValueError:
                    break  # the process died while writing this line
                if n == 0 and isinstance(entry, dict) and "carry" in entry:
                    self.carry = FaultRecord.from_json(entry["carry"])
                    continue
                if not isinstance(entry, dict) or entry.get("i") != len(self.entries) + 1:
                    break
                self.entries.append(entry)
            self._rewrite()  # without a torn tail, so appends stay line-aligned

    def _rewrite(self) -> None:
        lines = [{"carry": self.carry.to_json()}] if self.carry != FaultRecord() else []
        atomic_write_text(self.path, "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in lines + self.entries))

    @staticmethod
    def reply_of(entry: dict) -> Reply | BackendError:
        """The logged outcome of a frame, as the backend gave it."""
        attempts, faults = int(entry.get("a", 1)), dict(entry.get("f") or {})
        if "error" in entry:
            return BackendError(entry["error"], kind="replayed", attempts=attempts, faults=faults)
        return Reply(entry.get("reply") or "", attempts=attempts, faults=faults)

    def append(self, result: TrackResult) -> None:
        entry: dict[str, Any] = {"i": result.frame_index, "t": round(result.timing.total_s, 6), "a": result.attempts}
        if result.faults:
            entry["f"] = dict(result.faults)
        if result.status in SKIP_STATUSES:
            entry["skip"] = result.status
        elif result.status == Status.BACKEND_ERROR:
            entry["error"] = result.detail
        else:
            entry["reply"] = result.reply
        self.entries.append(entry)
        append_line(self.path, json.dumps(entry, separators=(",", ":")))

    def drop_unanswered_tail(self) -> int:
        """Drop the frames after the last reply (no reply, or not sent; the counts of those asked move to
        ``carry``), so a rerun asks them again; returns how many were dropped."""
        n = 0
        while self.entries and ("error" in self.entries[-1] or "skip" in self.entries[-1]):
            e = self.entries.pop()
            a = int(e.get("a", 1))
            if a > 0:
                self.carry.add(FaultRecord(1, a, a - 1, Counter(e.get("f") or {}), Counter(), float(e.get("t", 0.0))))
            n += 1
        if n:
            self._rewrite()
        return n

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class _Backends:
    """Backend per sequence: shared per server (openai), one for all (ncc, the in-process engines) or one per
    sequence (oracle)."""

    def __init__(self, settings: EvalSettings, max_connections: int | None = None) -> None:
        self.settings = settings
        self.shared: list[Backend] = []
        self.active: Counter[int] = Counter()
        self.spec = get_backend_spec(settings.backend)
        name, opts = settings.backend, settings.backend_options
        if self.spec.needs_server:
            urls = settings.servers or (None,)
            if max_connections is not None:
                opts = {"max_connections": max(1, max_connections // len(urls)), **opts}
            self.shared = [make_backend(name, base_url=u, model=settings.model, **opts) for u in urls]
        elif self.spec.in_process:  # one engine, every sequence's requests batched into it
            self.shared = [make_backend(name, model=settings.model, **opts)]
        elif not self.spec.needs_ground_truth:
            self.shared = [make_backend(name, **opts)]

    def acquire(self, seq: Sequence) -> tuple[Backend, int]:
        if self.spec.needs_ground_truth:
            if not has_ground_truth(seq):
                raise EvalAborted(f"{seq.name}: the {self.spec.name} backend needs ground truth for every frame")
            opts = dict(self.settings.backend_options)
            return make_backend(self.spec.name, boxes_xywh_orig=seq.boxes_xywh_orig, visible=seq.visible, **opts), -1
        k = min(range(len(self.shared)), key=lambda j: self.active[j])
        self.active[k] += 1
        return self.shared[k], k

    def release(self, k: int) -> None:
        if k >= 0:
            self.active[k] -= 1

    async def aclose(self) -> None:
        for b in self.shared:
            await b.aclose()


class _Progress:
    def __init__(self, total: int, enabled: bool, sink: Callable[[int, bool], None] | None = None) -> None:
        self.done = 0
        self.faults = 0
        self.sink = sink
        self.bar = progress_bar(total, "tracking", enabled=enabled, smoothing=0.05)

    def update(self, n: int = 1, fault: bool = False) -> None:
        self.done += n
        self.faults += int(fault)
        if self.sink is not None:
            self.sink(n, fault)
        self.bar.update(n)
        if self.done % 50 == 0:
            self.bar.set_postfix(fallbacks=self.faults, refresh=False)

    def close(self) -> None:
        self.bar.close()


def _read_record(out: Path, name: str) -> FaultRecord:
    path = out / RECORDS / f"{name}.json"
    try:
        return FaultRecord.from_json(json.loads(path.read_text()))
    except (OSError, ValueError):
        return FaultRecord()  # finished before records were kept, or never started


async def _run_sequence(
    seq: Sequence, settings: EvalSettings, backends: _Backends, pool: ThreadPoolExecutor, progress: _Progress
) -> SequenceOutcome:
    out = settings.out_dir
    slots = frame_slots(seq)
    all_frames = slots if slots is not None else list(seq.frames)
    frames = all_frames[: settings.max_frames] if settings.max_frames else all_frames
    outcome = SequenceOutcome(seq.name, len(frames), "done")
    if has_result(out / RESULTS, seq.name):
        outcome.status = "skipped"
        outcome.record = _read_record(out, seq.name)
        progress.update(max(0, len(frames) - 1))
        return outcome
    if len(frames) == 0:
        outcome.status, outcome.error = STATUS_BAD_DATA, f"{seq.name}: no frames"
        return outcome
    problem = _check_start(seq, slots, settings.init)
    if problem:
        log.error("%s", problem)
        outcome.status, outcome.error = STATUS_BAD_DATA, problem
        progress.update(max(0, len(frames) - 1))
        return outcome
    backend, slot = backends.acquire(seq)
    outcome.server = getattr(backend, "base_url", backend.name)
    tracker = Tracker(backend, settings.params, name=seq.name)
    guard = FaultGuard(settings.faults, outcome.server)
    replay = _ReplayLog(out / PARTIAL / f"{seq.name}.jsonl")
    record = outcome.record
    record.add(replay.carry)
    t0 = time.perf_counter()
    loop = asyncio.get_running_loop()
    try:
        if settings.init == "text":
            if not seq.text:
                raise EvalAborted(f"{seq.name}: --init text needs a description (LaSOT nlp.txt); this sequence has none")
            init = await tracker.initialize_async(frames[0], text=seq.text, executor=pool)
        else:
            init = await tracker.initialize_async(frames[0], seq.boxes_xywh_orig[0], executor=pool)
        boxes = [tuple(init.box_xywh_orig)]
        times = [init.timing.total_s]
        presence = [presence_score(Status.INIT)]
        for i, frame in enumerate(frames[1:], start=1):
            entry = replay.entries[i - 1] if i <= len(replay.entries) else None
            asked = False
            if frame is None or (entry is not None and "skip" in entry):
                reason = Status.MISSING_FRAME if frame is None else Status(entry["skip"])  # type: ignore[index]
                result = tracker.skip_frame(reason, f"{seq.name} frame {i + 1}: {reason}")
                if entry is None:
                    await loop.run_in_executor(pool, replay.append, result)
                else:
                    outcome.replayed += 1
                times.append(0.0)
            elif entry is not None:
                try:
                    request = await loop.run_in_executor(pool, partial(tracker.build_request, prepare=False), frame)
                except ValueError as exc:  # the file broke since the logged run: a data fallback now
                    result = tracker.skip_frame(*frame_fault(frame, exc))
                else:
                    result = tracker.apply_reply(request, _ReplayLog.reply_of(entry))
                times.append(float(entry.get("t", 0.0)))
                outcome.replayed += 1
            else:
                try:
                    result = await asyncio.wait_for(tracker.track_async(frame, executor=pool), max(guard.time_left(), 1e-3))
                except asyncio.TimeoutError:
                    raise guard.stopped("request cancelled at the time limit") from None
                except ValueError as exc:  # a corrupt or undecodable frame: keep the last box, go on
                    if tracker.pending:  # raised after the frame was decoded: not a data problem
                        raise
                    result = tracker.skip_frame(*frame_fault(frame, exc))
                    log.warning("%s (%s); the last box is kept", result.detail, result.status)
                else:
                    outcome.requests += 1
                    asked = True
                await loop.run_in_executor(pool, replay.append, result)  # file I/O off the event loop
                times.append(result.timing.total_s)
            record.add_frame(result, seconds=times[-1])
            if asked:
                guard.observe(result)
            boxes.append(tuple(result.box_xywh_orig))
            presence.append(result.object_presence_score)
            progress.update(1, fault=result.fault)
        scores = np.array(presence) if settings.params.visibility_aware else None
        await loop.run_in_executor(pool, _write_results, out, outcome, np.array(boxes), np.array(times), scores)
        replay.remove()
    except SequenceStopped as exc:  # the server gave no reply for too long: no result, a rerun resumes
        replay.drop_unanswered_tail()
        log.error("%s: stopped: %s", seq.name, exc)
        outcome.status, outcome.error, outcome.stopped = "failed", f"stopped: {exc}", True
        _write_record(out, outcome)
    except BackendError as exc:  # fatal: every request would fail the same way
        raise EvalAborted(f"{seq.name}: {exc}") from exc
    except EvalAborted:
        raise
    except Exception as exc:  # a broken sequence (unreadable frame, bad box): record it, go on
        log.error("%s: %s: %s", seq.name, type(exc).__name__, exc)
        outcome.status, outcome.error = "failed", f"{type(exc).__name__}: {exc}"
        _write_record(out, outcome)
    finally:
        backends.release(slot)
    outcome.seconds = time.perf_counter() - t0
    return outcome


def _write_record(out: Path, outcome: SequenceOutcome) -> None:
    atomic_write_text(out / RECORDS / f"{outcome.name}.json", json.dumps(outcome.to_json(), indent=1) + "\n")


def _fingerprint(settings: EvalSettings) -> dict:
    """What must not change between a run and its resumption (anything that changes the boxes)."""
    return {
        "backend": settings.backend,
        "model": settings.model,
        "init": settings.init,
        "max_frames": settings.max_frames,
        "params": asdict(settings.params),
        # the API key is no setting of the results (and never written to a file)
        "backend_options": {k: repr(v) for k, v in sorted(settings.backend_options.items()) if k != "api_key"},
    }


def _check_fingerprint(settings: EvalSettings) -> None:
    path = settings.out_dir / "settings.json"
    mine = json.loads(json.dumps(_fingerprint(settings)))
    if path.is_file():
        try:
            theirs = json.loads(path.read_text())
        except ValueError:
            theirs = None
        if theirs != mine:
            diff = sorted(k for k in set(mine) | set(theirs or {}) if (theirs or {}).get(k) != mine.get(k))
            raise EvalAborted(
                f"{settings.out_dir} holds results made with other settings ({', '.join(diff) or 'unreadable settings.json'}); "
                "resuming would mix them: use another output folder, or remove it to start over"
            )
        return
    atomic_write_text(path, json.dumps(mine, indent=2, sort_keys=True) + "\n")


def _write_results(out: Path, outcome: SequenceOutcome, boxes: np.ndarray, times: np.ndarray,
                   presence: np.ndarray | None = None) -> None:
    name = outcome.name
    _write_record(out, outcome)
    write_result(out / RESULTS_PYTRACKING, name, boxes, times, layout="pytracking", presence=presence)
    write_result(out / RESULTS, name, boxes, times, layout="got10k", presence=presence)  # last: it marks "done"


def _frames_total(sequences: Seq[Sequence], settings: EvalSettings) -> int:
    """Frames to track after the first of each sequence (what the progress bar counts)."""
    return sum(max(0, len(s.frames[: settings.max_frames] if settings.max_frames else s.frames) - 1) for s in sequences)


async def evaluate_async(
    sequences: Seq[Sequence], settings: EvalSettings, *, write_run: bool = True,
    on_progress: Callable[[int, bool], None] | None = None,
) -> EvalRun:
    """Track every sequence (see the module docstring) in this process; returns per-sequence outcomes. Raises
    :class:`EvalAborted` on a fatal backend error, after the in-flight sequences were stopped (their
    replay logs are kept, so a rerun resumes them). ``write_run``: write ``run.json`` (a worker of
    :mod:`r1track.evalpool` leaves it to its parent). ``on_progress(frames, fault)``: called per tracked frame."""
    out = settings.out_dir
    out.mkdir(parents=True, exist_ok=True)
    _check_fingerprint(settings)
    fd_limit = raise_open_file_limit()
    backends = _Backends(settings, max_connections=max(8, fd_limit - _FD_RESERVE) if fd_limit else None)
    threads = settings.threads or 2 * (os.cpu_count() or 1)
    progress = _Progress(_frames_total(sequences, settings), settings.progress, on_progress)
    gate = asyncio.Semaphore(settings.concurrency)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.perf_counter()

    async def one(seq: Sequence) -> SequenceOutcome:
        async with gate:
            return await _run_sequence(seq, settings, backends, pool, progress)

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="r1track-eval") as pool:
        tasks = [asyncio.ensure_future(one(s)) for s in sequences]
        try:
            outcomes = await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            progress.close()
            await backends.aclose()
    seconds = time.perf_counter() - t0
    total = FaultRecord()
    for o in outcomes:
        total.add(o.record)
    run = EvalRun(list(outcomes), seconds, sum(o.requests for o in outcomes), total)
    if write_run:
        _write_run_json(settings, run, started)
    return run


def _previous_invocations(path: Path) -> list[dict]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    runs = doc.get("invocations") if isinstance(doc, dict) else None
    return [r for r in runs if isinstance(r, dict)] if isinstance(runs, list) else []


def _write_run_json(settings: EvalSettings, run: EvalRun, started: str) -> None:
    path = settings.out_dir / "run.json"
    status = Counter(o.status for o in run.outcomes)
    invocations = _previous_invocations(path) + [{
        "started": started,
        "seconds": round(run.seconds, 3),
        "frames_requested": run.frames_tracked,
        "fps": round(run.fps, 3),
        "done": status["done"],
        "skipped": status["skipped"],
        "failed": status["failed"],
        "bad_data": status[STATUS_BAD_DATA],
    }]
    seconds = sum(float(r.get("seconds", 0.0)) for r in invocations)
    frames = sum(int(r.get("frames_requested", 0)) for r in invocations)
    doc = {
        "backend": settings.backend,
        "servers": list(settings.servers),
        "model": settings.model,
        "concurrency": settings.concurrency,
        "workers": settings.workers,
        "init": settings.init,
        "params": asdict(settings.params),
        "fault_policy": asdict(settings.faults),
        "seconds": round(seconds, 3),
        "frames_requested": frames,
        "fps": round(frames / seconds, 3) if seconds > 0 else 0.0,
        "totals": {"sequences": len(run.outcomes), "failed": status["failed"], **run.record.to_json()},
        "fallbacks": dict(sorted(run.record.fallbacks.items())),
        "sequences": [o.to_json() for o in run.outcomes],
        "invocations": invocations,
    }
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")


def evaluate(sequences: Seq[Sequence], settings: EvalSettings) -> EvalRun:
    """Track every sequence: :func:`evaluate_async` in this process, or with ``settings.workers > 1``
    :func:`r1track.evalpool.evaluate_sharded` (the same results from N client processes)."""
    if settings.workers > 1 and len(sequences) > 1:
        from .evalpool import evaluate_sharded

        return evaluate_sharded(sequences, settings)
    return asyncio.run(evaluate_async(sequences, settings))
