"""When to give up on a server, and the record of every fault: one rule for ``eval``, ``track`` and PyTracking.

A frame whose backend gave no reply (transport faults or HTTP errors after the backend's own retries)
falls back to the last box; that is right for a passing fault, and wrong for a dead server, where every
later frame would "track" by repeating the last box and the results would look complete. So a sequence
is **stopped** (:class:`SequenceStopped`) when its backend gives no reply for
:attr:`FaultPolicy.max_consecutive_faults` frames in a row, or for :attr:`FaultPolicy.max_fault_seconds`
seconds since its last reply; callers then write no result for the sequence and report it as failed.
Frames whose reply was unusable (no box, a jump) are the model's answers and never stop a sequence.

:class:`FaultRecord` counts what a sequence (or a whole run) cost and met: frames asked, HTTP attempts,
retries, faults by kind (``connection``, ``timeout``, ``malformed``, ``too-large``, ``http-NNN``,
``bad-response``; retried ones included) and fallback frames by reason; :func:`format_summary` prints it.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:  # the tracker (numpy, Pillow) is imported on first use: the CLI reads FaultPolicy's defaults
    from .tracker import TrackResult

__all__ = ["FaultPolicy", "FaultGuard", "SequenceStopped", "FaultRecord", "format_summary"]


@dataclass(frozen=True)
class FaultPolicy:
    """When a sequence is stopped for want of replies.

    * ``max_consecutive_faults`` = 3: frames in a row without a reply (each after the backend's
      retries, a few seconds for a refused connection with the default backoff).
    * ``max_fault_seconds`` = 120.0: seconds since the sequence's last reply (or its start); checked
      after every frame, and ``r1track eval`` also cancels a request in flight once it is reached.
    """

    max_consecutive_faults: int = 3
    max_fault_seconds: float = 120.0

    def __post_init__(self) -> None:
        if self.max_consecutive_faults < 1:
            raise ValueError(f"max_consecutive_faults must be >= 1, got {self.max_consecutive_faults}")
        if not self.max_fault_seconds > 0:
            raise ValueError(f"max_fault_seconds must be > 0, got {self.max_fault_seconds}")


class SequenceStopped(RuntimeError):
    """The backend gave no reply for too long (see :class:`FaultPolicy`). ``where``: the server URL
    (or backend name); ``frames``: frames in a row without a reply; ``seconds``: since the last reply."""

    def __init__(self, message: str, *, where: str, frames: int, seconds: float) -> None:
        super().__init__(message)
        self.where = where
        self.frames = frames
        self.seconds = seconds


class FaultGuard:
    """Applies a :class:`FaultPolicy` to one sequence. Call :meth:`observe` with every tracked
    frame's result; it raises :class:`SequenceStopped` when the policy says stop."""

    def __init__(self, policy: FaultPolicy, where: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.where = where
        self._clock = clock
        self._last_reply = clock()
        self.run = 0  # frames in a row without a reply

    def time_left(self) -> float:
        """Seconds until the no-reply bound is reached (may be <= 0)."""
        return self.policy.max_fault_seconds - (self._clock() - self._last_reply)

    def observe(self, result: "TrackResult") -> None:
        from .tracker import SKIP_STATUSES, Status

        if result.status in SKIP_STATUSES:  # a frame not sent (missing or broken file): says nothing of the server
            return
        if result.status != Status.BACKEND_ERROR:
            self.run = 0
            self._last_reply = self._clock()
            return
        self.run += 1
        if self.run >= self.policy.max_consecutive_faults or self.time_left() <= 0:
            raise self.stopped(result.detail)

    def stopped(self, last: str) -> SequenceStopped:
        """The exception for a stop now (also used when a request is cancelled at the time bound)."""
        p = self.policy
        seconds = self._clock() - self._last_reply
        return SequenceStopped(
            f"{self.where}: no reply for {self.run} frame(s) in a row over {seconds:.1f} s (limits: "
            f"{p.max_consecutive_faults} frames, {p.max_fault_seconds:g} s); last: {last}",
            where=self.where, frames=self.run, seconds=seconds,
        )


@dataclass
class FaultRecord:
    """Counts for one sequence or a whole run. ``requests``: frames asked of the backend;
    ``attempts``: HTTP attempts for them; ``retries``: attempts beyond the first; ``faults``: every
    fault met by kind, retried ones included; ``fallbacks``: frames that kept the last box, by reason;
    ``seconds``: time spent on the frames (decode, request with retries, checks); ``absent``: frames the model
    answered "not visible" (they keep the last box too, but are answers, not faults); ``redetections``:
    whole-frame searches that found the target again."""

    requests: int = 0
    attempts: int = 0
    retries: int = 0
    faults: Counter = field(default_factory=Counter)
    fallbacks: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    absent: int = 0
    redetections: int = 0

    def add_frame(self, result: "TrackResult", *, seconds: float | None = None) -> None:
        """Count one tracked frame: a request when it was asked of the backend (``attempts`` > 0), a
        fallback unless it is ok or an absent answer (counted in ``absent``; accepted re-detections in
    ``redetections``). ``seconds``: its time (default: the result's)."""
        from .tracker import Status

        if result.attempts > 0:
            self.requests += 1
            self.attempts += result.attempts
            self.retries += result.attempts - 1
            self.faults.update(result.faults)
        if result.status == Status.ABSENT:
            self.absent += 1
        elif result.status not in (Status.OK, Status.INIT):
            self.fallbacks[str(result.status)] += 1
        if result.redetect and result.status == Status.OK:
            self.redetections += 1
        self.seconds += result.timing.total_s if seconds is None else seconds

    def add(self, other: "FaultRecord", *, fallbacks: bool = True) -> None:
        """Add ``other``'s counts (``fallbacks=False``: all but the fallback frames)."""
        self.requests += other.requests
        self.attempts += other.attempts
        self.retries += other.retries
        self.faults.update(other.faults)
        if fallbacks:
            self.fallbacks.update(other.fallbacks)
        self.seconds += other.seconds
        self.absent += other.absent
        self.redetections += other.redetections

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "attempts": self.attempts,
            "retries": self.retries,
            "faults": dict(sorted(self.faults.items())),
            "fallbacks": dict(sorted(self.fallbacks.items())),
            "seconds": round(self.seconds, 6),
            "absent": self.absent,
            "redetections": self.redetections,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any] | None) -> "FaultRecord":
        """The record of :meth:`to_json`'s output; missing or malformed fields count as zero."""
        doc = doc if isinstance(doc, Mapping) else {}

        def number(key: str, kind: type) -> Any:
            v = doc.get(key, 0)
            return kind(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else kind(0)

        def counter(key: str) -> Counter:
            v = doc.get(key)
            if not isinstance(v, Mapping):
                return Counter()
            return Counter({str(k): int(n) for k, n in v.items() if isinstance(n, int) and not isinstance(n, bool)})

        return cls(number("requests", int), number("attempts", int), number("retries", int), counter("faults"),
                   counter("fallbacks"), number("seconds", float), number("absent", int), number("redetections", int))


def _counts(c: Mapping[str, int]) -> str:
    items = [(k, n) for k, n in sorted(c.items()) if n]
    return ", ".join(f"{k} {n}" for k, n in items) if items else "none"


def format_summary(record: FaultRecord) -> str:
    """Two lines for the end of a run: requests, retries and faults by kind; fallback frames by reason."""
    return (f"requests: {record.requests} frame(s) asked in {record.attempts} attempt(s), {record.retries} retried; "
            f"faults: {_counts(record.faults)}\n"
            f"fallback frames (kept the last box): {_counts(record.fallbacks)}"
            + (f"\nabsent answers (kept the last box, not faults): {record.absent}; re-detections that found the "
               f"target: {record.redetections}" if record.absent or record.redetections else ""))
