"""What an evaluation run is: its settings (:class:`EvalSettings`), what became of each sequence
(:class:`SequenceOutcome`) and of the run (:class:`EvalRun`), and the error that stops it (:class:`EvalAborted`).

The run itself is :func:`r1track.evaluate.evaluate`; its output folder, :mod:`r1track.evalfolder`.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backends import get_backend_spec
from .exitcodes import ExitStatus
from .faults import FaultPolicy, FaultRecord
from .tracker_params import TrackerParams

__all__ = ["EvalAborted", "OutputUnwritable", "RunRefused", "EvalSettings", "STATUS_BAD_DATA", "SequenceOutcome", "EvalRun"]


class EvalAborted(RuntimeError):
    """The run stopped: a fatal backend error (the server rejects every request) or a bad setting."""


class OutputUnwritable(EvalAborted):
    """A file of the run folder could not be written (a full disk, a quota, a read-only folder); the message
    names the file and the system's reason. The sequence that met it fails, the others stop at their next
    write, nothing is left half-written (atomic writes), and a rerun resumes. ``exit_status``: 1."""

    exit_status = ExitStatus.RUN_FAILED

    @classmethod
    def of(cls, path: Path, exc: OSError) -> "OutputUnwritable":
        code = errno.errorcode.get(exc.errno or 0, "")
        return cls(f"cannot write {path}: {exc.strerror or exc}{f' ({code})' if code else ''}")


class RunRefused(EvalAborted):
    """The run stopped because a server refused the work (HTTP 401, 403 or a redirect on every attempt:
    :class:`r1track.backends.ServerRefused`). ``exit_status``: 3."""

    exit_status = ExitStatus.SERVER_REFUSED


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
    client processes (:mod:`r1track.evalpool`; the in-process engines need 1). ``lookup``: the
    :class:`~r1track.backends.model_lookup.ModelLookup` the run shares with whoever made it (the command asked
    the servers' model listings through it; they are not asked again, and the lookups it made are counted in this
    run's ``run.json``); None: a new one for the run."""

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
    lookup: Any = None

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
    worker: int | None = None
    """The client process that tracked it (``r1track eval --workers N``: 0 .. N-1); None in a one-process run."""

    def to_json(self) -> dict[str, Any]:
        doc = {"name": self.name, "frames": self.frames, "status": self.status, "server": self.server}
        if self.worker is not None:  # worker 0 is a worker too
            doc["worker"] = self.worker
        if self.error:
            doc["error"] = self.error
        return {**doc, **self.record.to_json()}


@dataclass
class EvalRun:
    """What :func:`evaluate` did. ``seconds`` / ``frames_tracked``: this invocation's; ``record``: the
    counts summed over the run's sequences and the run's own requests (cumulative over resumed invocations);
    ``requests``: this invocation's own requests, made for no one sequence (the servers' model listing).
    ``output_error``: why the run folder could not be written, when it could not (the run stopped; ``run.json``
    was written if it still could be, else this says so too)."""

    outcomes: list[SequenceOutcome]
    seconds: float
    frames_tracked: int
    record: FaultRecord = field(default_factory=FaultRecord)
    requests: FaultRecord = field(default_factory=FaultRecord)
    output_error: str = ""
    """Set when the run folder could not be written (:class:`OutputUnwritable`'s message): the run stopped."""
    engine: dict | None = None
    """The in-process engine's report of this invocation (:mod:`r1track.backends.engine_report`: ``run.json``'s
    ``engine``), None for other backends."""

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
