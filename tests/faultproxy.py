"""A fault-injecting HTTP proxy of the tests' own, in front of the fake OpenAI server.

It reads each HTTP/1.1 request from the client, then either forwards it to the upstream server and relays
the answer, or injects one fault (chosen by ``script``, else at random with probability ``rate``):

==============  ====================================================  ==========================
fault           what the client gets                                  counted by r1track as
==============  ====================================================  ==========================
reset           the connection reset (RST) after the request          ``connection``
hang            nothing for ``hang_s`` (past the client's timeout)     ``timeout``
http-500/502    an error status                                       ``http-500`` / ``http-502``
http-429        429 with ``Retry-After: 0``                           ``http-429``
truncated       the upstream's answer cut in the middle of its body   ``connection``
malformed       ``Content-Length: abc``                               ``malformed``
long-header     a 9000-byte header line                               ``malformed``
oversized       a 2 MiB body                                          ``too-large``
echo-auth       a 500 whose body echoes the request headers           ``http-500``
bad-status      status line ``HTTP/1.1 ²²² OK`` (byte 0xB2: latin-1 ²)  ``malformed``
bad-length      ``Content-Length: ²`` (byte 0xB2)                     ``malformed``
bad-chunk       a chunked body whose first chunk size is ``-1``        ``malformed``
duplicate       the upstream's answer, sent twice in one write        ``extra-bytes``
null-content    200, a completion whose message content is null       fallback ``no-content``
no-choices      200, a completion with ``"choices": []``              fallback ``no-content``
==============  ====================================================  ==========================

Faults in :data:`COUNTED_AS` are transport faults (retried; counted by kind, :func:`expected_kinds`); those in
:data:`FALLBACK_OF` are answers without text, which r1track does not retry and counts as fallback frames
(:func:`expected_fallbacks`); they are injected into chat requests only (:data:`CHAT_ONLY`). ``injected``
counts the faults by name; ``injected_bodies`` keeps, per fault, the bodies of the requests it hit.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections import Counter

COUNTED_AS = {
    "reset": "connection", "hang": "timeout", "http-500": "http-500", "http-502": "http-502", "http-429": "http-429",
    "truncated": "connection", "malformed": "malformed", "long-header": "malformed", "oversized": "too-large",
    "echo-auth": "http-500", "bad-status": "malformed", "bad-length": "malformed", "bad-chunk": "malformed",
    "duplicate": "extra-bytes",
}
FALLBACK_OF = {"null-content": "no-content", "no-choices": "no-content"}
CHAT_ONLY = frozenset(FALLBACK_OF)
FAULTS = tuple(COUNTED_AS) + tuple(FALLBACK_OF)
CHAT_PATH = "/v1/chat/completions"


def expected_kinds(injected: Counter) -> Counter:
    """The fault kinds r1track should count for the injected faults (the transport faults among them)."""
    out: Counter = Counter()
    for name, n in injected.items():
        if name in COUNTED_AS:
            out[COUNTED_AS[name]] += n
    return out


def expected_fallbacks(injected: Counter) -> Counter:
    """The fallback frames r1track should count for the injected answers without text."""
    out: Counter = Counter()
    for name, n in injected.items():
        if name in FALLBACK_OF:
            out[FALLBACK_OF[name]] += n
    return out


def read_message(sock: socket.socket, buf: bytes) -> tuple[bytes, bytes, bytes] | None:
    """(head, body, rest) of one HTTP message with a Content-Length body, or None at EOF."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            return None
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(rest) < length:
        data = sock.recv(65536)
        if not data:
            return None
        rest += data
    return head, rest[:length], rest[length:]


def iter_messages(sock: socket.socket):
    """(head, body) of each HTTP message arriving on ``sock``, until EOF."""
    buf = b""
    while (msg := read_message(sock, buf)) is not None:
        head, body, buf = msg
        yield head, body


def _response(code: int, body: bytes, extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\n" % code + extra
            + b"Content-Length: %d\r\n\r\n" % len(body) + body)


class LoopbackServer:
    """A threaded TCP server on 127.0.0.1 (an OS-given port): :meth:`handle` serves each connection in its
    own thread. ``base_url``: ``http://127.0.0.1:PORT/v1``; ``connections``: accepted so far."""

    def __init__(self) -> None:
        self.connections = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.base_url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        threading.Thread(target=self._accept, daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.sock.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()


class FaultProxy(LoopbackServer):
    """See the module docstring. ``upstream``: (host, port) of the real server. ``faults``: the names
    drawn from at random. ``paths``: inject only into requests whose path starts with one of these."""

    def __init__(self, upstream: tuple[str, int], *, rate: float = 0.0, seed: int = 0, script=(),
                 faults=FAULTS, hang_s: float = 2.0, paths=("/",)):
        self.upstream = upstream
        self.rate = rate
        self.rng = random.Random(seed)
        self.script = list(script)
        self.faults = tuple(faults)
        self.hang_s = hang_s
        self.paths = tuple(paths)
        self.injected: Counter = Counter()
        self.injected_bodies: dict[str, list[bytes]] = {}
        self.seen_headers: list[bytes] = []
        self._lock = threading.Lock()
        super().__init__()

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _choose(self, path: str) -> str | None:
        with self._lock:
            if not path.startswith(self.paths):
                return None
            if self.script:
                return self.script.pop(0)
            if self.rng.random() < self.rate:
                return self.rng.choice([f for f in self.faults if path == CHAT_PATH or f not in CHAT_ONLY])
            return None

    def chat_requests(self) -> int:
        """Chat requests the proxy has read (every attempt a client made)."""
        with self._lock:
            return sum(h.split(b"\r\n", 1)[0].split(b" ")[1] == CHAT_PATH.encode() for h in self.seen_headers)

    def handle(self, conn: socket.socket) -> None:
        up = None
        try:
            for head, body in iter_messages(conn):
                with self._lock:
                    self.seen_headers.append(head)
                path = head.split(b"\r\n", 1)[0].split(b" ")[1].decode("latin-1")
                fault = self._choose(path)
                if fault is not None:
                    with self._lock:
                        self.injected[fault] += 1
                        self.injected_bodies.setdefault(fault, []).append(body)
                if fault in (None, "truncated", "duplicate"):
                    if up is None:
                        up = socket.create_connection(self.upstream)
                    up.sendall(head + b"\r\n\r\n" + body)
                    reply = read_message(up, b"")
                    if reply is None:
                        return
                    rhead, rbody, _ = reply
                    if fault == "truncated":
                        conn.sendall(rhead + b"\r\n\r\n" + rbody[: len(rbody) // 2])
                        return
                    answer = rhead + b"\r\n\r\n" + rbody
                    conn.sendall(answer * 2 if fault == "duplicate" else answer)  # one write: they arrive together
                    continue
                if fault == "reset":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                if fault == "hang":
                    time.sleep(self.hang_s)
                    return
                if fault.startswith("http-"):
                    code = int(fault[5:])
                    extra = b"Retry-After: 0\r\n" if code == 429 else b""
                    conn.sendall(_response(code, b'{"error": {"message": "injected"}}', extra))
                elif fault == "malformed":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n{}")
                    return
                elif fault == "long-header":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 9000 + b"\r\nContent-Length: 2\r\n\r\n{}")
                    return
                elif fault == "oversized":
                    conn.sendall(_response(200, b" " * (2 << 20)))
                elif fault == "echo-auth":
                    conn.sendall(_response(500, b'{"error": "bad gateway", "request_headers": "'
                                           + head.replace(b"\r\n", b"; ").replace(b'"', b"'") + b'"}'))
                elif fault == "bad-status":
                    conn.sendall(b"HTTP/1.1 \xb2\xb2\xb2 OK\r\nContent-Length: 2\r\n\r\n{}")  # latin-1 superscript 2
                    return
                elif fault == "bad-length":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n{}")
                    return
                elif fault == "bad-chunk":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n{}\r\n0\r\n\r\n")
                    return
                elif fault in ("null-content", "no-choices"):
                    choices = b'[{"index": 0, "message": {"role": "assistant", "content": null}, "finish_reason": "length"}]'
                    conn.sendall(_response(200, b'{"id": "x", "object": "chat.completion", "choices": '
                                           + (choices if fault == "null-content" else b"[]") + b"}"))
        except OSError:
            return
        finally:
            if up is not None:
                up.close()
            conn.close()
