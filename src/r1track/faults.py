"""When to give up on a server, and the record of every fault: one rule for ``eval``, ``track`` and PyTracking.

A frame whose backend gave no reply (transport faults or HTTP errors after the backend's own retries)
falls back to the last box; that is right for a passing fault, and wrong for a dead server, where every
later frame would "track" by repeating the last box and the results would look complete. So a sequence
is **stopped** (:class:`SequenceStopped`) when its backend gives no usable reply for
:attr:`FaultPolicy.max_consecutive_faults` frames in a row, or for :attr:`FaultPolicy.max_fault_seconds`
seconds since its last reply; callers then write no result for the sequence and report it as failed.
"No usable reply" is a frame of :data:`~r1track.frame_outcome.UNANSWERED_STATUSES`: no reply after the
retries (``backend-error``), or a reply without any text (``no-content``: null content, no choice) -- both
point at the server. Frames whose reply was unusable (no box, a jump) are the model's answers and never
stop a sequence.

**The model never answered usably**: a sequence that reaches its end with at least
:data:`NEVER_ANSWERED_SHARE` (90 %) of its frames asked in that state is no result either (:meth:`FaultGuard.finish`
raises :class:`SequenceStopped` with ``never_answered`` set, naming the counts and the last cause), even when
the runs of such frames were too short to stop it (``--max-consecutive-faults`` raised, or a sequence of a
few frames). Callers treat it like a stop, and its frames are asked again by a rerun.

The time bound holds from the first byte, for every request a sequence makes (the model lookup, text
initialisation, frames): :attr:`FaultGuard.deadline` is the moment the bound is reached, and the callers put it on
each request (:attr:`r1track.backends.FrameRequest.deadline`), so a backend that talks to a server gives up then --
an attempt in flight included -- instead of between frames. A sequence therefore stops within
``max_fault_seconds`` of its last reply (or its start), whichever request hangs.

:class:`FaultRecord` counts what a sequence (or a whole run) cost and met, for every kind of request
(:class:`RequestKind`: ``frame``, ``text-init``, ``lookup``): requests, HTTP attempts, retries, faults by kind
(``connection``, ``timeout``, ``malformed``, ``too-large``, ``http-NNN``, ``bad-response``; retried ones included),
and fallback frames by reason; :func:`format_summary` prints it.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:  # frame outcomes (numpy, Pillow) are imported on first use: the CLI reads FaultPolicy's defaults
    from .frame_outcome import TrackResult

__all__ = ["FaultPolicy", "FaultGuard", "SequenceStopped", "RequestKind", "RequestCounts", "FaultRecord",
           "format_summary", "NEVER_ANSWERED_SHARE"]

NEVER_ANSWERED_SHARE = 0.9
"""Share of a sequence's frames asked that, once reached by frames without a usable reply from the server
(``backend-error``, ``no-content``), makes the sequence no result (see the module docstring)."""


class RequestKind(str, Enum):
    """What a request to a backend was for (the counts in :class:`FaultRecord` are kept per kind)."""

    FRAME = "frame"
    """a tracking request (one frame)"""
    TEXT_INIT = "text-init"
    """text initialisation: the grounding request that finds the first box from a description"""
    LOOKUP = "lookup"
    """the model listing, ``GET /v1/models`` (the served model's name and family)"""

    def __str__(self) -> str:
        return self.value


_KIND_WORDS = {RequestKind.FRAME: "frame(s)", RequestKind.TEXT_INIT: "text initialisation(s)",
               RequestKind.LOOKUP: "model lookup(s)"}


@dataclass(frozen=True)
class FaultPolicy:
    """When a sequence is stopped for want of replies.

    * ``max_consecutive_faults`` = 3: frames in a row without a reply (each after the backend's
      retries, a few seconds for a refused connection with the default backoff).
    * ``max_fault_seconds`` = 120.0: seconds since the sequence's last reply (or its start); every request
      (model lookup, text initialisation, frame) carries the moment it is reached (:attr:`FaultGuard.deadline`),
      and a server backend gives up then, an attempt in flight included.
    """

    max_consecutive_faults: int = 3
    max_fault_seconds: float = 120.0

    def __post_init__(self) -> None:
        if self.max_consecutive_faults < 1:
            raise ValueError(f"max_consecutive_faults must be >= 1, got {self.max_consecutive_faults}")
        if not self.max_fault_seconds > 0:
            raise ValueError(f"max_fault_seconds must be > 0, got {self.max_fault_seconds}")


class SequenceStopped(RuntimeError):
    """The backend gave no usable reply for too long (see :class:`FaultPolicy`). ``where``: the server URL
    (or backend name); ``frames``: frames in a row without a reply; ``seconds``: since the last reply.
    ``never_answered``: raised by :meth:`FaultGuard.finish` (nearly every frame of the sequence went
    unanswered), so every frame, not only the last run of them, must be asked again."""

    def __init__(self, message: str, *, where: str, frames: int, seconds: float, never_answered: bool = False) -> None:
        super().__init__(message)
        self.where = where
        self.frames = frames
        self.seconds = seconds
        self.never_answered = never_answered


class FaultGuard:
    """Applies a :class:`FaultPolicy` to one sequence. Call :meth:`observe` with every tracked
    frame's result; it raises :class:`SequenceStopped` when the policy says stop."""

    def __init__(self, policy: FaultPolicy, where: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.where = where
        self._clock = clock
        self._last_reply = clock()
        self.run = 0  # frames in a row without a usable reply
        self.asked = 0  # frames sent to the backend (observed)
        self.unanswered: Counter[str] = Counter()  # of those, the ones without a usable reply, by status
        self._last_cause = ""

    def time_left(self) -> float:
        """Seconds until the no-reply bound is reached (may be <= 0)."""
        return self.policy.max_fault_seconds - (self._clock() - self._last_reply)

    def deadline(self) -> float:
        """The moment the no-reply bound is reached, on the guard's clock (``time.monotonic()`` seconds by
        default, the clock the backends read): what the next request must be answered by."""
        return self._last_reply + self.policy.max_fault_seconds

    def observe(self, result: "TrackResult", *, replayed: bool = False) -> None:
        """Count a frame's result; raise :class:`SequenceStopped` when the policy says stop. ``replayed``: a
        frame replayed from a log (counted for :meth:`finish`, never a reason to stop now)."""
        from .frame_outcome import SKIP_STATUSES, UNANSWERED_STATUSES

        if result.status in SKIP_STATUSES:  # a frame not sent (missing or broken file): says nothing of the server
            return
        self.asked += 1
        if result.status not in UNANSWERED_STATUSES:
            if not replayed:
                self.run = 0
                self._last_reply = self._clock()
            return
        self.unanswered[str(result.status)] += 1
        self._last_cause = result.detail if result.status == "backend-error" else f"{result.status}: {result.detail}"
        if replayed:
            return
        self.run += 1
        if self.run >= self.policy.max_consecutive_faults or self.time_left() <= 0:
            raise self.stopped(self._last_cause)

    def finish(self) -> None:
        """At the end of a sequence: :class:`SequenceStopped` (``never_answered``) when at least
        :data:`NEVER_ANSWERED_SHARE` of the frames asked got no usable reply from the server."""
        bad = sum(self.unanswered.values())
        if self.asked and bad >= NEVER_ANSWERED_SHARE * self.asked:
            raise SequenceStopped(
                f"{self.where}: the model never answered usably: {bad} of {self.asked} frame(s) asked got no usable "
                f"reply from the server ({_counts(self.unanswered)}; the limit is {NEVER_ANSWERED_SHARE:.0%}); "
                f"last: {self._last_cause}",
                where=self.where, frames=bad, seconds=self._clock() - self._last_reply, never_answered=True,
            )

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
class RequestCounts:
    """Requests of one kind: how many, their HTTP attempts, retries (attempts beyond the first) and every fault
    met by kind (retried ones included)."""

    requests: int = 0
    attempts: int = 0
    retries: int = 0
    faults: Counter = field(default_factory=Counter)

    def add(self, requests: int, attempts: int, retries: int, faults: Mapping[str, int]) -> None:
        self.requests += requests
        self.attempts += attempts
        self.retries += retries
        self.faults.update({str(k): int(n) for k, n in faults.items() if n})

    def to_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "attempts": self.attempts, "retries": self.retries,
                "faults": dict(sorted(self.faults.items()))}


@dataclass
class FaultRecord:
    """Counts for one sequence or a whole run. ``requests``: requests made of the backend, every kind
    (:class:`RequestKind`: frames, text initialisation, the model lookup); ``attempts``: HTTP attempts for them;
    ``retries``: attempts beyond the first; ``faults``: every fault met by kind, retried ones included;
    ``by_kind``: the same four counts per request kind (the totals are their sums); ``fallbacks``: frames that
    kept the last box, by reason; ``seconds``: time spent on the frames (decode, request with retries, checks);
    ``absent``: frames the model answered "not visible" (they keep the last box too, but are answers, not
    faults); ``redetections``: whole-frame searches that found the target again."""

    requests: int = 0
    attempts: int = 0
    retries: int = 0
    faults: Counter = field(default_factory=Counter)
    fallbacks: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    absent: int = 0
    redetections: int = 0
    by_kind: dict = field(default_factory=dict)  # RequestKind value -> RequestCounts

    def add_request(self, kind: RequestKind | str, attempts: int, faults: Mapping[str, int] | None = None) -> None:
        """Count one request of ``kind`` that took ``attempts`` HTTP attempts (0: none was made -- it is then
        not counted as a request, its faults still are) and met ``faults`` (by kind)."""
        faults = dict(faults or {})
        requests, retries = (1, attempts - 1) if attempts > 0 else (0, 0)
        self.requests += requests
        self.attempts += attempts
        self.retries += retries
        self.faults.update({str(k): int(n) for k, n in faults.items() if n})
        if requests or faults:
            self.by_kind.setdefault(str(RequestKind(kind)), RequestCounts()).add(requests, attempts, retries, faults)

    def kind(self, kind: RequestKind | str) -> RequestCounts:
        """The counts of one request kind (zero when none was made)."""
        return self.by_kind.get(str(RequestKind(kind)), RequestCounts())

    def add_frame(self, result: "TrackResult", *, seconds: float | None = None) -> None:
        """Count one tracked frame: a request when it was asked of the backend (``attempts`` > 0; the first
        frame's, status ``init``, is a text initialisation), a fallback unless it is ok or an absent answer
        (counted in ``absent``; accepted re-detections in ``redetections``). ``seconds``: its time (default: the
        result's)."""
        from .frame_outcome import Status

        if result.attempts > 0 or result.faults:
            kind = RequestKind.TEXT_INIT if result.status == Status.INIT else RequestKind.FRAME
            self.add_request(kind, result.attempts, result.faults)
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
        for kind, counts in other.by_kind.items():
            self.by_kind.setdefault(kind, RequestCounts()).add(counts.requests, counts.attempts, counts.retries,
                                                               counts.faults)
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
            "by_kind": {k: self.by_kind[k].to_json() for k in sorted(self.by_kind)},
            "fallbacks": dict(sorted(self.fallbacks.items())),
            "seconds": round(self.seconds, 6),
            "absent": self.absent,
            "redetections": self.redetections,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any] | None) -> "FaultRecord":
        """The record of :meth:`to_json`'s output; missing or malformed fields count as zero. A record written
        before requests were counted by kind (no ``by_kind``) counted frames only: its totals become the frames'."""
        doc = doc if isinstance(doc, Mapping) else {}

        def number(d: Mapping, key: str, kind: type) -> Any:
            v = d.get(key, 0)
            return kind(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else kind(0)

        def counter(d: Mapping, key: str) -> Counter:
            v = d.get(key)
            if not isinstance(v, Mapping):
                return Counter()
            return Counter({str(k): int(n) for k, n in v.items() if isinstance(n, int) and not isinstance(n, bool)})

        record = cls(number(doc, "requests", int), number(doc, "attempts", int), number(doc, "retries", int),
                     counter(doc, "faults"), counter(doc, "fallbacks"), number(doc, "seconds", float),
                     number(doc, "absent", int), number(doc, "redetections", int))
        kinds = doc.get("by_kind")
        if isinstance(kinds, Mapping):
            known = {k.value for k in RequestKind}
            for kind, d in kinds.items():
                if kind in known and isinstance(d, Mapping):
                    record.by_kind[kind] = RequestCounts(number(d, "requests", int), number(d, "attempts", int),
                                                         number(d, "retries", int), counter(d, "faults"))
        elif "by_kind" not in doc and (record.requests or record.faults):
            record.by_kind[RequestKind.FRAME.value] = RequestCounts(record.requests, record.attempts, record.retries,
                                                                    Counter(record.faults))
        return record


def _counts(c: Mapping[str, int]) -> str:
    items = [(k, n) for k, n in sorted(c.items()) if n]
    return ", ".join(f"{k} {n}" for k, n in items) if items else "none"


def format_summary(record: FaultRecord) -> str:
    """Lines for the end of a run: requests, attempts, retries and faults by kind -- in total and, when other
    requests than frames were made, per request kind --; fallback frames by reason; absent answers."""
    kinds = [k for k in RequestKind if record.kind(k).requests or record.kind(k).faults]
    per_kind = ""
    if any(k != RequestKind.FRAME for k in kinds):
        per_kind = "".join(
            f"\n  {_KIND_WORDS[k]}: {c.requests} in {c.attempts} attempt(s), {c.retries} retried; faults: {_counts(c.faults)}"
            for k in kinds for c in [record.kind(k)])
    if per_kind:
        what = ", ".join(f"{record.kind(k).requests} {_KIND_WORDS[k]}" for k in kinds) + f": {record.requests} request(s)"
    else:
        what = f"{record.requests} frame(s) asked"
    return (f"requests: {what} in {record.attempts} attempt(s), {record.retries} retried; faults: {_counts(record.faults)}"
            + per_kind + "\n"
            f"fallback frames (kept the last box): {_counts(record.fallbacks)}"
            + (f"\nabsent answers (kept the last box, not faults): {record.absent}; re-detections that found the "
               f"target: {record.redetections}" if record.absent or record.redetections else ""))
