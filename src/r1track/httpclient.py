"""HTTP transport to model servers: a small keep-alive HTTP/1.1 client on asyncio streams, and a private
event loop for sync callers.

Why not a general client library: r1track keeps hundreds of requests in flight from one process, and a
frame's client-side cost is part of what limits a run. aiohttp was measured here as the replacement (the
issue that hardened this module asked for it unless it cost more than 10 % of ``r1track eval``'s speed):
against a local server at 256 in flight it spent 170-200 us of CPU per request where this client spends
70-80 us, and ``benchmarks/eval_throughput.py`` (256 in flight, the same r1track otherwise) ran 11 %, 42 % and
17 % slower with it in three A/B pairs on the busy 2-core development machine (212 vs 189, 219 vs 126 and
202 vs 168 frames/s, aiohttp 3.14). httpx/httpcore measured 640
requests/s with 8 in flight and 135 with 256 (connection selection grows with the pool). So this module
does exactly what a chat-completions client needs, with the contract the backends rely on:

* one origin per client (``http`` or ``https``), persistent connections reused LIFO, at most
  ``max_connections`` open (further requests wait for a free one, and that wait is not charged to their
  timeout); a pooled connection the server closed while idle is noticed before reuse and replaced;
* **one deadline per request**: writing the request (``drain``, so a server that stops reading cannot
  hang it) and reading the whole response sit under ``read_timeout_s`` together; connecting is bounded by
  ``connect_timeout_s``. Raises :class:`RequestTimeout`;
* **capped bodies**: a body over ``max_body_bytes`` (default 1 MiB; a chat completion is a few hundred
  bytes) is a :class:`ResponseTooLarge` fault, noticed from ``Content-Length`` or while reading
  (chunked, read-to-close), never buffered beyond the cap;
* **strict framing**: a status line that is not ``HTTP/1.x NNN``, a header line without a colon or over
  8190 bytes, more than 100 header lines, a ``Content-Length`` that is not ASCII digits (``str.isdigit``
  alone would take ``²`` or ``٣``), two different ``Content-Length`` values, a chunk size that is not 1-16
  ASCII hex digits (no sign, ``0x`` or ``_``, which ``int(s, 16)`` would take), chunk data not followed by
  CRLF, a ``101`` upgrade: :class:`MalformedResponse`. Interim ``1xx`` answers are skipped. Any other
  ``ValueError`` while reading a response (a parsing case not foreseen here) is a :class:`MalformedResponse`
  too, never an escape;
* **a response is read completely or its connection is discarded**, and **a connection with bytes left
  after a response is never reused**: the server sent something no request asked for (a duplicated or
  unsolicited response). On a connection's first exchange the response read is the server's answer to
  this request (nothing else was asked on it): it is returned with ``stray_bytes`` set and the connection
  is closed. On a reused connection the response read may itself be a late answer to the previous
  request, so it is not trusted: :class:`StrayResponse` (kind ``extra-bytes``; retryable). A pooled
  connection is checked before reuse: bytes already read from it count as stray bytes of the request that
  found them (``stray_bytes``), and one the kernel reports readable (data not read yet, or the server's
  close) is dropped; either way another connection is used. What remains is the protocol's own limit:
  HTTP/1.1 responses carry no request id, so a duplicate that arrives only after the next request was sent
  on the connection cannot be told from the answer (see ``docs/tracking_and_serving.md``);
* **every failure is a** :class:`TransportError` **with a** ``kind`` for counting: ``connection``
  (refused, reset, closed mid-response: :class:`ConnectFailed`, :class:`ConnectionDropped`),
  ``timeout``, ``malformed``, ``too-large``, ``extra-bytes``. All are retryable by the caller; nothing else
  escapes (no ``ValueError`` from a broken server). A request is never sent twice here (retries are the
  caller's).

Cost: the checks are a few string tests per response and one zero-timeout ``select`` per reused
connection; nothing loops over the body's bytes in Python.

:class:`BackgroundLoop` runs coroutines on a private event loop in a daemon thread: the sync face of the
same transport (``OpenAIBackend.complete`` runs its async path there), so sync and async callers share
one client and one retry loop. It is created on first use and recreated after a ``fork`` (PyTracking's
worker processes).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any, Awaitable, Mapping, TypeVar
from urllib.parse import urlsplit

__all__ = [
    "Response",
    "TransportError",
    "ConnectFailed",
    "RequestTimeout",
    "ConnectionDropped",
    "MalformedResponse",
    "ResponseTooLarge",
    "StrayResponse",
    "AsyncHTTPClient",
    "BackgroundLoop",
    "DEFAULT_MAX_BODY_BYTES",
]

DEFAULT_MAX_BODY_BYTES = 1 << 20
"""Largest response body accepted (1 MiB)."""

T = TypeVar("T")
_deadline = getattr(asyncio, "timeout", None)


class TransportError(Exception):
    """No usable HTTP response was obtained. ``kind`` names the fault class for counting."""

    kind = "connection"


class ConnectFailed(TransportError):
    """The TCP (or TLS) connection could not be opened."""


class RequestTimeout(TransportError):
    """Connecting, sending or receiving the response took longer than its timeout."""

    kind = "timeout"


class ConnectionDropped(TransportError):
    """The server closed or reset the connection before the response was complete."""


class MalformedResponse(TransportError):
    """The server's bytes are not a valid HTTP/1.1 response."""

    kind = "malformed"


class ResponseTooLarge(TransportError):
    """The response body exceeds the client's ``max_body_bytes``."""

    kind = "too-large"


class StrayResponse(TransportError):
    """Bytes followed a response on a reused connection: the response read may be a late answer to an
    earlier request, so it is not used (the connection is discarded)."""

    kind = "extra-bytes"


@dataclass
class Response:
    """A complete HTTP response. ``headers``: lower-case names. ``stray_bytes``: bytes the server sent that
    no request asked for, found on this request's connection (after this response on a fresh connection,
    or waiting on a pooled one before its reuse); the connection was discarded. 0 normally."""

    status: int
    headers: dict[str, str]
    body: bytes
    stray_bytes: int = 0

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


def _origin(base_url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL; ValueError otherwise."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {base_url!r}")
    return parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


_MAX_LINE = 8190  # longest status or header line accepted (as common servers and clients limit them)
_MAX_HEADERS = 100
_MAX_INTERIM = 8  # interim 1xx answers skipped before the final one
_MAX_LENGTH_DIGITS = 15  # a Content-Length of more digits is beyond any cap (and int() of 4300+ digits raises)
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


def _buffered(reader: asyncio.StreamReader) -> int:
    """Bytes the stream has read from the socket and not handed out yet. ``StreamReader`` has no public
    way to ask; its ``_buffer`` (a bytearray in every CPython since 3.4) holds them."""
    buf = getattr(reader, "_buffer", None)
    return len(buf) if buf is not None else 0


def _readable(fd: int) -> bool:
    """Whether the kernel holds data (or an EOF) for ``fd`` right now; ``poll``, unlike ``select``, takes any
    descriptor number (a run with hundreds of connections goes past 1024). A closed descriptor reads as
    readable (the connection is then dropped)."""
    try:
        if _poll is not None:
            p = _poll()
            p.register(fd, select.POLLIN)
            return bool(p.poll(0))
        return bool(select.select([fd], [], [], 0)[0])
    except (OSError, ValueError):
        return True


_poll = getattr(select, "poll", None)


def _ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _request_head(method: str, target: str, host: str, headers: Mapping[str, str], length: int) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Conn:
    __slots__ = ("reader", "writer", "fd", "exchanges")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        sock = writer.get_extra_info("socket")
        self.fd = sock.fileno() if sock is not None else -1
        self.exchanges = 0  # responses read on this connection

    def usable(self) -> bool:
        """Open, no EOF seen, nothing buffered and nothing waiting in the kernel (the server has sent data
        or closed it while it was idle: never reuse it)."""
        if self.writer.is_closing() or self.reader.at_eof() or _buffered(self.reader):
            return False
        return self.fd < 0 or not _readable(self.fd)

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:  # pragma: no cover - closing a broken transport
            pass


async def _line(reader: asyncio.StreamReader, what: str) -> bytes:
    """One CRLF-terminated line of at most _MAX_LINE bytes; b"" at EOF."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ConnectionDropped(f"connection closed in the {what}") from None
        return b""
    except asyncio.LimitOverrunError:
        raise MalformedResponse(f"{what} line longer than {_MAX_LINE} bytes") from None
    if len(line) > _MAX_LINE + 2:
        raise MalformedResponse(f"{what} line longer than {_MAX_LINE} bytes")
    return line


class AsyncHTTPClient:
    """Keep-alive client for one origin (see the module docstring). Belongs to the event loop it is
    first used in. ``headers`` are sent with every request."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 120.0,
        max_connections: int = 1024,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        if connect_timeout_s <= 0 or read_timeout_s <= 0 or max_connections < 1 or max_body_bytes < 1:
            raise ValueError("timeouts, max_connections and max_body_bytes must be positive")
        self.scheme, self.host, self.port = _origin(base_url)
        self.host_header = self.host if self.port in (80, 443) else f"{self.host}:{self.port}"
        self.headers = dict(headers or {})
        self.connect_timeout_s = float(connect_timeout_s)
        self.read_timeout_s = float(read_timeout_s)
        self.max_connections = int(max_connections)
        self.max_body_bytes = int(max_body_bytes)
        self._idle: list[_Conn] = []
        self._slots: asyncio.Semaphore | None = None
        self._ssl = ssl.create_default_context() if self.scheme == "https" else None

    async def _connect(self) -> _Conn:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=self._ssl, limit=_MAX_LINE + 2), self.connect_timeout_s
            )
        except asyncio.TimeoutError:
            raise RequestTimeout(f"connect to {self.host}:{self.port} timed out after {self.connect_timeout_s:g} s") from None
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}") from None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # pragma: no cover
                pass
        return _Conn(reader, writer)

    async def _capped(self, r: asyncio.StreamReader, n: int, total: int) -> bytes:
        """``n`` more body bytes, of ``total`` so far; :class:`ResponseTooLarge` beyond the cap."""
        if total > self.max_body_bytes:
            raise ResponseTooLarge(f"response body of {total} bytes or more exceeds the {self.max_body_bytes}-byte limit")
        return await r.readexactly(n)

    async def _read_response(self, conn: _Conn) -> tuple[Response, bool]:
        r = conn.reader
        for _ in range(_MAX_INTERIM + 1):
            status_line = await _line(r, "status")
            if not status_line:
                raise ConnectionDropped("server closed the connection without answering")
            parts = status_line.decode("latin-1").split(None, 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or len(parts[1]) != 3 or not _ascii_digits(parts[1]):
                raise MalformedResponse(f"not an HTTP/1.1 status line: {status_line[:80]!r}")
            status = int(parts[1])
            headers = await self._headers(r)
            if not 100 <= status < 200:
                break
            if status == 101:
                raise MalformedResponse("the server switched protocols (101) on a request that asked for none")
        else:
            raise MalformedResponse(f"more than {_MAX_INTERIM} interim (1xx) answers")
        keep = parts[0] != "HTTP/1.0" and headers.get("connection", "").lower() != "close"
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked(r)
        elif "content-length" in headers:
            value = headers["content-length"]
            if not _ascii_digits(value):
                raise MalformedResponse(f"bad Content-Length {value[:40]!r}")
            if len(value.lstrip("0")) > _MAX_LENGTH_DIGITS:
                raise ResponseTooLarge(f"response body of {value[:40]} bytes exceeds the {self.max_body_bytes}-byte limit")
            body = await self._capped(r, int(value), int(value))
        elif status in (204, 304):
            body = b""
        else:
            body = await r.read(self.max_body_bytes + 1)
            while len(body) <= self.max_body_bytes:
                more = await r.read(self.max_body_bytes + 1 - len(body))
                if not more:
                    break
                body += more
            if len(body) > self.max_body_bytes:
                raise ResponseTooLarge(f"response body exceeds the {self.max_body_bytes}-byte limit")
            keep = False
        return Response(status, headers, body), keep

    async def _headers(self, r: asyncio.StreamReader) -> dict[str, str]:
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADERS + 1):
            line = await _line(r, "header")
            if not line:
                raise ConnectionDropped("connection closed in the response headers")
            if line in (b"\r\n", b"\n"):
                return headers
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon or not name.strip():
                raise MalformedResponse(f"bad header line {line[:80]!r}")
            key, value = name.strip().lower(), value.strip()
            if key == "content-length" and headers.get(key, value) != value:
                raise MalformedResponse(f"two different Content-Length values ({headers[key][:20]!r}, {value[:20]!r})")
            headers[key] = value
        raise MalformedResponse(f"more than {_MAX_HEADERS} header lines")

    async def _chunked(self, r: asyncio.StreamReader) -> bytes:
        chunks, size = [], 0
        while True:
            size_line = await _line(r, "chunk size")
            digits = size_line.split(b";", 1)[0].strip()
            if _CHUNK_SIZE.fullmatch(digits) is None:
                raise MalformedResponse(f"bad chunk size {size_line[:40]!r}")
            n = int(digits, 16)
            if n == 0:
                while (await _line(r, "trailer")) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            size += n
            chunks.append(await self._capped(r, n, size))
            if await r.readexactly(2) != b"\r\n":
                raise MalformedResponse(f"chunk of {n} bytes not followed by CRLF")

    async def _exchange(self, conn: _Conn, data: bytes) -> tuple[Response, bool]:
        conn.writer.write(data)
        await conn.writer.drain()
        resp, keep = await self._read_response(conn)
        conn.exchanges += 1
        stray = _buffered(conn.reader)
        if stray:  # bytes no request asked for: this connection is never used again
            if conn.exchanges > 1:  # what was read may be a late answer to the previous request
                raise StrayResponse(f"{stray} byte(s) followed the response on a reused connection (a duplicated or "
                                    "unsolicited response); it was not used")
            resp.stray_bytes = stray
            keep = False
        return resp, keep

    async def request(self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None) -> Response:
        """Send one request (``path`` includes the query) and return the whole response; raises a
        :class:`TransportError` when none could be had."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_connections)
        head = _request_head(method, path, self.host_header, {**self.headers, **(headers or {})}, len(body))
        async with self._slots:
            conn = None
            stray = 0
            while self._idle:
                cand = self._idle.pop()
                if cand.usable():  # the server may have closed it, or sent something, while it was idle
                    conn = cand
                    break
                stray += _buffered(cand.reader)
                cand.close()
            if conn is None:
                conn = await self._connect()
            keep = False
            try:
                if _deadline is not None:  # Python >= 3.11: no extra task per request
                    async with _deadline(self.read_timeout_s):
                        resp, keep = await self._exchange(conn, head + body)
                else:
                    resp, keep = await asyncio.wait_for(self._exchange(conn, head + body), self.read_timeout_s)
            except asyncio.TimeoutError:
                raise RequestTimeout(f"no complete response within {self.read_timeout_s:g} s") from None
            except TransportError:
                raise
            except (ConnectionError, asyncio.IncompleteReadError, OSError) as exc:
                raise ConnectionDropped(f"connection lost: {type(exc).__name__}: {exc or 'no detail'}") from None
            except ValueError as exc:  # a parsing case the checks above did not foresee: still the server's fault
                raise MalformedResponse(f"unreadable response: {type(exc).__name__}: {exc}") from None
            finally:
                if keep:
                    self._idle.append(conn)
                else:
                    conn.close()
            resp.stray_bytes += stray
            return resp

    async def aclose(self) -> None:
        """Close every idle connection (idempotent)."""
        while self._idle:
            self._idle.pop().close()


class BackgroundLoop:
    """An event loop in a daemon thread for sync callers (see the module docstring)."""

    def __init__(self, name: str = "r1track-io") -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The running private loop (None before first use)."""
        return self._loop if self._pid == os.getpid() else None

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=self.name, daemon=True)
                thread.start()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
            return self._loop

    def run(self, coro: Awaitable[T]) -> T:
        """Run ``coro`` on the private loop and return its result (blocking). Interrupting the
        caller (Ctrl-C) cancels the coroutine."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("BackgroundLoop.run called from its own loop thread")
        future = asyncio.run_coroutine_threadsafe(coro, self._ensure())  # type: ignore[arg-type]
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def stop(self) -> None:
        """Stop the loop thread (idempotent); coroutines still running are abandoned."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and self._pid == os.getpid():
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None and thread is not threading.current_thread():
                thread.join(5)
                if not loop.is_running():
                    loop.close()
