"""A small keep-alive HTTP/1.1 client for talking to model servers: async (asyncio streams) and sync.

Why not a general client library: r1track keeps hundreds of requests in flight from one process, and the
common async clients spend time quadratic in the number of open connections choosing one for each request
(httpx/httpcore measured here: 640 requests/s with 8 in flight, 135 with 256; these streams: ~7,000-10,000).
This module does exactly what a chat-completions client needs and no more:

* one origin per client (``http`` or ``https``), persistent connections reused LIFO, at most
  ``max_connections`` open (further requests wait for a free one);
* ``Content-Length`` request bodies; ``Content-Length``, chunked or read-to-close response bodies;
* a connect timeout and a read timeout (for the whole response), raising :class:`RequestTimeout`;
  connection failures raise :class:`ConnectFailed`, a connection dropped mid-response raises
  :class:`ConnectionDropped`; all are :class:`TransportError`;
* a pooled connection that the server closed while idle is noticed before it is reused and replaced;
  a request is never sent twice here (retry policy belongs to the caller).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import select
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlsplit

__all__ = [
    "Response",
    "TransportError",
    "ConnectFailed",
    "RequestTimeout",
    "ConnectionDropped",
    "AsyncHTTPClient",
    "SyncHTTPClient",
]


class TransportError(Exception):
    """No HTTP response was obtained."""


class ConnectFailed(TransportError):
    """The TCP (or TLS) connection could not be opened."""


class RequestTimeout(TransportError):
    """Connecting or receiving the response took longer than its timeout."""


class ConnectionDropped(TransportError):
    """The server closed the connection before the response was complete."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


def _origin(base_url: str) -> tuple[str, str, int]:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {base_url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, parts.hostname, port


def _request_head(method: str, target: str, host: str, headers: Mapping[str, str], length: int) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:  # pragma: no cover - closing a broken transport
            pass


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
    ) -> None:
        self.scheme, self.host, self.port = _origin(base_url)
        self.host_header = self.host if self.port in (80, 443) else f"{self.host}:{self.port}"
        self.headers = dict(headers or {})
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.max_connections = max_connections
        self._idle: list[_Conn] = []
        self._slots: asyncio.Semaphore | None = None
        self._ssl = ssl.create_default_context() if self.scheme == "https" else None
        self.opened = 0  # connections opened so far (tests check reuse)

    async def _connect(self) -> _Conn:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=self._ssl, limit=1 << 20), self.connect_timeout_s
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
        self.opened += 1
        return _Conn(reader, writer)

    async def _read_response(self, conn: _Conn) -> tuple[Response, bool]:
        r = conn.reader
        status_line = await r.readline()
        if not status_line:
            raise ConnectionDropped("server closed the connection without answering")
        parts = status_line.decode("latin-1").split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ConnectionDropped(f"not an HTTP response: {status_line[:80]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        while True:
            line = await r.readline()
            if not line:
                raise ConnectionDropped("connection closed in the response headers")
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        keep = parts[0] != "HTTP/1.0" and headers.get("connection", "").lower() != "close"
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size_line = await r.readline()
                try:
                    size = int(size_line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise ConnectionDropped(f"bad chunk size {size_line[:40]!r}") from None
                if size == 0:
                    while (await r.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(await r.readexactly(size))
                await r.readexactly(2)
            body = b"".join(chunks)
        elif "content-length" in headers:
            body = await r.readexactly(int(headers["content-length"]))
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:
            body = await r.read()
            keep = False
        return Response(status, headers, body), keep

    async def request(self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None) -> Response:
        """Send one request (``path`` includes the query) and return the whole response."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_connections)
        head = _request_head(method, path, self.host_header, {**self.headers, **(headers or {})}, len(body))
        async with self._slots:
            conn = None
            while self._idle:
                cand = self._idle.pop()
                if cand.usable():  # the server may have closed it while idle (EOF already seen)
                    conn = cand
                    break
                cand.close()
            if conn is None:
                conn = await self._connect()
            keep = False
            try:
                conn.writer.write(head + body)
                await conn.writer.drain()
                resp, keep = await asyncio.wait_for(self._read_response(conn), self.read_timeout_s)
            except asyncio.TimeoutError:
                raise RequestTimeout(f"no response within {self.read_timeout_s:g} s") from None
            except ConnectionDropped:
                raise
            except (ConnectionError, asyncio.IncompleteReadError, OSError) as exc:
                raise ConnectionDropped(f"connection lost: {type(exc).__name__}: {exc or 'no detail'}") from None
            finally:
                if keep:
                    self._idle.append(conn)
                else:
                    conn.close()
            return resp

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop().close()


class SyncHTTPClient:
    """The same for synchronous callers: one persistent ``http.client`` connection per thread."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 120.0,
    ) -> None:
        self.scheme, self.host, self.port = _origin(base_url)
        self.headers = dict(headers or {})
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self.opened = 0

    def _new(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        conn = cls(self.host, self.port, timeout=self.connect_timeout_s)
        try:
            conn.connect()
        except socket.timeout:
            raise RequestTimeout(f"connect to {self.host}:{self.port} timed out after {self.connect_timeout_s:g} s") from None
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}") from None
        conn.sock.settimeout(self.read_timeout_s)
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._all.append(conn)
            self.opened += 1
        return conn

    def request(self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None) -> Response:
        all_headers = {**self.headers, **(headers or {})}
        conn = getattr(self._local, "conn", None)
        if conn is not None and (conn.sock is None or select.select([conn.sock], [], [], 0)[0]):
            conn.close()  # closed by the server while idle (readable = EOF), or by us
            conn = None
        if conn is None:
            conn = self._local.conn = self._new()
        try:
            conn.request(method, path, body=body, headers=all_headers)
            r = conn.getresponse()
            data = r.read()
        except socket.timeout:
            conn.close()
            self._local.conn = None
            raise RequestTimeout(f"no response within {self.read_timeout_s:g} s") from None
        except (http.client.HTTPException, OSError) as exc:
            conn.close()
            self._local.conn = None
            raise ConnectionDropped(f"connection lost: {type(exc).__name__}: {exc or 'no detail'}") from None
        if r.will_close:
            conn.close()
            self._local.conn = None
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)

    def close(self) -> None:
        with self._lock:
            for c in self._all:
                c.close()
            self._all.clear()
        self._local = threading.local()
