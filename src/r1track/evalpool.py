"""``r1track eval --workers N``: the evaluation client in N processes, for servers faster than one core can feed.

One client process spends a few milliseconds of CPU per frame (JPEG decode, crop, encode, HTTP, parse), so
past a few hundred frames/s the client, not the servers, sets the pace. With ``workers > 1``
:func:`evaluate_sharded` starts N worker processes (``spawn``: nothing of the parent's threads or event loop is
inherited), each running :func:`r1track.evalloop.evaluate_async` on its share of the sequences, and merges
their outcomes into the one ``run.json`` the parent writes:

* **Sharding**: sequences are dealt longest first to the worker with the fewest frames so far (ties: the lower
  worker number), then each worker keeps the dataset's order; the same sequences always go to the same worker.
* **Servers**: every worker uses every ``--server``, its list rotated by the worker's number, so the first
  sequence of each worker starts on a different server; within a worker sequences are balanced by load as
  with one process. ``--concurrency`` and the decoding thread pool are split evenly over the workers.
* **Results and resuming** are per sequence and unchanged (the same result files, replay logs and
  ``settings.json``), so ``--workers N`` writes byte-identical box files to ``--workers 1`` and either can
  resume the other's run.
* **Progress**: one bar in the parent, fed by the workers' counts (sent a few times a second).
* **Faults**: a fatal error in one worker (the server rejects every request, a bad setting) stops the others
  (SIGTERM; their replay logs keep what they did) and is raised as :class:`~r1track.evaluate.EvalAborted`,
  as is a worker that dies without an answer. Ctrl-C reaches only the parent (the workers start with it held:
  :func:`r1track.interrupts.ctrl_c_held`), which stops the workers as on a fatal error and exits with 130.

The in-process engines (``transformers``, ``vllm``) are refused: they would load one model per worker; one
process already batches every sequence into its engine.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import queue
import threading
import time
from dataclasses import replace
from typing import Any, Sequence as Seq

from .data.sequences import Sequence
from .evalfolder import check_fingerprint, write_run_json_if_possible
from .backends.model_lookup import ModelLookup
from .evalloop import evaluate_async, frames_total, lookup_record
from .evalrun import EvalAborted, EvalRun
from .exitcodes import ExitStatus
from .faults import FaultRecord
from .interrupts import ctrl_c_held
from .progress import progress_bar

__all__ = ["shard", "evaluate_sharded"]

_FLUSH_S = 0.2


def shard(sequences: Seq[Sequence], workers: int, frames_of=None) -> list[list[int]]:
    """Indices of ``sequences`` per worker: longest first to the least loaded worker (ties: lowest number),
    each list in dataset order. ``frames_of``: frames a sequence costs (default: its frame count)."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    cost = [frames_of(s) if frames_of else len(s.frames) for s in sequences]
    load = [0] * workers
    out: list[list[int]] = [[] for _ in range(workers)]
    for i in sorted(range(len(cost)), key=lambda i: (-cost[i], i)):
        k = min(range(workers), key=lambda j: (load[j], j))
        out[k].append(i)
        load[k] += cost[i]
    return [sorted(ix) for ix in out]


def _worker(k: int, sequences: list, settings: Any, results: Any, progress: Any) -> None:
    """Body of worker ``k`` (a spawned process): evaluate its sequences, send counts and the outcome."""
    import asyncio

    pending = [0, 0]
    last = [time.monotonic()]

    def on_progress(n: int, fault: bool) -> None:
        pending[0] += n
        pending[1] += int(fault)
        now = time.monotonic()
        if now - last[0] >= _FLUSH_S:
            progress.put((pending[0], pending[1]))
            pending[0] = pending[1] = 0
            last[0] = now

    try:
        run = asyncio.run(evaluate_async(sequences, settings, write_run=False, on_progress=on_progress))
        if pending[0] or pending[1]:
            progress.put((pending[0], pending[1]))
        results.put((k, "ok", (run.outcomes, run.frames_tracked, run.requests, run.output_error)))
    except BaseException as exc:  # noqa: BLE001 - the parent re-raises it
        try:
            results.put((k, "error", exc))
        except Exception:  # an exception that does not pickle
            results.put((k, "error", RuntimeError(f"{type(exc).__name__}: {exc}")))
        if isinstance(exc, KeyboardInterrupt):  # Ctrl-C where it cannot be held (no signal masks): the parent says it
            raise SystemExit(ExitStatus.INTERRUPTED) from None
        if not isinstance(exc, Exception):
            raise


def evaluate_sharded(sequences: Seq[Sequence], settings: Any):
    """:func:`r1track.evaluate.evaluate` with ``settings.workers`` processes (see the module docstring);
    returns the merged :class:`~r1track.evaluate.EvalRun` and writes ``run.json``."""
    n = settings.workers
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    filled = check_fingerprint(settings)
    lookup = settings.lookup if settings.lookup is not None else ModelLookup()
    settings = replace(settings, lookup=lookup)  # the workers get the servers' model listings already had
    parts = [p for p in shard(sequences, n, frames_of=lambda s: frames_total([s], settings)) if p]
    servers = tuple(settings.servers)
    threads = settings.threads or 2 * (os.cpu_count() or 1)
    ctx = mp.get_context("spawn")
    results, progress = ctx.Queue(), ctx.Queue()
    procs = []
    for k, idx in enumerate(parts):
        sub = replace(settings, workers=1, progress=False, concurrency=math.ceil(settings.concurrency / len(parts)),
                      threads=max(1, math.ceil(threads / len(parts))),
                      servers=servers[k % len(servers):] + servers[: k % len(servers)] if servers else servers)
        procs.append(ctx.Process(target=_worker, args=(k, [sequences[i] for i in idx], sub, results, progress),
                                 name=f"r1track-eval-{k}", daemon=True))
    bar = progress_bar(frames_total(sequences, settings), "tracking", enabled=settings.progress, smoothing=0.05)
    faults = [0]
    stop = threading.Event()

    def feed() -> None:
        while not stop.is_set() or not progress.empty():
            try:
                done, fault = progress.get(timeout=0.1)
            except queue.Empty:
                continue
            except (EOFError, OSError):
                return
            faults[0] += fault
            bar.update(done)
            bar.set_postfix(fallbacks=faults[0], refresh=False)

    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.perf_counter()
    feeder = threading.Thread(target=feed, name="r1track-eval-progress", daemon=True)
    outcomes: dict[int, tuple] = {}
    try:
        with ctrl_c_held():  # the workers never hear Ctrl-C, not even while they import: this process stops them
            for p in procs:
                p.start()
        feeder.start()
        while len(outcomes) < len(procs):
            try:
                k, kind, value = results.get(timeout=0.5)
            except queue.Empty:
                dead = [i for i, p in enumerate(procs) if i not in outcomes and not p.is_alive() and p.exitcode != 0]
                if dead and results.empty():
                    i = dead[0]
                    raise EvalAborted(f"worker {i} died (exit code {procs[i].exitcode}) without an answer; "
                                      "run the same command again to resume")
                continue
            if kind != "ok":
                raise value if isinstance(value, BaseException) else EvalAborted(str(value))
            outcomes[k] = value
    finally:
        for p in procs:
            if p.is_alive() and p.pid is not None and len(outcomes) < len(procs):
                p.terminate()
        for p in procs:
            if p.pid is not None:
                p.join(timeout=30)
        stop.set()
        if feeder.is_alive():
            feeder.join(timeout=5)
        bar.close()
    seconds = time.perf_counter() - t0
    by_index: dict[int, Any] = {}
    for k, idx in enumerate(parts):
        for i, o in zip(idx, outcomes[k][0]):
            o.worker = k
            by_index[i] = o
    merged = [by_index[i] for i in range(len(sequences))]
    own = lookup_record(settings.lookup)
    for k in outcomes:
        own.add(outcomes[k][2])
    total = FaultRecord()
    for o in merged:
        total.add(o.record)
    total.add(own)
    errors = [outcomes[k][3] for k in range(len(parts)) if outcomes[k][3]]
    run = EvalRun(merged, seconds, sum(o.requests for o in merged), total, own,
                  output_error=errors[0] if errors else "")
    write_run_json_if_possible(settings, run, started, filled=filled)
    return run
