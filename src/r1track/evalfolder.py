"""The output folder of ``r1track eval``: where everything goes, and the files that make a run resumable.

Layout::

    results/{seq}/{seq}_001.txt, {seq}_time.txt   got10k toolkit / server layout (what `r1track pack` zips)
    results_pytracking/{seq}.txt, {seq}_time.txt   PyTracking's layout (tab-separated), full precision
    partial/{seq}.jsonl                           replay log of a sequence in progress (deleted when done)
    records/{seq}.json                            the sequence's counts (requests, retries, faults, fallbacks, time)
    windows/{seq}.txt                             each frame's search window and crop side (r1track.results)
    settings.json                                 what must not change between a run and its resumption
    run.json                                      settings, per-sequence and total counts, each invocation's timing
    report/                                       scores, table and plots (when the dataset has ground truth)

Every file is written atomically (:mod:`r1track.fsutil`); a sequence's result files are written last, so an
existing result file means the sequence is done. How the scheduler uses them is in :mod:`r1track.evaluate`.
A write that fails (a full disk, a quota, a read-only folder) raises
:class:`~r1track.evalrun.OutputUnwritable` naming the file and the reason, never a bare ``OSError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from concurrent.futures import Executor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .backends import BackendError, Reply
from .evalrun import STATUS_BAD_DATA, EvalAborted, EvalRun, EvalSettings, OutputUnwritable, SequenceOutcome
from .faults import FaultRecord, RequestKind
from .frame_outcome import SKIP_STATUSES, Status, TrackResult
from .fsutil import append_line, append_lines, atomic_write_text
from .redact import get_logger
from .results import write_result, write_windows

__all__ = ["RESULTS", "RESULTS_PYTRACKING", "PARTIAL", "RECORDS", "WINDOWS", "NEUTRAL_OPTIONS", "ReplayLog", "ReplayWriter",
           "read_record", "write_record", "fingerprint", "check_fingerprint", "compare_saved", "holds_other_settings",
           "legacy_values", "SAVED_LEGACY", "write_results", "write_run_json", "write_run_json_if_possible",
           "record_failed_start"]

log = get_logger("r1track.evaluate")  # the name users know

RESULTS = "results"
RESULTS_PYTRACKING = "results_pytracking"
PARTIAL = "partial"
RECORDS = "records"
WINDOWS = "windows"


@contextlib.contextmanager
def _writing(path: Path):
    """Turn an ``OSError`` of writing ``path`` into :class:`OutputUnwritable` naming it."""
    try:
        yield
    except OSError as exc:  # the file the system names (the real one, e.g. a result file in ``path``'s folder)
        raise OutputUnwritable.of(Path(exc.filename) if exc.filename else path, exc) from exc


def _append_batch(batch: dict[Path, list[str]]) -> dict[Path, Exception]:
    """Append each file's lines (one open, one write, one close per file); the errors by file."""
    errors: dict[Path, Exception] = {}
    for path, lines in batch.items():
        try:
            append_lines(path, lines)
        except Exception as exc:  # disk full, a removed folder: that log's sequence fails, the others go on
            errors[path] = exc
    return errors


class ReplayWriter:
    """Writes the new lines of every replay log of a run, from its event loop, without a thread hand-off per
    frame: :meth:`ReplayLog.append` queues its line here (no file I/O on the event loop); one job at a time, in
    ``executor``, appends everything queued so far (each log opened, its lines written in one call, closed
    again: sequences in flight still hold no file open), and the next job starts when that one is done. A
    line reaches its file within one such job, milliseconds after its frame (a process killed in between loses
    those frames' replies, which the rerun asks again; a torn line is ignored as before). A write error
    (disk full) is raised to the sequence whose log it was, at its next append or :meth:`settle`. Use it from one
    event loop only.

    Why: the issue-11 logs appended each frame's line in the thread pool, one executor round trip per frame
    (two thread wake-ups and two GIL hand-overs on top of the frame's own decode job), which cost the
    client-bound scenario of ``benchmarks/eval_throughput.py`` more than the line itself."""

    def __init__(self, executor: Executor | None = None) -> None:
        self._executor = executor
        self._queued: dict[Path, list[str]] = {}
        self._job: asyncio.Future | None = None
        self._inflight: frozenset[Path] = frozenset()  # the logs of the batch being written
        self._errors: dict[Path, Exception] = {}

    def put(self, path: Path, line: str) -> None:
        """Queue ``line`` (no newline) for ``path``; raises the error of an earlier write to ``path``."""
        self._raise(path)
        lines = self._queued.get(path)
        if lines is None:
            self._queued[path] = [line]
        else:
            lines.append(line)
        if self._job is None:
            self._start()

    def discard(self, path: Path) -> None:
        """Forget the lines queued for ``path`` (its log is about to be rewritten or removed)."""
        self._queued.pop(path, None)

    def _raise(self, path: Path) -> None:
        err = self._errors.pop(path, None)
        if isinstance(err, OSError):  # a full disk: the run stops, as for a direct write
            raise OutputUnwritable.of(path, err) from err
        if err is not None:
            raise err

    def _start(self) -> None:
        batch, self._queued = self._queued, {}
        job = asyncio.get_running_loop().run_in_executor(self._executor, _append_batch, batch)
        job.add_done_callback(lambda done: self._done(done, list(batch)))
        self._job, self._inflight = job, frozenset(batch)

    def _done(self, job: asyncio.Future, paths: list[Path]) -> None:
        self._job, self._inflight = None, frozenset()
        if job.cancelled():
            failure: BaseException | None = RuntimeError("the replay-log write was cancelled")
        else:
            failure = job.exception()
        if failure is not None:  # the job itself failed (per-file errors are in its result): all its logs did
            self._errors.update({path: RuntimeError(f"{path}: replay log not written: {failure!r}") for path in paths})
        else:
            self._errors.update(job.result())
        if self._queued:
            self._start()

    def _pending(self, path: Path | None) -> bool:
        if path is None:
            return self._job is not None or bool(self._queued)
        return path in self._queued or path in self._inflight

    async def settle(self, path: Path | None = None) -> None:
        """Wait until the lines queued for ``path`` are in its file (None: every log's, and no write in flight),
        not for other logs' writes; raises ``path``'s write error, if any."""
        while self._pending(path):
            if self._job is None:
                self._start()
            job = self._job
            assert job is not None
            await asyncio.wait([job])
        if path is not None:
            self._raise(path)


class ReplayLog:
    """``partial/{seq}.jsonl``: an optional first line ``{"carry": record}`` (counts of frames dropped
    from the log to be asked again), then one JSON line per tracked frame: ``i`` (frame index), ``t``
    (seconds), ``a`` (attempts), ``f`` (faults by kind, when any), and ``reply``, ``error``, ``empty`` (the
    server answered with no text: why) or ``skip`` (a frame not sent: the data reason). A torn
    last line is ignored. The file is opened per append and closed again, so sequences in flight hold
    no file open. With a ``writer`` (:class:`ReplayWriter`, in an event loop) appends are queued there and
    written in batches: call :meth:`settle` before relying on the file, and :meth:`close` at the end."""

    def __init__(self, path: Path, writer: ReplayWriter | None = None) -> None:
        self.path = path
        self.writer = writer
        self.entries: list[dict] = []
        self.carry = FaultRecord()
        with _writing(path.parent):
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

    def rewrite(self) -> None:
        """Write the whole log again from memory, atomically (after lines were lost: a failed batched write)."""
        self._rewrite()

    def _rewrite(self) -> None:
        lines = [{"carry": self.carry.to_json()}] if self.carry != FaultRecord() else []
        with _writing(self.path):
            atomic_write_text(self.path, "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in lines + self.entries))

    @staticmethod
    def reply_of(entry: dict) -> Reply | BackendError:
        """The logged outcome of a frame, as the backend gave it."""
        attempts, faults = int(entry.get("a", 1)), dict(entry.get("f") or {})
        if "error" in entry:
            return BackendError(entry["error"], kind="replayed", attempts=attempts, faults=faults)
        if "empty" in entry:
            return Reply("", attempts=attempts, faults=faults, empty_reason=str(entry["empty"]) or "no content")
        return Reply(entry.get("reply") or "", attempts=attempts, faults=faults)

    def append(self, result: TrackResult) -> None:
        entry: dict[str, Any] = {"i": result.frame_index, "t": round(result.timing.total_s, 6), "a": result.attempts}
        if result.faults:
            entry["f"] = dict(result.faults)
        if result.status in SKIP_STATUSES:
            entry["skip"] = result.status
        elif result.status == Status.BACKEND_ERROR:
            entry["error"] = result.detail
        elif result.status == Status.NO_CONTENT:
            entry["empty"] = result.detail
        else:
            entry["reply"] = result.reply
        self.entries.append(entry)
        line = json.dumps(entry, separators=(",", ":"))
        if self.writer is None:
            with _writing(self.path):
                append_line(self.path, line)
        else:
            self.writer.put(self.path, line)

    async def settle(self) -> None:
        """Wait until every appended line is in the file (with a writer; raises its write error,
        :class:`OutputUnwritable` for a full disk)."""
        if self.writer is not None:
            await self.writer.settle(self.path)

    async def close(self, *, remove: bool) -> None:
        """The sequence ended: with ``remove`` (its results are written) the log is deleted, lines still queued
        are dropped; otherwise they are written first (a rerun resumes from the log)."""
        if self.writer is not None:
            if remove:
                self.writer.discard(self.path)
            await self.writer.settle(self.path)
        if remove:
            self.remove()

    def carry_request(self, kind: RequestKind, attempts: int, faults: dict[str, int]) -> None:
        """Count a request that has no line of its own (text initialisation) in ``carry``, so a rerun keeps it.
        With a writer, only before the first frame's line (the file is rewritten)."""
        if attempts or faults:
            self.carry.add_request(kind, attempts, faults)
            self._rewrite()

    def drop_unanswered_tail(self) -> int:
        """Drop the frames after the last usable reply (no reply, a reply without text, or not sent; the counts
        of those asked move to ``carry``), so a rerun asks them again; returns how many were dropped. With a
        writer, call :meth:`settle` first (a batch in flight would land after the rewrite)."""
        n = 0
        while self.entries and any(k in self.entries[-1] for k in ("error", "empty", "skip")):
            self._carry(self.entries.pop())
            n += 1
        if n:
            self._rewrite()
        return n

    def drop_all(self) -> int:
        """Drop every frame (their counts move to ``carry``), so a rerun starts the sequence over; returns how
        many were dropped. For a sequence the server never answered usably. With a writer, call :meth:`settle`
        first."""
        n = len(self.entries)
        for e in self.entries:
            self._carry(e)
        self.entries = []
        self._rewrite()
        return n

    def _carry(self, entry: dict) -> None:
        a = int(entry.get("a", 1))
        if a > 0 or entry.get("f"):
            self.carry.add_request(RequestKind.FRAME, a, entry.get("f") or {})
            self.carry.seconds += float(entry.get("t", 0.0))

    def remove(self) -> None:
        with _writing(self.path), contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def read_record(out: Path, name: str) -> FaultRecord:
    """The counts of sequence ``name`` in ``records/`` (zero counts when there is no readable record)."""
    path = out / RECORDS / f"{name}.json"
    try:
        return FaultRecord.from_json(json.loads(path.read_text()))
    except (OSError, ValueError):
        return FaultRecord()  # finished before records were kept, or never started


def write_record(out: Path, outcome: SequenceOutcome) -> None:
    """``records/{seq}.json``: the sequence's outcome and counts, atomically."""
    path = out / RECORDS / f"{outcome.name}.json"
    with _writing(path):
        atomic_write_text(path, json.dumps(outcome.to_json(), indent=1) + "\n")


NEUTRAL_OPTIONS = frozenset({"api_key", "timeout_s", "connect_timeout_s", "retries", "backoff_s", "backoff_max_s",
                             "max_connections", "max_body_bytes"})
"""Backend options that never change a box -- the API key (never written to a file), how long to wait for a server
and how often to ask it -- so they are no part of the fingerprint: a rerun may change them (a longer ``--timeout``
to finish what timed out) and resume. The one list of them: :func:`fingerprint` leaves them out, and
:func:`compare_saved` ignores them in a ``settings.json`` an earlier r1track wrote them into (the run folder name of
:mod:`r1track.runname` follows the fingerprint, so it ignores them too)."""

SAVED_LEGACY: dict[str, Any] = {
    # the transformers engine's speed options (r1track.backends.hf.TransformersOptions, added after 9ee8746); saved
    # as repr() like every backend option. Before them the engine ran transformers' stock vision attention (dense
    # and flash attention differ from it by rounding: a near-tie greedy token can differ), with the cache's default
    # dynamic decoding, and fed the processor's inputs, which the direct inputs equal bit for bit (checked at load,
    # else the processor is used): so a resume with the default --vision-attention auto is refused, naming it.
    "backend_options.vision_attention": repr("stock"),
    "backend_options.engine_inputs": repr("direct"),
    "backend_options.decode_cache": repr("dynamic"),
}
"""``settings.json`` keys added since run folders were first saved, outside the tracker settings (a top-level key,
or ``backend_options.NAME``) -> the value (JSON form) that reproduces runs saved before them. Tracker settings
declare theirs on the field (``legacy=`` in :mod:`r1track.tracker_params`)."""


def fingerprint(settings: EvalSettings) -> dict:
    """What must not change between a run and its resumption (anything that changes the boxes)."""
    return {
        "backend": settings.backend,
        "model": settings.model,
        "init": settings.init,
        "max_frames": settings.max_frames,
        "params": asdict(settings.params),
        "backend_options": {k: repr(v) for k, v in sorted(settings.backend_options.items()) if k not in NEUTRAL_OPTIONS},
    }


def _flat(doc: dict) -> dict[str, Any]:
    """``settings.json`` as dotted keys: top-level ones, ``params.NAME``, ``backend_options.NAME``."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key in ("params", "backend_options") and isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def legacy_values() -> dict[str, Any]:
    """Dotted ``settings.json`` key -> the value (JSON form) reproducing runs saved before the key existed: the
    tracker settings' own declarations and :data:`SAVED_LEGACY`."""
    from .tracker_params import legacy_values as params_legacy

    values = {f"params.{k}": v for k, v in params_legacy().items()}
    values.update(SAVED_LEGACY)
    return json.loads(json.dumps(values))


def compare_saved(saved: dict, now: dict) -> tuple[dict[str, Any], list[str]]:
    """Compare a run folder's saved settings with this run's (both :func:`fingerprint` documents in JSON form):
    (the keys the saved file lacks whose value reproducing the old runs equals this run's -- key -> value --, the
    real differences, each in words). A key the saved file lacks with no declared old value is a difference (what
    the old run did cannot be told); :data:`NEUTRAL_OPTIONS` an earlier r1track saved are not compared."""
    legacy = legacy_values()
    mine, theirs = _flat(now), _flat(saved)
    filled: dict[str, Any] = {}
    diffs: list[str] = []
    for key in sorted(set(mine) | set(theirs)):
        if key.startswith("backend_options.") and key.split(".", 1)[1] in NEUTRAL_OPTIONS:
            continue
        if key not in theirs:
            if key in legacy and legacy[key] == mine[key]:
                filled[key] = mine[key]
            elif key in legacy:
                diffs.append(f"{key}: runs saved before r1track had it worked as {legacy[key]!r}, this run has "
                             f"{mine[key]!r}")
            else:
                diffs.append(f"{key}: not in the saved settings, this run has {mine[key]!r}")
        elif key not in mine:
            diffs.append(f"{key}: saved as {theirs[key]!r}, no longer a setting")
        elif theirs[key] != mine[key]:
            diffs.append(f"{key}: saved {theirs[key]!r}, this run {mine[key]!r}")
    return filled, diffs


def _saved_settings(settings: EvalSettings) -> dict | None:
    """The run folder's ``settings.json`` (None when there is none); :class:`ValueError` when it is unreadable."""
    path = settings.out_dir / "settings.json"
    if not path.is_file():
        return None
    try:
        theirs = json.loads(path.read_text())
    except (OSError, ValueError):
        theirs = None
    if not isinstance(theirs, dict):
        raise ValueError("unreadable settings.json")
    return theirs


def holds_other_settings(settings: EvalSettings) -> bool:
    """True when ``settings.out_dir`` holds a run that these settings cannot resume: made with settings that differ
    (:func:`compare_saved`; a folder of an earlier r1track that only lacks settings whose old behaviour this run
    reproduces is not other), or with an unreadable ``settings.json``."""
    try:
        theirs = _saved_settings(settings)
    except ValueError:
        return True
    return theirs is not None and bool(compare_saved(theirs, json.loads(json.dumps(fingerprint(settings))))[1])


def check_fingerprint(settings: EvalSettings) -> dict[str, Any]:
    """Write ``settings.json`` in a new run folder. In an existing one, compare (:func:`compare_saved`): a real
    difference is :class:`~r1track.evalrun.EvalAborted` naming each setting, saved and now; settings the saved
    file lacks (a folder written by an earlier r1track) whose old behaviour this run reproduces are filled in --
    the file is rewritten with them, a warning says so -- and returned (dotted key -> value)."""
    path = settings.out_dir / "settings.json"
    mine = json.loads(json.dumps(fingerprint(settings)))
    try:
        theirs = _saved_settings(settings)
    except ValueError:
        raise EvalAborted(f"{settings.out_dir} holds results made with other settings (unreadable settings.json); "
                          "resuming would mix them: use another output folder, or remove it to start over") from None
    if theirs is None:
        with _writing(path):
            atomic_write_text(path, json.dumps(mine, indent=2, sort_keys=True) + "\n")
        return {}
    filled, diffs = compare_saved(theirs, mine)
    if diffs:
        raise EvalAborted(
            f"{settings.out_dir} holds results made with other settings ({'; '.join(diffs)}); resuming would mix "
            "them: run with the saved settings, use another output folder, or remove it to start over")
    if filled or theirs != mine:  # an earlier r1track's file: complete it (what differs is not compared)
        with _writing(path):
            atomic_write_text(path, json.dumps(mine, indent=2, sort_keys=True) + "\n")
    if filled:
        log.warning("%s was saved by an earlier r1track without %s; resuming with the values that reproduce it (%s)",
                    path, ", ".join(filled), ", ".join(f"{k}={v!r}" for k, v in filled.items()))
    return filled


def write_results(out: Path, outcome: SequenceOutcome, boxes: np.ndarray, times: np.ndarray,
                  presence: np.ndarray | None = None, windows: np.ndarray | None = None) -> None:
    """A finished sequence: its record and search windows (``windows``, (N, 5); see
    :func:`r1track.results.write_windows`), then its boxes and times in PyTracking's layout, then in the got10k
    layout -- last, since that file marks the sequence done."""
    name = outcome.name
    write_record(out, outcome)
    if windows is not None:
        with _writing(out / WINDOWS / name):
            write_windows(out / WINDOWS, name, windows)
    with _writing(out / RESULTS_PYTRACKING / name):
        write_result(out / RESULTS_PYTRACKING, name, boxes, times, layout="pytracking", presence=presence)
    with _writing(out / RESULTS / name):
        write_result(out / RESULTS, name, boxes, times, layout="got10k", presence=presence)  # last: it marks "done"


def _previous_invocations(path: Path) -> list[dict]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    runs = doc.get("invocations") if isinstance(doc, dict) else None
    return [r for r in runs if isinstance(r, dict)] if isinstance(runs, list) else []


def _own_requests(invocations: list[dict]) -> FaultRecord:
    """The requests the invocations made for no one sequence (the model listing), summed."""
    total = FaultRecord()
    for r in invocations:
        if isinstance(r.get("requests"), dict):
            total.add(FaultRecord.from_json(r["requests"]))
    return total


def _invocation(started: str, seconds: float, frames: int, status: Counter, requests: FaultRecord,
                error: str = "", filled: dict | None = None, engine: dict | None = None) -> dict:
    doc = {
        "started": started,
        "seconds": round(seconds, 3),
        "frames_requested": frames,
        "fps": round(frames / seconds, 3) if seconds > 0 else 0.0,
        "done": status["done"],
        "skipped": status["skipped"],
        "failed": status["failed"],
        "bad_data": status[STATUS_BAD_DATA],
        **({"engine": engine["totals"]} if engine else {}),
    }
    if requests.requests or requests.faults:
        doc["requests"] = requests.to_json()
    if error:
        doc["error"] = error
    if filled:
        doc["settings_filled"] = dict(filled)
    return doc


def write_run_json(settings: EvalSettings, run: EvalRun, started: str, *, error: str = "",
                   filled: dict | None = None) -> None:
    """``run.json``: settings, totals, every sequence's counts and, appended to the earlier ones, this
    invocation's timing (``started``: its UTC start time), its own requests (``run.requests``: the model
    listing), the saved settings it filled in (``filled``: a folder of an earlier r1track, see
    :func:`check_fingerprint`) and, when it could not run, why (``error``). The totals hold every sequence's
    counts and every invocation's own requests."""
    path = settings.out_dir / "run.json"
    status = Counter(o.status for o in run.outcomes)
    invocations = _previous_invocations(path) + [
        _invocation(started, run.seconds, run.frames_tracked, status, run.requests, error, filled, run.engine)]
    seconds = sum(float(r.get("seconds", 0.0)) for r in invocations)
    frames = sum(int(r.get("frames_requested", 0)) for r in invocations)
    totals = FaultRecord()
    for o in run.outcomes:
        totals.add(o.record)
    totals.add(_own_requests(invocations))
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
        "totals": {"sequences": len(run.outcomes), "failed": status["failed"], **totals.to_json()},
        "fallbacks": dict(sorted(totals.fallbacks.items())),
        "sequences": [o.to_json() for o in run.outcomes],
        "invocations": invocations,
        **({"engine": run.engine} if run.engine else {}),  # this invocation's engine report, batch by batch
    }
    if run.output_error:
        doc["output_error"] = run.output_error
    with _writing(path):
        atomic_write_text(path, json.dumps(doc, indent=2) + "\n")


def write_run_json_if_possible(settings: EvalSettings, run: EvalRun, started: str, *, error: str = "",
                               filled: dict | None = None) -> bool:
    """:func:`write_run_json`; when it cannot be written (the disk is still full), say so in
    ``run.output_error`` instead of raising. Returns whether it was written."""
    try:
        write_run_json(settings, run, started, error=error, filled=filled)
        return True
    except OutputUnwritable as exc:
        run.output_error = f"{run.output_error}; {exc}" if run.output_error else str(exc)
        return False


def record_failed_start(out_dir: Path, started: str, seconds: float, error: str, requests: FaultRecord) -> Path:
    """An invocation that could not start tracking (no server answered the model lookup the settings needed):
    appended to ``out_dir/run.json`` (made when missing; an earlier run's document is kept) with ``error`` and
    its own requests, which the totals then include. Returns the file's path; :class:`OutputUnwritable` when it
    cannot be written."""
    path = Path(out_dir) / "run.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        doc = {}
    doc = doc if isinstance(doc, dict) else {}
    invocations = _previous_invocations(path) + [_invocation(started, seconds, 0, Counter(), requests, error)]
    old = doc.get("totals") if isinstance(doc.get("totals"), dict) else {}
    totals = FaultRecord.from_json(old)
    totals.add(requests)
    doc.update(seconds=round(sum(float(r.get("seconds", 0.0)) for r in invocations), 3), invocations=invocations,
               totals={"sequences": old.get("sequences", 0), "failed": old.get("failed", 0), **totals.to_json()})
    with _writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    return path
