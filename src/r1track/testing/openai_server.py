"""A local OpenAI-compatible chat server that imitates vLLM, for tests and benchmarks (stdlib only).

It speaks enough HTTP/1.1 for any OpenAI client (keep-alive, ``Content-Length`` bodies) on
127.0.0.1, answers ``POST /v1/chat/completions``, ``GET /v1/models`` and ``GET /health``, and:

* replies by script: a queue of :class:`Action` (a reply text, an HTTP status, a dropped connection,
  an unreadable body, a completion whose content is null or that has no choice, each optionally delayed)
  consumed one per chat request, then a ``responder`` function of the request body (default
  :func:`echo_template_box`; a responder that returns None answers with ``content: null``);
* imitates a serving engine: ``latency_s`` per request and at most ``capacity`` requests processed
  at once (the rest queue), so throughput is capped at ``capacity / latency_s`` requests/s;
* records every chat request (body, connection, action) and counts connections, so tests can check
  image order, template bytes and connection reuse.

Use it as a context manager::

    with OpenAIServer(script=[status(500), reply("garbage")]) as server:
        backend = OpenAIBackend(server.base_url, "fake-model")

or from a shell: ``python -m r1track.testing.openai_server --port 8000 --latency 0.05 --capacity 64``
(``--reply TEXT`` answers every request with TEXT, ``--null-content`` with a null content).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

__all__ = [
    "Action",
    "reply",
    "respond",
    "status",
    "drop",
    "unreadable",
    "null_content",
    "no_choices",
    "RecordedRequest",
    "OpenAIServer",
    "echo_template_box",
]

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 408: "Request Timeout", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclass(frozen=True)
class Action:
    """What the server does with one chat request. ``kind``: ``reply`` (200 with ``text`` as the
    assistant message), ``respond`` (200 with the responder's answer), ``status`` (HTTP ``code`` with an OpenAI-style error body), ``drop`` (close
    the connection without answering), ``unreadable`` (200 with a body that is not JSON), ``null`` (200, a
    completion whose message content is null), ``no-choices`` (200, a completion with ``"choices": []``).
    ``delay_s``: wait this long first (longer than the client's timeout = a timeout)."""

    kind: str
    text: str = ""
    code: int = 200
    delay_s: float = 0.0
    retry_after: float | None = None


def reply(text: str, delay_s: float = 0.0) -> Action:
    return Action("reply", text=text, delay_s=delay_s)


def respond(delay_s: float = 0.0) -> Action:
    """Answer with the responder (after ``delay_s``): a slow but valid reply."""
    return Action("respond", delay_s=delay_s)


def status(code: int, delay_s: float = 0.0, retry_after: float | None = None) -> Action:
    return Action("status", code=code, delay_s=delay_s, retry_after=retry_after)


def drop(delay_s: float = 0.0) -> Action:
    return Action("drop", delay_s=delay_s)


def unreadable(delay_s: float = 0.0) -> Action:
    return Action("unreadable", delay_s=delay_s)


def null_content(delay_s: float = 0.0) -> Action:
    """A well-formed completion whose message ``content`` is null (vLLM sends that when a reasoning parser took
    every token): a server-side reason, never the model's answer."""
    return Action("null", delay_s=delay_s)


def no_choices(delay_s: float = 0.0) -> Action:
    """A well-formed completion with no choice at all."""
    return Action("no-choices", delay_s=delay_s)


_BOX_RE = re.compile(r"\[\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*\]")


def _text_of(body: dict) -> str:
    try:
        content = body["messages"][-1]["content"]
    except (KeyError, IndexError, TypeError):
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")


def echo_template_box(body: dict) -> str:
    """Default responder: answer the first box the prompt states (the template's box), i.e. "the
    target sits where it sat in the template" — a valid, stable answer for tracking requests.
    Grounding requests (no box in the text) get ``[{"bbox_2d": [10, 10, 60, 60], ...}]``."""
    m = _BOX_RE.search(_text_of(body))
    if m is None:
        return json.dumps([{"bbox_2d": [10, 10, 60, 60], "label": "target"}])
    return "[" + ",".join(m.groups()) + "]"


@dataclass
class RecordedRequest:
    """One chat request as the server saw it. ``body``: the decoded JSON (None when not recorded
    or not JSON). ``connection``: id of the TCP connection it came on. ``action``: what was done."""

    index: int
    connection: int
    body: dict | None
    action: Action
    received_s: float
    headers: dict[str, str] = field(default_factory=dict)
    done_s: float = 0.0

    @property
    def image_urls(self) -> list[str]:
        """The ``image_url`` URLs of the last message, in order."""
        if not self.body:
            return []
        content = self.body["messages"][-1]["content"]
        return [p["image_url"]["url"] for p in content if isinstance(p, dict) and p.get("type") == "image_url"]

    @property
    def content_types(self) -> list[str]:
        """The ``type`` of each content part of the last message, in order."""
        if not self.body:
            return []
        content = self.body["messages"][-1]["content"]
        return [p.get("type", "?") for p in content] if isinstance(content, list) else ["string"]

    @property
    def text(self) -> str:
        return _text_of(self.body or {})


class OpenAIServer:
    """See the module docstring. ``script``: actions for the first chat requests, in order (more can
    be queued with :meth:`push`); ``responder(body) -> text`` answers the rest (None: content null). ``latency_s`` /
    ``capacity``: engine imitation (None = unlimited). ``model``: the served model name; ``root``: the
    ``root`` its ``/v1/models`` entry reports (vLLM: the model path it loaded; None: no such field).
    ``record_bodies``: keep each request's JSON (False for long benchmarks). ``decode_bodies``: parse
    request JSON (False: the responder gets ``{}`` — the cheapest server, for client benchmarks)."""

    def __init__(
        self,
        *,
        script: Iterable[Action] = (),
        responder: Callable[[dict], str | None] = echo_template_box,
        latency_s: float = 0.0,
        capacity: int | None = None,
        model: str = "fake-model",
        root: str | None = None,
        record_bodies: bool = True,
        decode_bodies: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if capacity is not None and capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.responder = responder
        self.latency_s = float(latency_s)
        self.capacity = capacity
        self.model = model
        self.root = root
        self.record_bodies = record_bodies
        self.decode_bodies = decode_bodies
        self.host = host
        self.port = port
        self.requests: list[RecordedRequest] = []
        self.connections = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.action_counts: collections.Counter[str] = collections.Counter()
        self._script: collections.deque[Action] = collections.deque(script)
        self._script_lock = threading.Lock()
        self._counter = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._slots: asyncio.Semaphore | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> "OpenAIServer":
        """Start serving in a background thread; returns once the port is bound."""
        self._thread = threading.Thread(target=self._run, name="fake-openai-server", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise RuntimeError(f"fake OpenAI server failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._slots = asyncio.Semaphore(self.capacity) if self.capacity else None
            self._server = loop.run_until_complete(asyncio.start_server(self._handle, self.host, self.port, backlog=4096))
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as exc:  # pragma: no cover - bind failures
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self) -> None:
        """Close the listening socket and every open connection, then stop the thread."""
        loop = self._loop
        if loop is None or self._thread is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for w in list(self._writers):
                w.close()
            for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                task.cancel()
            loop.call_soon(loop.stop)

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> "OpenAIServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def push(self, *actions: Action) -> None:
        """Queue more scripted actions (thread-safe)."""
        with self._script_lock:
            self._script.extend(actions)

    def chat_requests(self) -> list[RecordedRequest]:
        """Recorded chat requests in arrival order."""
        return sorted(self.requests, key=lambda r: r.index)

    # ------------------------------------------------------------------ HTTP
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = self.connections
        self.connections += 1
        self._writers.add(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                parts = line.decode("latin-1").split()
                if len(parts) != 3:
                    break
                method, target, _ = parts
                headers: dict[str, str] = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                n = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(n) if n else b""
                keep = await self._dispatch(method, target.split("?")[0], body, writer, conn, headers)
                if not keep or headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError, ValueError):
            pass
        finally:
            self._writers.discard(writer)
            try:
                writer.close()
            except Exception:  # pragma: no cover
                pass

    async def _send(self, writer: asyncio.StreamWriter, code: int, payload: bytes, extra: dict[str, str] | None = None) -> None:
        head = [f"HTTP/1.1 {code} {_REASONS.get(code, 'Status')}", "Content-Type: application/json",
                f"Content-Length: {len(payload)}", "Connection: keep-alive"]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
        await writer.drain()

    async def _dispatch(
        self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter, conn: int, headers: dict[str, str]
    ) -> bool:
        if method == "GET" and path in ("/health", "/v1/health"):
            await self._send(writer, 200, b"{}")
            return True
        if method == "GET" and path == "/v1/models":
            entry = {"id": self.model, "object": "model", **({"root": self.root} if self.root is not None else {})}
            await self._send(writer, 200, json.dumps({"object": "list", "data": [entry]}).encode())
            return True
        if method != "POST" or path != "/v1/chat/completions":
            await self._send(writer, 404, json.dumps({"error": {"message": f"no route {method} {path}"}}).encode())
            return True
        return await self._chat(body, writer, conn, headers)

    async def _chat(self, raw: bytes, writer: asyncio.StreamWriter, conn: int, headers: dict[str, str]) -> bool:
        index = next(self._counter)
        body = None
        if self.decode_bodies:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        with self._script_lock:
            action = self._script.popleft() if self._script else None
        if action is None:
            action = Action("respond")
        if action.kind == "respond":
            text = self.responder(body or {})
            action = Action("reply", text=text, delay_s=action.delay_s) if text is not None else null_content(action.delay_s)
        record = RecordedRequest(index, conn, body if self.record_bodies else None, action, time.perf_counter(),
                                 headers if self.record_bodies else {})
        self.requests.append(record)
        self.action_counts[action.kind if action.kind != "status" else f"status-{action.code}"] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency_s > 0:
                if self._slots is not None:
                    async with self._slots:
                        await asyncio.sleep(self.latency_s)
                else:
                    await asyncio.sleep(self.latency_s)
            if action.delay_s > 0:
                await asyncio.sleep(action.delay_s)
            if action.kind == "drop":
                return False
            if action.kind == "unreadable":
                await self._send(writer, 200, b"<html>upstream proxy error</html>")
                return True
            if action.kind == "status":
                extra = {"Retry-After": f"{action.retry_after:g}"} if action.retry_after is not None else None
                err = {"error": {"message": f"scripted HTTP {action.code}", "type": "error", "code": action.code}}
                await self._send(writer, action.code, json.dumps(err).encode(), extra)
                return True
            content = None if action.kind == "null" else action.text
            choices = [] if action.kind == "no-choices" else [
                {"index": 0, "message": {"role": "assistant", "content": content},
                 "finish_reason": "length" if content is None else "stop"}]
            out = {
                "id": f"chatcmpl-{index}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": (body or {}).get("model", self.model),
                "choices": choices,
                "usage": {"prompt_tokens": 0, "completion_tokens": len(action.text) // 4 + 1, "total_tokens": 0},
            }
            await self._send(writer, 200, json.dumps(out).encode())
            return True
        finally:
            self.in_flight -= 1
            record.done_s = time.perf_counter()


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - manual use
    ap = argparse.ArgumentParser(
        prog="python -m r1track.testing.openai_server",
        description="Serve a fake OpenAI-compatible chat endpoint that imitates vLLM (fixed latency, batch capacity) "
        "and answers every tracking request with the template's box. For testing clients; not a model.",
    )
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds per request (default 0)")
    ap.add_argument("--capacity", type=int, default=None, help="requests processed at once (default unlimited)")
    ap.add_argument("--model", default="fake-model", help="served model name (default fake-model)")
    ap.add_argument("--reply", default=None, help="answer every request with this text and skip parsing request "
                    "bodies (cheapest server, for client benchmarks); default: echo the template box")
    ap.add_argument("--null-content", action="store_true", help="answer every request with a completion whose "
                    "message content is null (a broken server, for testing clients)")
    args = ap.parse_args(argv)
    fixed = args.reply
    if args.null_content:
        responder: Callable[[dict], str | None] = lambda body: None  # noqa: E731
    else:
        responder = (lambda body: fixed) if fixed is not None else echo_template_box
    server = OpenAIServer(
        latency_s=args.latency, capacity=args.capacity, model=args.model, record_bodies=False, port=args.port,
        responder=responder, decode_bodies=fixed is None and not args.null_content,
    )
    server.start()
    print(f"fake OpenAI server on {server.base_url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
