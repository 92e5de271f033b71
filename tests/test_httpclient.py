"""r1track.httpclient against raw servers that answer in each way HTTP/1.1 allows (and many it doesn't)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from faultproxy import LoopbackServer, iter_messages
from upstream.vllm_server import free_port

from r1track.httpclient import (
    AsyncHTTPClient,
    BackgroundLoop,
    ConnectFailed,
    ConnectionDropped,
    MalformedResponse,
    RequestTimeout,
    ResponseTooLarge,
    TransportError,
)


class RawServer(LoopbackServer):
    """A server whose ``handler(request_bytes) -> (reply_bytes, close)`` answers each request."""

    def __init__(self, handler, delay_s: float = 0.0):
        self.handler = handler
        self.delay_s = delay_s
        self.requests = 0
        self.max_open = 0
        self._open = 0
        super().__init__()
        self.url = self.base_url

    def handle(self, conn):
        self._open += 1
        self.max_open = max(self.max_open, self._open)
        try:
            for head, body in iter_messages(conn):
                self.requests += 1
                time.sleep(self.delay_s)
                reply, close = self.handler(head + b"\r\n\r\n" + body)
                if reply:
                    conn.sendall(reply)
                if close:
                    return
        finally:
            self._open -= 1
            conn.close()

    def stop(self):
        self.close()


def ok(body=b'{"ok": true}', extra=b""):
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body


@pytest.fixture
def server_factory():
    made = []

    def make(handler, **kw):
        s = RawServer(handler, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


def test_keep_alive_reuses_one_connection_async_and_from_the_background_loop(server_factory):
    srv = server_factory(lambda req: (ok(), False))

    async def run():
        a = AsyncHTTPClient(srv.url)
        out = [await a.request("POST", "/v1/x", b"{}") for _ in range(5)]
        await a.aclose()
        return out

    assert all(r.status == 200 and r.json() == {"ok": True} for r in asyncio.run(run()))
    bg = BackgroundLoop()
    assert all(r.json() == {"ok": True} for r in bg.run(run()))  # the sync face: the same coroutine, another loop
    bg.stop()
    assert srv.connections == 2 and srv.requests == 10


def test_chunked_and_close_delimited_bodies(server_factory):
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
    srv = server_factory(lambda req: (chunked, False))
    assert asyncio.run(AsyncHTTPClient(srv.url).request("GET", "/")).body == b"hello world"
    srv2 = server_factory(lambda req: (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", True))

    async def two():
        a = AsyncHTTPClient(srv2.url)
        return [(await a.request("GET", "/")).body for _ in range(2)]

    assert asyncio.run(two()) == [b"until the end"] * 2
    assert srv2.connections == 2  # read to close, then a new connection


def test_request_is_well_formed(server_factory):
    seen = []
    srv = server_factory(lambda req: (seen.append(req) or ok(), False))
    asyncio.run(AsyncHTTPClient(srv.url, headers={"Authorization": "Bearer k"}).request("POST", "/v1/chat/completions", b'{"a":1}'))
    head, _, body = seen[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/chat/completions HTTP/1.1"
    assert b"Authorization: Bearer k" in lines and b"Content-Length: 7" in lines
    assert any(line.startswith(b"Host: 127.0.0.1:") for line in lines)
    assert body == b'{"a":1}'


def _raises(url, exc_type, kind, **kw):
    with pytest.raises(exc_type) as info:
        asyncio.run(AsyncHTTPClient(url, **kw).request("GET", "/"))
    assert info.value.kind == kind and isinstance(info.value, TransportError)
    return info.value


def test_every_broken_answer_is_a_transport_error_with_its_kind(server_factory):
    _raises(server_factory(lambda req: (b"", True)).url, ConnectionDropped, "connection")
    _raises(server_factory(lambda req: (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", True)).url,
            ConnectionDropped, "connection")
    _raises(server_factory(lambda req: (b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n{}", True)).url,
            MalformedResponse, "malformed")
    long_header = b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 9000 + b"\r\nContent-Length: 2\r\n\r\n{}"
    _raises(server_factory(lambda req: (long_header, True)).url, MalformedResponse, "malformed")
    _raises(server_factory(lambda req: (b"garbage, not http\r\n\r\n", True)).url, MalformedResponse, "malformed")
    _raises(server_factory(lambda req: (ok(), False), delay_s=0.5).url, RequestTimeout, "timeout", read_timeout_s=0.1)
    _raises(f"http://127.0.0.1:{free_port()}", ConnectFailed, "connection")  # nothing listens there


def test_reply_bodies_are_capped(server_factory):
    big = b"x" * 5000
    declared = server_factory(lambda req: (ok(big), False))
    err = _raises(declared.url, ResponseTooLarge, "too-large", max_body_bytes=4096)
    assert "5000" in str(err)
    undeclared = server_factory(lambda req: (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + big, True))
    _raises(undeclared.url, ResponseTooLarge, "too-large", max_body_bytes=4096)
    assert asyncio.run(AsyncHTTPClient(declared.url, max_body_bytes=5000).request("GET", "/")).body == big


def test_a_server_that_stops_reading_cannot_hang_a_request():
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)  # accepts (backlog) and never reads: the send buffers fill up
    url = f"http://127.0.0.1:{lst.getsockname()[1]}"
    try:
        with pytest.raises(RequestTimeout):
            asyncio.run(AsyncHTTPClient(url, read_timeout_s=0.5).request("POST", "/", b"x" * (64 << 20)))
    finally:
        lst.close()


def test_a_dropped_keep_alive_connection_is_never_resent(server_factory):
    # first request answered and kept alive, the second one read and then dropped without an answer: a client
    # may not quietly send it again on a new connection (aiohttp does for a GET); each attempt is the caller's
    answers = iter([(ok(), False), (b"", True), (ok(), False)])
    srv = server_factory(lambda req: next(answers))

    async def run():
        a = AsyncHTTPClient(srv.url)
        await a.request("GET", "/")
        with pytest.raises(ConnectionDropped):
            await a.request("GET", "/")
        await a.aclose()

    asyncio.run(run())
    assert srv.requests == 2


def test_max_connections_bounds_requests_in_flight(server_factory):
    srv = server_factory(lambda req: (ok(), False), delay_s=0.05)

    async def run():
        a = AsyncHTTPClient(srv.url, max_connections=3)
        await asyncio.gather(*(a.request("GET", "/") for _ in range(12)))
        await a.aclose()

    asyncio.run(run())
    assert srv.max_open <= 3 and srv.requests == 12 and srv.connections <= 3
