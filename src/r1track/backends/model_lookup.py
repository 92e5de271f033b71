"""The model listing of OpenAI-compatible servers (``GET /v1/models``), asked once per server and shared.

Who needs it: the commands, to tell the served model's family before tracking (its ``root``, the path vLLM
loaded, or its name); a backend given no model name, to learn the name it must send. Both go through one
:class:`ModelLookup` per scope -- one ``r1track eval`` or ``r1track track`` invocation (the command makes it and
hands it to every backend it builds; ``--workers`` processes get the answers the parent already had), one
PyTracking process (:mod:`r1track.integrations.pytracking_session`), one :func:`r1track.evaluate.evaluate` call
when the caller gives none -- so a server is asked once there, however many sequences and backends share it:

* the first asker sends the request (with the backend's retries, under its own deadline, see
  :attr:`r1track.backends.FrameRequest.deadline`); every other asker, in any thread or event loop, waits for that
  answer (each under its own deadline) instead of asking again;
* an answer is kept for the scope, and so is a failure that settles it: a definite refusal (an HTTP 4xx,
  an empty list) or a server that gave no reply until the asker's time limit (its deadline) -- so a silent server
  costs the fault limit once, not once per sequence (in PyTracking each would otherwise wait the whole limit for
  the same silence). A failure that came quickly, before the time limit (refused connections, resets, errors
  after the retries), is not kept: the next asker asks again, as the next frame retries a frame's request, so a
  passing burst of faults does not condemn the scope. A new scope (a rerun, the next command) asks again;
* every lookup made is kept in :attr:`ModelLookup.made` (base URL, attempts, faults by kind), whatever its
  outcome, and ``on_lookup`` (when given) is called with the same, so the run's counts (``run.json``, the
  summaries) hold every attempt and fault of it.

The errors raised are :class:`~r1track.backends.BackendError` (``fatal`` for a definite answer: an HTTP 4xx other
than 408/429, a list without models); :func:`lookup_failure` says in words what went wrong, cause first, for the
callers to put before their own advice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

from ..exitcodes import ExitStatus
from .base import BackendError, ServerRefused

__all__ = ["ModelLookup", "Hints", "LookupFailed", "RETRYABLE_CAUSES", "lookup_failure", "explain_lookup_failure", "served_ids",
           "unknown_family_message"]

LookupHook = Callable[[str, int, Mapping[str, int]], None]


class Asker(Protocol):
    """What a lookup needs of a backend (:class:`r1track.backends.openai.OpenAIBackend` is one)."""

    base_url: str

    async def fetch_listing(self, deadline: float | None = None) -> tuple[dict, int, Mapping[str, int]]:
        """Ask ``GET /v1/models`` now: (listing, attempts, faults); :class:`BackendError` when none was had."""
        ...


class _Cancelled(Exception):
    """The asker that sent the lookup was cancelled before it had an answer: a waiter asks itself."""


class ModelLookup:
    """``GET /v1/models`` answers (or failures) per server base URL for one scope (see the module docstring).
    Thread-safe; usable from any event loop. Pickles to its answered listings only (no hook, no failures, nothing
    in flight): what a worker process needs so as not to ask again."""

    def __init__(self, on_lookup: LookupHook | None = None) -> None:
        self.on_lookup = on_lookup
        self.made: list[tuple[str, int, dict[str, int]]] = []
        """Every lookup sent in this scope: (base URL, HTTP attempts, faults by kind)."""
        self._lock = threading.Lock()
        self._entries: dict[str, concurrent.futures.Future] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"answered": self.answered()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]
        self.seed(state.get("answered") or {})

    def answered(self) -> dict[str, dict]:
        """The listings had so far (base URL -> ``/v1/models`` answer as JSON)."""
        with self._lock:
            entries = dict(self._entries)
        return {url: f.result() for url, f in entries.items() if f.done() and not f.cancelled() and f.exception() is None}

    def seed(self, listings: Mapping[str, dict]) -> None:
        """Take listings another scope already had (a parent process's), as if asked here."""
        with self._lock:
            for url, listing in listings.items():
                future: concurrent.futures.Future = concurrent.futures.Future()
                future.set_result(listing)
                self._entries.setdefault(url, future)

    def take_made(self) -> list[tuple[str, int, dict[str, int]]]:
        """The lookups sent since the last call (base URL, attempts, faults), for a run to count once."""
        with self._lock:
            made, self.made = self.made, []
        return made

    def forget(self) -> None:
        """Drop every answer and failure (the next asker of each server asks again)."""
        with self._lock:
            self._entries.clear()

    async def listing(self, backend: "Asker", deadline: float | None = None) -> dict:
        """``backend``'s server's listing: the kept answer, else the one in flight, else asked now (by
        :meth:`Asker.fetch_listing`). ``deadline``: ``time.monotonic()`` seconds by which to give up
        (None: the backend's retries alone bound it). Raises the lookup's :class:`BackendError` (kept when it
        settles the question, see the module docstring), or a ``timeout`` one when this asker's deadline passes
        first."""
        url = backend.base_url
        while True:
            with self._lock:
                future = self._entries.get(url)
                mine = future is None
                if mine:
                    future = self._entries[url] = concurrent.futures.Future()
            if mine:
                return await self._ask(backend, url, future, deadline)
            try:
                return await _wait(future, deadline, url)
            except _Cancelled:
                continue

    async def _ask(self, backend: "Asker", url: str, future: concurrent.futures.Future,
                   deadline: float | None) -> dict:
        attempts, faults = 0, {}
        try:
            listing, attempts, faults = await backend.fetch_listing(deadline)
        except BackendError as exc:
            attempts, faults = exc.attempts, exc.faults
            settled = exc.fatal or (deadline is not None and time.monotonic() >= deadline)
            if not settled:  # a quick failure: the next asker asks again
                with self._lock:
                    if self._entries.get(url) is future:
                        del self._entries[url]
            future.set_exception(exc)
            raise
        except BaseException:  # cancelled (or broken) before an answer: not an answer to keep
            with self._lock:
                if self._entries.get(url) is future:
                    del self._entries[url]
            future.set_exception(_Cancelled())
            raise
        finally:
            if attempts or faults:
                with self._lock:
                    self.made.append((url, attempts, dict(faults)))
                if self.on_lookup is not None:
                    self.on_lookup(url, attempts, dict(faults))
        future.set_result(listing)
        return listing


async def _wait(future: concurrent.futures.Future, deadline: float | None, url: str) -> dict:
    wrapped = asyncio.shield(asyncio.wrap_future(future))
    if deadline is None:
        return await wrapped
    try:
        return await asyncio.wait_for(wrapped, max(deadline - time.monotonic(), 0.0))
    except asyncio.TimeoutError:
        raise BackendError(f"{url}/models: no model listing before the time limit (another request is asking it)",
                           kind="timeout", url=url + "/models", attempts=0) from None


def served_ids(listing: object) -> list[str]:
    """The model names (``id``) a ``/v1/models`` answer lists, in its order."""
    try:
        return [str(e["id"]) for e in listing["data"] if isinstance(e, dict) and "id" in e]  # type: ignore[index]
    except (TypeError, KeyError):
        return []


@dataclass(frozen=True)
class Hints:
    """How the users of a caller change what a message is about (the command line's flags, a PyTracking
    parameter file's attributes): ``url`` gives another server, ``default`` says the URL was nobody's choice,
    ``serverless`` runs without a model server, ``family`` / ``model`` name the model, ``time_limit`` the
    fault policy's seconds; ``choose`` is the verb for giving one of them ("pass" a flag, "set" an attribute)."""

    url: str = "--server URL (or R1TRACK_BASE_URL)"
    default: str = "the default URL: no --server was given and R1TRACK_BASE_URL is not set"
    serverless: str = "--backend ncc (the classical baseline) or --backend oracle (ground truth; eval only)"
    family: str = "--model-family"
    model: str = "--model"
    time_limit: str = "--max-fault-seconds"
    choose: str = "pass"


def unknown_family_message(url: str, model: str | None, listing: Any, hints: Hints = Hints()) -> str:
    """Why the family of what ``url`` serves cannot be told from its ``/v1/models`` ``listing`` (for ``model``, or
    the first model listed when None), cause first, naming the families and how to choose one (``hints``)."""
    from ..models import family_names

    families = ", ".join(family_names())
    ids = served_ids(listing)
    if model is not None and model not in ids:
        return (f"the server at {url} does not list model {model!r} (it lists: {', '.join(map(repr, ids)) or 'none'}), "
                f"and r1track cannot tell the family of {model!r} from its name: {hints.choose} {hints.model} with a listed "
                f"name, or {hints.family} with one of: {families}")
    entry = next(e for e in listing["data"] if isinstance(e, dict) and e.get("id") == (model or ids[0]))
    root = entry.get("root")
    loaded = f" (loaded from {root!r})" if isinstance(root, str) and root and root != entry["id"] else ""
    return (f"the server at {url} serves {entry['id']!r}{loaded}, whose model family r1track cannot tell from its name "
            f"or files: {hints.choose} {hints.family} with one of: {families}")


_CAUSES = {
    "connection": "nothing accepts connections there",
    "timeout": "a connection was accepted (or is still being opened) but no reply came",
    "malformed": "what answers there does not speak HTTP",
    "too-large": "what answers there sends far more data than a model list",
    "bad-response": "its /models path does not answer with an OpenAI-compatible model list",
}

RETRYABLE_CAUSES = frozenset({"no-server", "server-error"})
"""Causes of a failed lookup that a rerun can fix once the server is up (the others need another URL, model or
setting)."""


def lookup_failure(err: BackendError) -> tuple[str, str]:
    """(cause, detail) of a failed lookup, in words. Causes: ``no-server`` (nothing answered: refused, reset,
    silent until the timeout or the time limit), ``server-error`` (HTTP 5xx, 408 or 429 to every attempt),
    ``not-http`` (what answers does not speak HTTP), ``not-openai`` (HTTP 404 or 405, or a body that is not a
    model list: not an OpenAI-compatible API at that URL), ``refused`` (another definite HTTP 4xx), ``no-models``
    (an empty list), ``refused`` also for a :class:`~r1track.backends.ServerRefused` (HTTP 401, 403 or a 3xx to
    every attempt: the key or the URL is wrong). The detail says what was seen."""
    kind, text = err.kind, str(err)
    if isinstance(err, ServerRefused):
        return "refused", text.split(": ", 1)[-1]
    if err.fatal:
        if "lists no model" in text:
            return "no-models", "its model list is empty"
        for code, what in (("404", "no such path"), ("405", "method not allowed")):
            if f"HTTP {code}" in text:
                return "not-openai", f"its /models path answers HTTP {code} ({what})"
        return "refused", text.split(": ", 1)[-1]
    if kind == "bad-response":
        return "not-openai", _CAUSES[kind]
    if kind in ("malformed", "too-large"):
        return "not-http", _CAUSES[kind]
    if kind.startswith("http-"):
        return "server-error", f"it answered {kind.replace('http-', 'HTTP ')} to every attempt"
    detail = _CAUSES.get(kind, kind)
    if "time limit was reached" in text:
        detail += " before the time limit"
    return "no-server", detail


def _origin(source: str, hints: Hints) -> str:
    if source == "default":
        return f" ({hints.default})"
    return f" (from {source})" if source and source != "given" else ""


def explain_lookup_failure(err: BackendError, *, url: str, source: str = "given", hints: Hints = Hints(),
                           seconds: float | None = None) -> str:
    """The message for a model lookup that failed, cause first (see :func:`lookup_failure`): no server answers at
    ``url`` (saying when it is the default and how to give another or to run without a server), the server fails,
    what answers is not HTTP or not an OpenAI-compatible API, it refused, or it lists no model; then what was
    seen. ``source``: where the URL came from (:data:`r1track.backends.openai.URL_SOURCES`); ``seconds``: how long
    it was tried."""
    cause, detail = lookup_failure(err)
    origin = _origin(source, hints)
    took = f" (tried {err.attempts} time(s) in {seconds:.1f} s)" if seconds is not None and err.attempts else ""
    if cause == "no-server":
        limit = f"; the wait is bounded by {hints.time_limit}" if "time limit" in detail else ""
        return (f"no server answers at {url}{origin}: {detail}{took}{limit}. Start the server, give its URL with "
                f"{hints.url}, or run without a model server: {hints.serverless}")
    if cause == "server-error":
        return (f"the server at {url}{origin} fails: {detail}{took}; see the server's log, and run again once it "
                "answers")
    if cause == "not-http":
        return (f"{url}{origin} is not a model server: {detail}{took}. Is it the right port? Give the server's URL "
                f"with {hints.url}")
    if cause == "not-openai":
        return (f"{url}{origin} is not an OpenAI-compatible API: {detail}. Give the server's OpenAI base URL (it "
                f"ends in /v1, e.g. http://127.0.0.1:8000/v1) with {hints.url}")
    if cause == "no-models":
        return f"the server at {url}{origin} answers but lists no model; give the served model's name with {hints.model}"
    return f"the server at {url}{origin} refused the model listing: {detail}"


class LookupFailed(Exception):
    """A model lookup the run needed before it could start failed. ``error``: the lookup's
    :class:`BackendError` (its attempts and faults); ``url``, ``source``: the server and where its URL came from;
    ``cause``: :func:`lookup_failure`'s (``no-server`` means a rerun can succeed once the server answers); the
    message is :func:`explain_lookup_failure`'s."""

    def __init__(self, error: BackendError, *, url: str, source: str = "given", hints: Hints = Hints(),
                 seconds: float | None = None) -> None:
        super().__init__(explain_lookup_failure(error, url=url, source=source, hints=hints, seconds=seconds))
        self.error = error
        self.url = url
        self.source = source
        self.cause = lookup_failure(error)[0]

    @property
    def retryable(self) -> bool:
        """Whether a rerun can succeed once the server answers (else another URL, model or setting is needed)."""
        return self.cause in RETRYABLE_CAUSES

    @property
    def exit_status(self) -> ExitStatus:
        """The command line's status: :attr:`~ExitStatus.RUN_FAILED` (1) when a rerun can succeed once the server
        answers, :attr:`~ExitStatus.SERVER_REFUSED` (3) when the server refused on every attempt (HTTP 401, 403,
        3xx: :class:`~r1track.backends.ServerRefused`, the key or the URL is wrong), else
        :attr:`~ExitStatus.USAGE` (2: another URL, model or setting is needed)."""
        if isinstance(self.error, ServerRefused):
            return ExitStatus.SERVER_REFUSED
        return ExitStatus.RUN_FAILED if self.retryable else ExitStatus.USAGE
