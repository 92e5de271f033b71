"""The evaluation scheduler: many sequences in flight in one process, one asyncio event loop.

:func:`evaluate_async` drives up to ``concurrency`` sequences at once, each a :class:`~r1track.tracker.Tracker`
on its backend (shared per server, one per process for the engines, one per sequence for ``oracle``), decoding
and cropping in a thread pool; it reads and writes the run folder through :mod:`r1track.evalfolder`. The
overview -- server balancing, resuming, dead servers, counts -- is :mod:`r1track.evaluate`'s docstring.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Callable, Coroutine, Sequence as Seq, TypeVar

import numpy as np

from .redact import get_logger
from .backends import Backend, BackendError, ServerRefused, get_backend_spec, make_backend
from .backends.model_lookup import ModelLookup
from .data.checks import Reason, box_problem, frame_slots, read_image_header
from .data.sequences import Sequence
from .evalfolder import (
    PARTIAL,
    RESULTS,
    ReplayLog,
    ReplayWriter,
    check_fingerprint,
    read_record,
    write_record,
    write_results,
    write_run_json_if_possible,
)
from .evalrun import STATUS_BAD_DATA, EvalAborted, EvalRun, EvalSettings, OutputUnwritable, RunRefused, SequenceOutcome
from .faults import FaultGuard, FaultRecord, RequestKind, SequenceStopped
from .fsutil import raise_open_file_limit
from .progress import progress_bar
from .results import has_result
from .tracker import Status, Tracker, TrackerInitError, frame_fault, presence_score

__all__ = ["evaluate_async", "has_ground_truth", "frames_total", "lookup_record"]

log = get_logger("r1track.evaluate")  # the name users know (the scheduler was r1track.evaluate's)

_NO_WINDOW = (float("nan"),) * 5  # a frame that sent no search crop (r1track.results.write_windows)
_FD_RESERVE = 128  # file descriptors kept for frames being decoded, logs, threads, the interpreter
_GRACE_S = 2.0  # past a request's deadline (the backend gives up there itself), a frame is cancelled
_timeout = getattr(asyncio, "timeout", None)  # Python >= 3.11
T = TypeVar("T")


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


class _Backends:
    """Backend per sequence: shared per server (openai), one for all (ncc, the in-process engines) or one per
    sequence (oracle)."""

    def __init__(self, settings: EvalSettings, max_connections: int | None = None,
                 lookup: ModelLookup | None = None) -> None:
        self.settings = settings
        self.shared: list[Backend] = []
        self.active: Counter[int] = Counter()
        self.spec = get_backend_spec(settings.backend)
        name, opts = settings.backend, settings.backend_options
        if self.spec.needs_server:
            urls = settings.servers or (None,)
            if max_connections is not None:
                opts = {"max_connections": max(1, max_connections // len(urls)), **opts}
            self.shared = [make_backend(name, base_url=u, model=settings.model, lookup=lookup, **opts) for u in urls]
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

    def engine_report(self) -> dict | None:
        """The in-process engine's report (``run.json`` ``engine``), None for other backends."""
        reports = [b.engine_report().to_json() for b in self.shared if hasattr(b, "engine_report")]
        return reports[0] if reports else None

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


async def _run_sequence(
    seq: Sequence, settings: EvalSettings, backends: _Backends, pool: ThreadPoolExecutor, progress: _Progress,
    halt: list[str], writer: ReplayWriter,
) -> SequenceOutcome:
    out = settings.out_dir
    slots = frame_slots(seq)
    all_frames = slots if slots is not None else list(seq.frames)
    frames = all_frames[: settings.max_frames] if settings.max_frames else all_frames
    outcome = SequenceOutcome(seq.name, len(frames), "done")
    if has_result(out / RESULTS, seq.name):
        outcome.status = "skipped"
        outcome.record = read_record(out, seq.name)
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
    if halt:  # the run folder cannot be written: start nothing more
        outcome.status, outcome.error = "failed", f"not started: {halt[0]}"
        progress.update(max(0, len(frames) - 1))
        return outcome
    backend, slot = backends.acquire(seq)
    outcome.server = getattr(backend, "base_url", backend.name)
    tracker = Tracker(backend, settings.params, name=seq.name)
    guard = FaultGuard(settings.faults, outcome.server)
    record = outcome.record
    t0 = time.perf_counter()
    loop = asyncio.get_running_loop()
    replay: ReplayLog | None = None
    try:
        replay = ReplayLog(out / PARTIAL / f"{seq.name}.jsonl", writer)
        record.add(replay.carry)
        if settings.init == "text" and not seq.text:
            raise EvalAborted(f"{seq.name}: --init text needs a description (LaSOT nlp.txt); this sequence has none")
        try:
            if settings.init == "text":
                init = await _text_init(tracker, frames[0], seq.text, pool, guard, record, replay)
            else:
                init = await tracker.initialize_async(frames[0], seq.boxes_xywh_orig[0], executor=pool)
        except TrackerInitError:  # a grounding answer without a box: the model's failure, not the data's
            raise
        except ValueError as exc:  # the first frame's header reads but its pixels do not (a truncated file)
            reason, detail = frame_fault(frames[0], exc)
            detail = str(exc) if str(frames[0]) in str(exc) else detail  # name the file once
            raise _NotTrackable(f"{detail} ({reason}); the first frame is needed to start, not tracked") from None
        boxes = [tuple(init.box_xywh_orig)]
        times = [init.timing.total_s]
        presence = [presence_score(Status.INIT)]
        windows = [_NO_WINDOW]  # frame 1 searches nothing
        for i, frame in enumerate(frames[1:], start=1):
            entry = replay.entries[i - 1] if i <= len(replay.entries) else None
            asked = False
            if frame is None or (entry is not None and "skip" in entry):
                reason = Status.MISSING_FRAME if frame is None else Status(entry["skip"])  # type: ignore[index]
                result = tracker.skip_frame(reason, f"{seq.name} frame {i + 1}: {reason}")
                if entry is None:
                    replay.append(result)  # queued; the writer appends in the thread pool
                else:
                    outcome.replayed += 1
                times.append(0.0)
            elif entry is not None:
                try:
                    request = await loop.run_in_executor(pool, partial(tracker.build_request, prepare=False), frame)
                except ValueError as exc:  # the file broke since the logged run: a data fallback now
                    result = tracker.skip_frame(*frame_fault(frame, exc))
                else:
                    result = tracker.apply_reply(request, ReplayLog.reply_of(entry))
                times.append(float(entry.get("t", 0.0)))
                outcome.replayed += 1
            else:
                try:
                    result = await _within(max(guard.time_left(), 0.0) + _GRACE_S,
                                           tracker.track_async(frame, executor=pool, deadline=guard.deadline))
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
                replay.append(result)  # queued; the writer appends in the thread pool, off the event loop
                times.append(result.timing.total_s)
            record.add_frame(result, seconds=times[-1])
            guard.observe(result, replayed=not asked)
            boxes.append(tuple(result.box_xywh_orig))
            presence.append(result.object_presence_score)
            windows.append((*result.search_window_xyxy_orig, result.search_crop_side) if result.search_crop_side
                           else _NO_WINDOW)
            progress.update(1, fault=result.fault)
        guard.finish()  # the model never answered usably: no result
        scores = np.array(presence) if settings.params.visibility_aware else None
        await replay.settle()  # a log that could not be written fails the sequence (a full disk stops the run)
        await loop.run_in_executor(pool, write_results, out, outcome, np.array(boxes), np.array(times), scores,
                                   np.array(windows, dtype=np.float64))
        await replay.close(remove=True)
    except SequenceStopped as exc:  # the server gave no usable reply for too long: no result, a rerun resumes
        log.error("%s: stopped: %s", seq.name, exc)
        outcome.status, outcome.error, outcome.stopped = "failed", f"stopped: {exc}", True
        if replay is not None:
            fixes = [replay.drop_all if exc.never_answered else replay.drop_unanswered_tail]
            try:
                await replay.settle()  # the queued lines first: the repair below rewrites the file
            except Exception as err:  # lines lost (disk full): the whole file again from memory, or the run halts
                log.error("%s: replay log: %s", seq.name, err)
                fixes.append(replay.rewrite)
            _keep_failure(out, outcome, halt, lambda: [fix() for fix in fixes])
    except _NotTrackable as exc:
        log.error("%s", exc)
        outcome.status, outcome.error = STATUS_BAD_DATA, str(exc)
        progress.update(max(0, len(frames) - 1))
    except OutputUnwritable as exc:  # a full disk: this sequence fails, the others stop at their next write
        halt.append(str(exc))
        log.error("%s: %s", seq.name, exc)
        outcome.status, outcome.error = "failed", str(exc)
    except ServerRefused as exc:  # the key or the URL is wrong: exit status 3
        raise RunRefused(f"{seq.name}: {exc}") from exc
    except BackendError as exc:  # fatal: every request would fail the same way
        raise EvalAborted(f"{seq.name}: {exc}") from exc
    except EvalAborted:
        raise
    except Exception as exc:  # a broken sequence (unreadable frame, bad box): record it, go on
        log.error("%s: %s: %s", seq.name, type(exc).__name__, exc)
        outcome.status, outcome.error = "failed", f"{type(exc).__name__}: {exc}"
        _keep_failure(out, outcome, halt)
    finally:
        backends.release(slot)
    outcome.seconds = time.perf_counter() - t0
    return outcome


class _NotTrackable(Exception):
    """The sequence cannot be started as stored (found once tracking began: the first frame does not decode)."""


def _keep_failure(out: Path, outcome: SequenceOutcome, halt: list[str], fix_log: Callable[[], object] | None = None) -> None:
    """Write a failed sequence's record (after ``fix_log``, its replay log's repair); a full disk then only
    stops the run (``halt``), it does not turn the failure into a crash."""
    try:
        if fix_log is not None:
            fix_log()
        write_record(out, outcome)
    except OutputUnwritable as exc:
        halt.append(str(exc))
        log.error("%s: %s", outcome.name, exc)


async def _text_init(tracker: Tracker, frame, text: str, pool: ThreadPoolExecutor, guard: FaultGuard,
                     record: FaultRecord, replay: ReplayLog):
    """Initialise from ``text`` within the fault policy's time bound, counting the request (in the replay log's
    carry too, so a rerun keeps the count); a grounding request that gets no reply stops the sequence."""
    try:
        init = await _within(max(guard.time_left(), 0.0) + _GRACE_S,
                             tracker.initialize_async(frame, text=text, executor=pool, deadline=guard.deadline))
    except asyncio.TimeoutError:
        raise guard.stopped("text initialisation cancelled at the time limit") from None
    except TrackerInitError as exc:  # answered without a usable box (no text, no box): counted, the sequence fails
        record.add_request(RequestKind.TEXT_INIT, exc.attempts, exc.faults)
        replay.carry_request(RequestKind.TEXT_INIT, exc.attempts, exc.faults)
        raise
    except BackendError as exc:
        record.add_request(RequestKind.TEXT_INIT, exc.attempts, exc.faults)
        replay.carry_request(RequestKind.TEXT_INIT, exc.attempts, exc.faults)
        if exc.fatal:
            raise
        guard.run += 1
        raise guard.stopped(f"text initialisation: {exc}") from None
    record.add_request(RequestKind.TEXT_INIT, init.attempts, init.faults)
    replay.carry_request(RequestKind.TEXT_INIT, init.attempts, init.faults)
    return init


def lookup_record(lookup: ModelLookup) -> FaultRecord:
    """The lookups ``lookup`` made since they were last counted, as a record of ``lookup`` requests."""
    record = FaultRecord()
    for _, attempts, faults in lookup.take_made():
        record.add_request(RequestKind.LOOKUP, attempts, faults)
    return record


async def _within(seconds: float, coro: Coroutine[Any, Any, T]) -> T:
    """``await coro``, cancelled after ``seconds`` (at least 1 ms) with :class:`asyncio.TimeoutError`: the fault
    policy's time bound on a frame. ``asyncio.timeout`` (Python >= 3.11) arms a timer on the running task;
    ``asyncio.wait_for`` (3.10) wraps the coroutine in a new task per frame."""
    seconds = max(seconds, 1e-3)
    if _timeout is None:
        return await asyncio.wait_for(coro, seconds)
    async with _timeout(seconds):
        return await coro


def frames_total(sequences: Seq[Sequence], settings: EvalSettings) -> int:
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
    filled = check_fingerprint(settings)
    fd_limit = raise_open_file_limit()
    lookup = settings.lookup if settings.lookup is not None else ModelLookup()
    backends = _Backends(settings, max_connections=max(8, fd_limit - _FD_RESERVE) if fd_limit else None, lookup=lookup)
    threads = settings.threads or 2 * (os.cpu_count() or 1)
    progress = _Progress(frames_total(sequences, settings), settings.progress, on_progress)
    gate = asyncio.Semaphore(settings.concurrency)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.perf_counter()
    halt: list[str] = []  # why the run folder cannot be written, once a write failed

    async def one(seq: Sequence) -> SequenceOutcome:
        async with gate:
            return await _run_sequence(seq, settings, backends, pool, progress, halt, writer)

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="r1track-eval") as pool, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="r1track-replay") as log_thread:
        writer = ReplayWriter(log_thread)  # its own thread: log lines never wait behind the frames being decoded
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
            await writer.settle()  # the replies of sequences cut off reach their logs: a rerun resumes them
            engine = backends.engine_report()
            await backends.aclose()
    seconds = time.perf_counter() - t0
    own = lookup_record(lookup)
    total = FaultRecord()
    for o in outcomes:
        total.add(o.record)
    total.add(own)
    run = EvalRun(list(outcomes), seconds, sum(o.requests for o in outcomes), total, own,
                  output_error=halt[0] if halt else "", engine=engine)
    if write_run:
        write_run_json_if_possible(settings, run, started, filled=filled)
    return run
