"""HTTP transport to model servers, on aiohttp: one async client, and a private event loop for sync callers.

:class:`AsyncHTTPClient` wraps one ``aiohttp.ClientSession`` for one origin (``http`` or ``https``):
keep-alive connections pooled by aiohttp's ``TCPConnector`` (made for hundreds of connections; vLLM's
own benchmark client uses it), at most ``max_connections`` open (further requests wait for a free one,
and that wait is not charged to their timeout). Its contract, which the backends rely on:

* **One deadline per request.** Sending the request and reading the whole response sit under
  ``read_timeout_s`` together (a server that stops reading, or trickles bytes, cannot hang a request);
  opening the TCP connection is bounded by ``connect_timeout_s`` as well. Raises :class:`RequestTimeout`.
* **Capped bodies.** A response body larger than ``max_body_bytes`` (default 1 MiB; a chat completion is
  a few hundred bytes) is a :class:`ResponseTooLarge` fault, noticed from ``Content-Length`` or while
  reading, never buffered beyond the cap.
* **Every failure is a** :class:`TransportError` **with a** ``kind``: ``connection`` (refused, reset,
  closed mid-response: :class:`ConnectFailed`, :class:`ConnectionDropped`), ``timeout``, ``malformed``
  (a response that is not valid HTTP/1.1: bad status line, ``Content-Length: abc``, a header line over
  8190 bytes: :class:`MalformedResponse`) and ``too-large``. All are retryable by the caller; nothing
  else escapes (no ``ValueError`` from a broken server).
* **A request is sent at most once.** aiohttp (3.14, ``client.py``) silently resends an idempotent
  request (``GET``) once when a reused keep-alive connection turns out closed; that resend is switched
  off (``ClientSession._retry_connection``) so every attempt is the caller's, and counted.

:class:`BackgroundLoop` runs coroutines on a private event loop in a daemon thread: the sync face of
the same transport (``OpenAIBackend.complete`` runs its async path there), so sync and async callers
share one client implementation and one retry loop. It is created on first use and recreated after a
``fork`` (PyTracking's worker processes).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from dataclasses import dataclass
from typing import Any, Awaitable, Mapping, TypeVar
from urllib.parse import urlsplit

import aiohttp
import yarl

__all__ = [
    "Response",
    "TransportError",
    "ConnectFailed",
    "RequestTimeout",
    "ConnectionDropped",
    "MalformedResponse",
    "ResponseTooLarge",
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


@dataclass
class Response:
    """A complete HTTP response. ``headers``: lower-case names."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


def _origin(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {base_url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port}"


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
        self.origin = _origin(base_url)
        self.headers = dict(headers or {})
        self.connect_timeout_s = float(connect_timeout_s)
        self.read_timeout_s = float(read_timeout_s)
        self.max_connections = int(max_connections)
        self.max_body_bytes = int(max_body_bytes)
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None
        self._urls: dict[str, yarl.URL] = {}

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0, ttl_dns_cache=300)
        session = aiohttp.ClientSession(
            connector=connector,
            headers=self.headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout_s),
            auto_decompress=True,
            raise_for_status=False,
        )
        if hasattr(session, "_retry_connection"):
            session._retry_connection = False  # every attempt is the caller's (see the module docstring)
        self._slots = asyncio.Semaphore(self.max_connections)
        return session

    async def request(self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None) -> Response:
        """Send one request (``path`` includes the query) and return the whole response; raises a
        :class:`TransportError` when none could be had."""
        if self._session is None or self._session.closed:
            self._session = self._open()
        assert self._slots is not None
        async with self._slots:
            try:
                if _deadline is not None:  # Python >= 3.11: no extra task per request
                    async with _deadline(self.read_timeout_s):
                        return await self._exchange(method, path, body, headers)
                return await asyncio.wait_for(self._exchange(method, path, body, headers), self.read_timeout_s)
            except TransportError:
                raise
            except (asyncio.TimeoutError, aiohttp.ServerTimeoutError):
                raise RequestTimeout(f"no complete response within {self.read_timeout_s:g} s") from None
            except aiohttp.ClientConnectorError as exc:
                raise ConnectFailed(f"cannot connect to {self.origin}: {exc.os_error.strerror or exc.os_error}") from None
            except aiohttp.ClientResponseError as exc:  # the parser rejected the status line or headers
                raise MalformedResponse(f"malformed HTTP response: {exc.message}") from None
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                raise ConnectionDropped(f"connection lost: {type(exc).__name__}: {exc or 'no detail'}") from None

    async def _exchange(self, method: str, path: str, body: bytes, headers: Mapping[str, str] | None) -> Response:
        assert self._session is not None
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = yarl.URL(self.origin + path)
        async with self._session.request(method, url, data=body or None, headers=headers) as resp:
            cap = self.max_body_bytes
            if resp.content_length is not None:
                if resp.content_length > cap:
                    resp.close()
                    raise ResponseTooLarge(f"response body of {resp.content_length} bytes exceeds the {cap}-byte limit")
                return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.read())
            chunks, size = [], 0
            async for chunk in resp.content.iter_any():
                size += len(chunk)
                if size > cap:
                    resp.close()
                    raise ResponseTooLarge(f"response body exceeds the {cap}-byte limit")
                chunks.append(chunk)
            return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()}, b"".join(chunks))

    async def aclose(self) -> None:
        """Close every connection (idempotent)."""
        if self._session is not None:
            await self._session.close()
            self._session = None


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
