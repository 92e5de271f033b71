"""Run the tracker over a dataset: many sequences in flight in one process, resumable, then scored.

One asyncio event loop drives up to ``concurrency`` sequences at once (each a :class:`~r1track.tracker.Tracker`
calling :meth:`~r1track.tracker.Tracker.track_async`); decoding and cropping run in a thread pool, requests
are awaited, so a single process keeps hundreds of requests in flight against one or several servers.
With several OpenAI-compatible servers each *sequence* goes to the server with the fewest active sequences
and stays there (vLLM then reuses its prefix and encoder caches for the sequence's template).

Output folder (:mod:`r1track.evalfolder`)::

    results/{seq}/{seq}_001.txt, {seq}_time.txt   got10k toolkit / server layout (what `r1track pack` zips)
    results_pytracking/{seq}.txt, {seq}_time.txt   PyTracking's layout (tab-separated), full precision
    partial/{seq}.jsonl                           replay log of a sequence in progress (deleted when done)
    records/{seq}.json                            the sequence's counts (requests, retries, faults, fallbacks, time)
    windows/{seq}.txt                             each frame's search window and crop side (r1track.results)
    run.json                                      settings, per-sequence and total counts, each invocation's timing
    report/                                       scores, table and plots (when the dataset has ground truth)

Resuming: a finished sequence (its result file exists; result files are written atomically, last) is
skipped. A sequence cut off mid-way has a replay log with one line per tracked frame (the reply text or
the backend error, attempts and faults met; lines are written in batches by one writer thread,
:class:`~r1track.evalfolder.ReplayWriter`, milliseconds after their frames): on restart its first frames are
replayed through the same pure tracker steps without asking the model again, so the model does each logged
frame exactly once (a kill loses at most the replies of the last few milliseconds, asked again) and the results
equal an uninterrupted run's.

A dead server: a sequence whose backend gives no reply for ``FaultPolicy`` frames in a row or seconds
(:mod:`r1track.faults`) is stopped and reported *failed*, with no result file. The frames of that run of
faults are dropped from its replay log (their counts move to the log's ``carry`` line), so a rerun with
the server back asks them again and the results equal an uninterrupted run's. Replies without any text
(``no-content``) count as no reply; a sequence that ends with nearly every frame unanswered ("the model never
answered usably", :data:`r1track.faults.NEVER_ANSWERED_SHARE`) is failed the same way and its whole log dropped.

A full disk: a write to the run folder that fails (:class:`~r1track.evalrun.OutputUnwritable`) fails that
sequence, stops the others at their next write and starts no more; the run returns with ``output_error`` set,
``run.json`` is written when it still fits, and a rerun resumes.

Counts are cumulative over resumed invocations: a sequence's record is its replay log's (``carry`` plus
every frame) and, once finished, ``records/{seq}.json``; ``run.json`` sums the records of the run's
sequences and keeps each invocation's own timing in ``invocations``.

Modules: the settings and outcomes of a run (:mod:`r1track.evalrun`), its folder (:mod:`r1track.evalfolder`), the
one-process scheduler (:mod:`r1track.evalloop`), several client processes (:mod:`r1track.evalpool`); this module
chooses between the last two, and every public name of the others is importable from here.
"""

from __future__ import annotations

import asyncio
from typing import Sequence as Seq

from .data.sequences import Sequence
from .evalfolder import PARTIAL, RECORDS, RESULTS, RESULTS_PYTRACKING, ReplayLog  # noqa: F401 - importable from here
from .evalloop import evaluate_async, has_ground_truth, log  # noqa: F401 - log: the run's logger
from .evalpool import evaluate_sharded
from .evalrun import STATUS_BAD_DATA, EvalAborted, EvalRun, EvalSettings, RunRefused, SequenceOutcome  # noqa: F401

_ReplayLog = ReplayLog  # its name when it lived here

__all__ = ["EvalSettings", "SequenceOutcome", "EvalRun", "EvalAborted", "RunRefused", "evaluate", "evaluate_async", "has_ground_truth"]


def evaluate(sequences: Seq[Sequence], settings: EvalSettings) -> EvalRun:
    """Track every sequence: :func:`evaluate_async` in this process, or with ``settings.workers > 1``
    :func:`r1track.evalpool.evaluate_sharded` (the same results from N client processes)."""
    if settings.workers > 1 and len(sequences) > 1:
        return evaluate_sharded(sequences, settings)
    return asyncio.run(evaluate_async(sequences, settings))
