"""r1track.httpclient against raw servers that answer in each way HTTP/1.1 allows (and some it doesn't)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from r1track.httpclient import AsyncHTTPClient, ConnectFailed, ConnectionDropped, RequestTimeout, SyncHTTPClient


class RawServer:
    """A TCP server on 127.0.0.1 whose ``handler(request_bytes) -> (reply_bytes, close)`` answers each request."""

    def __init__(self, handler, delay_s: float = 0.0):
        self.handler = handler
        self.delay_s = delay_s
        self.connections = 0
        self.requests = 0
        self.max_open = 0
        self._open = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        self._open += 1
        self.max_open = max(self.max_open, self._open)
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, rest = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v)
                while len(rest) < length:
                    rest += conn.recv(65536)
                request, buf = head + b"\r\n\r\n" + rest[:length], rest[length:]
                self.requests += 1
                time.sleep(self.delay_s)
                reply, close = self.handler(request)
                if reply:
                    conn.sendall(reply)
                if close:
                    return
        finally:
            self._open -= 1
            conn.close()

    def stop(self):
        self.sock.close()


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


def test_keep_alive_reuses_one_connection_sync_and_async(server_factory):
    srv = server_factory(lambda req: (ok(), False))
    c = SyncHTTPClient(srv.url)
    for _ in range(5):
        assert c.request("POST", "/v1/x", b"{}").json() == {"ok": True}
    c.close()

    async def run():
        a = AsyncHTTPClient(srv.url)
        for _ in range(5):
            r = await a.request("POST", "/v1/x", b"{}")
            assert r.status == 200 and r.json() == {"ok": True}
        await a.aclose()
        return a.opened

    assert asyncio.run(run()) == 1
    assert srv.connections == 2 and srv.requests == 10


def test_chunked_close_delimited_and_connection_close(server_factory):
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
    srv = server_factory(lambda req: (chunked, False))
    assert SyncHTTPClient(srv.url).request("GET", "/").body == b"hello world"
    assert asyncio.run(AsyncHTTPClient(srv.url).request("GET", "/")).body == b"hello world"

    srv2 = server_factory(lambda req: (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", True))

    async def two():
        a = AsyncHTTPClient(srv2.url)
        bodies = [(await a.request("GET", "/")).body for _ in range(2)]
        return bodies, a.opened

    bodies, opened = asyncio.run(two())
    assert bodies == [b"until the end"] * 2 and opened == 2  # read to close, then a new connection


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


def test_faults_raise_transport_errors(server_factory):
    dropper = server_factory(lambda req: (b"", True))
    with pytest.raises(ConnectionDropped):
        SyncHTTPClient(dropper.url).request("GET", "/")
    with pytest.raises(ConnectionDropped):
        asyncio.run(AsyncHTTPClient(dropper.url).request("GET", "/"))
    truncated = server_factory(lambda req: (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", True))
    with pytest.raises(ConnectionDropped):
        asyncio.run(AsyncHTTPClient(truncated.url).request("GET", "/"))
    slow = server_factory(lambda req: (ok(), False), delay_s=0.5)
    with pytest.raises(RequestTimeout):
        SyncHTTPClient(slow.url, read_timeout_s=0.1).request("GET", "/")
    with pytest.raises(RequestTimeout):
        asyncio.run(AsyncHTTPClient(slow.url, read_timeout_s=0.1).request("GET", "/"))
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    with pytest.raises(ConnectFailed):
        SyncHTTPClient(f"http://127.0.0.1:{port}").request("GET", "/")
    with pytest.raises(ConnectFailed):
        asyncio.run(AsyncHTTPClient(f"http://127.0.0.1:{port}").request("GET", "/"))


def test_connection_closed_while_idle_is_replaced_without_resending(server_factory):
    # the server answers, then closes the kept-alive connection (as uvicorn does after its keep-alive timeout)
    srv = server_factory(lambda req: (ok(), True))

    async def run():
        a = AsyncHTTPClient(srv.url)
        await a.request("GET", "/")
        await asyncio.sleep(0.1)  # the FIN arrives while the connection is idle in the pool
        await a.request("GET", "/")
        return a.opened

    assert asyncio.run(run()) == 2
    c = SyncHTTPClient(srv.url)
    c.request("GET", "/")
    time.sleep(0.1)
    c.request("GET", "/")
    assert c.opened == 2
    assert srv.requests == 4  # nothing was sent twice


def test_max_connections_bounds_requests_in_flight(server_factory):
    srv = server_factory(lambda req: (ok(), False), delay_s=0.05)

    async def run():
        a = AsyncHTTPClient(srv.url, max_connections=3)
        await asyncio.gather(*(a.request("GET", "/") for _ in range(12)))
        await a.aclose()
        return a.opened

    assert asyncio.run(run()) == 3
    assert srv.max_open <= 3 and srv.requests == 12
