"""Every wait on a server is bounded by the fault policy, whatever the request, and every failure to reach one is
told cause first (issue 22).

* A server that accepts connections and never answers: the PyTracking plugin (the real plugin code path of
  tests/test_pytracking_plugin.py, the real HTTP client) and ``r1track track`` stop a sequence within
  ``max_fault_seconds`` of its first request -- the model lookup, text initialisation or a frame --, N sequences
  cost at most N times that, and the model listing is asked once.
* The messages: a table maps each way of not reaching a model server to the first words the user reads and the
  exit status.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from r1track.cli import main
from r1track.synthetic import make_sequence, write_got10k_sequence, write_got10k_split
from r1track.testing.openai_server import OpenAIServer
from test_pytracking_plugin import Seq, load_params, pytracking, run_sequence  # noqa: F401 - pytracking: a fixture
from upstream.vllm_server import free_port

LIMIT_S = 1.0  # --max-fault-seconds in these tests
TIMEOUT_S = 30.0  # one attempt's timeout: far above the limit, so a wait the limit does not cut shows at once
SLACK_S = 2.5  # decoding, thread start-up and a busy 2-core machine


class SilentServer:
    """Accepts every connection and reads what comes, never answers (a hung server). ``heads``: the request
    lines seen (``GET /v1/models HTTP/1.1``, ...)."""

    def __init__(self, greeting: bytes | None = None) -> None:
        self.greeting = greeting  # sent instead of silence (then the connection is closed): not HTTP
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.heads: list[str] = []
        self.conns: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        buf = b""
        while not self._stop:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while b"\r\n\r\n" in buf:
                head, _, buf = buf.partition(b"\r\n\r\n")
                line = head.split(b"\r\n", 1)[0].decode("latin-1")
                if line.split(" ")[0] in ("GET", "POST"):
                    self.heads.append(line)
                    if self.greeting is not None:
                        conn.sendall(self.greeting)
                        conn.close()
                        return
                buf = b""  # bodies are not parsed: the next request comes on a new connection after a timeout

    def lookups(self) -> int:
        return sum(h.startswith("GET /v1/models") for h in self.heads)

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass

    def __enter__(self) -> "SilentServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Seq:
    seq = make_sequence("clip", n_frames=6, size=(160, 120), seed=4)
    folder = write_got10k_sequence(seq, tmp_path_factory.mktemp("clip") / "clip")
    return Seq("clip", sorted(folder.glob("*.jpg")), list(seq.boxes_xywh_orig[0]))


def _init(clip: Seq) -> str:
    return ",".join(f"{v:g}" for v in clip.init_bbox)


# -- the hung server: PyTracking ------------------------------------------------------------------------------

@pytest.mark.parametrize("model, family", [(None, None), ("m", None), ("m", "qwen2.5-vl")],
                         ids=["model-looked-up", "family-looked-up", "model-and-family-given"])
def test_plugin_stops_every_sequence_of_a_hung_server_within_the_limit_and_looks_the_model_up_once(
        pytracking, clip, model, family, caplog):
    """The listing is asked when the model's name or family is not given (as on the command line); a silent
    server costs the limit once per process there, then each sequence stops at once."""
    import logging

    from r1track.integrations import pytracking as adapter

    n = 3
    before = adapter.RECORD.to_json()
    with SilentServer() as server:
        params = load_params(server_url=server.base_url, model=model, model_family=family, timeout_s=TIMEOUT_S,
                             retries=3, max_fault_seconds=LIMIT_S)
        took = []
        with caplog.at_level(logging.ERROR, logger="r1track.pytracking"):
            for k in range(n):
                t0 = time.monotonic()
                assert run_sequence(Seq(f"seq{k}", clip.frames, clip.init_bbox), params) is None  # no result files
                took.append(time.monotonic() - t0)
        lookups, heads = server.lookups(), list(server.heads)
    assert all(t < LIMIT_S + SLACK_S for t in took), took  # from each sequence's first request
    assert sum(took) < n * (LIMIT_S + SLACK_S)
    assert took[0] >= LIMIT_S * 0.9  # the first one did wait for the limit: it asked and was cut off there
    stops = [r.getMessage() for r in caplog.records if "STOPPED" in r.getMessage()]
    assert len(stops) == n and all("no reply from the server at " + server.base_url in s for s in stops)
    delta = adapter.RECORD.to_json()
    if family is None:
        assert lookups == 1  # asked by the first sequence only: the silence it met is kept for the process
        assert all(not h.startswith("POST") for h in heads)  # no frame is asked before the listing answers
        lookup = delta["by_kind"]["lookup"]
        assert lookup["requests"] - before.get("by_kind", {}).get("lookup", {}).get("requests", 0) == 1
        assert lookup["faults"].get("timeout", 0) >= 1  # the attempt cut off at the limit is counted
    else:
        assert lookups == 0 and len(heads) == n  # one frame request per sequence, each cut off at the limit
        assert sum(took[1:]) >= (n - 1) * LIMIT_S * 0.9  # each sequence waits for its own limit, no longer


# -- the hung server: r1track track ----------------------------------------------------------------------------

@pytest.mark.parametrize("extra, stage", [
    ([], "lookup"),  # the family is asked of the server
    (["--model-family", "qwen2.5-vl"], "lookup"),  # the model name is asked at the first frame
    (["--model-family", "qwen2.5-vl", "--model", "m"], "frame"),
    (["--model-family", "qwen2.5-vl", "--model", "m", "--text", "the box"], "text"),
])
def test_track_stops_on_a_hung_server_within_the_limit(clip, tmp_path, capsys, extra, stage):
    start = [] if "--text" in extra else ["--init", _init(clip)]
    with SilentServer() as server:
        t0 = time.monotonic()
        rc = main(["track", str(clip.frames[0].parent), *start, "--server", server.base_url, "--timeout", str(TIMEOUT_S),
                   "--max-fault-seconds", str(LIMIT_S), "-o", str(tmp_path / "out"), *extra])
        took = time.monotonic() - t0
        heads = list(server.heads)
    err = capsys.readouterr().err
    assert rc == 1 and LIMIT_S * 0.9 <= took < LIMIT_S + SLACK_S, (rc, took, err[-2000:])
    assert not (tmp_path / "out" / "boxes.txt").exists()
    assert len(heads) == 1 and heads[0].startswith("GET /v1/models" if stage == "lookup" else "POST")
    if stage == "lookup" and not extra:
        assert f"no server answers at {server.base_url}: a connection was accepted" in err
        assert "--max-fault-seconds" in err and "model lookup(s): 1 in 1 attempt(s)" in err
    else:
        assert f"no reply from the server at {server.base_url}" in err
        kind = {"lookup": "model lookup(s)", "frame": "frame(s)", "text": "text initialisation(s)"}[stage]
        assert f"{kind}: " in err or (stage == "frame" and "requests: 1 frame(s) asked in 1 attempt(s)" in err)


def test_eval_on_a_hung_server_stops_within_the_limit_and_counts_the_lookup_in_run_json(tmp_path, capsys):
    root = tmp_path / "GOT10k"
    write_got10k_split(root, "val", n_sequences=2, n_frames=4, size=(160, 120), seed=3)
    with SilentServer() as server:
        t0 = time.monotonic()
        rc = main(["eval", str(root), "--dataset", "got10k", "--split", "val", "--server", server.base_url, "--no-progress",
                   "--timeout", str(TIMEOUT_S), "--max-fault-seconds", str(LIMIT_S), "-o", str(tmp_path / "out")])
        took = time.monotonic() - t0
    captured = capsys.readouterr()
    assert rc == 1 and took < LIMIT_S + SLACK_S
    assert f"no server answers at {server.base_url}" in captured.err.splitlines()[-1]
    doc = json.loads((tmp_path / "out" / "run.json").read_text())
    (inv,) = doc["invocations"]
    assert "no server answers" in inv["error"] and inv["requests"]["by_kind"]["lookup"]["attempts"] == 1
    assert doc["totals"]["by_kind"]["lookup"]["faults"] == {"timeout": 1}


# -- the first screen of errors: each failure and its message ---------------------------------------------------

class _Listing(BaseHTTPRequestHandler):
    body = b"{}"
    code = 200

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(self.code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


class ListingServer:
    """Answers every GET with one fixed JSON body and status."""

    def __init__(self, body: object, code: int = 200) -> None:
        handler = type("H", (_Listing,), {"body": json.dumps(body).encode(), "code": code})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"


def _silent():
    s = SilentServer()
    return s, s.base_url, s.close


def _garbage():
    s = SilentServer(greeting=b"SSH-2.0-OpenSSH_9.6\r\n")
    return s, s.base_url, s.close


def _fake(**kw):
    s = OpenAIServer(**kw).start()
    return s, s.base_url, s.stop


def _listing(body, code=200):
    s = ListingServer(body, code)
    return s, s.base_url, s.close


# (id, how the server is reached, extra flags, exit status, the message's first words, more words it must hold)
MESSAGES = [
    ("nothing-listens-default-url", "default", [], 1,
     "no server answers at {url} (the default URL: no --server was given and R1TRACK_BASE_URL is not set): nothing "
     "accepts connections there", ["--server URL", "--backend ncc", "--backend oracle"]),
    ("nothing-listens-given-url", "flag", [], 1, "no server answers at {url}: nothing accepts connections there",
     ["--server URL", "--backend ncc"]),
    ("nothing-listens-env-url", "env", [], 1, "no server answers at {url} (from R1TRACK_BASE_URL): nothing accepts",
     ["--backend ncc"]),
    ("accepts-never-answers", "silent", [], 1,
     "no server answers at {url}: a connection was accepted (or is still being opened) but no reply came before the "
     "time limit", ["--max-fault-seconds", "tried 1 time(s)"]),
    ("not-http", "garbage", [], 2, "{url} is not a model server: what answers there does not speak HTTP",
     ["right port", "--server URL"]),
    ("server-fails", "http-500", [], 1, "the server at {url} fails: it answered HTTP 500 to every attempt",
     ["server's log"]),
    ("not-openai-path", "wrong-path", [], 2,
     "{url} is not an OpenAI-compatible API: its /models path answers HTTP 404 (no such path)", ["ends in /v1"]),
    ("not-a-model-list", "not-a-list", [], 2,
     "{url} is not an OpenAI-compatible API: its /models path does not answer with an OpenAI-compatible model list",
     []),
    ("empty-model-list", "empty", [], 2, "the server at {url} answers but lists no model", ["--model"]),
    ("refused", "http-401", [], 3,  # a refusal on every attempt: exit status 3, as for a refused frame (issue 25)
     "the server at {url} refused the model listing: HTTP 401: the server refused the request",
     ["API key", "on all 2 attempt(s)"]),
    ("family-unknown", "my-finetune", [], 2,
     "the server at {url} serves 'my-finetune' (loaded from '/ckpt/step-100'), whose model family r1track cannot tell",
     ["--model-family", "qwen2.5-vl, qwen3-vl, qwen3.5"]),
    ("model-not-listed", "my-finetune", ["--model", "other"], 2,
     "the server at {url} does not list model 'other' (it lists: 'my-finetune')",
     ["--model with a listed name", "--model-family with one of: qwen2.5-vl, qwen3-vl, qwen3.5"]),
]


@pytest.mark.parametrize("command", ["eval", "track"])
@pytest.mark.parametrize("case", MESSAGES, ids=[m[0] for m in MESSAGES])
def test_each_way_of_not_reaching_a_model_server_has_its_message(case, command, clip, tmp_path, capsys, monkeypatch):
    import r1track.backends.openai as openai_backend

    name, how, extra, status, first, more = case
    for var in ("R1TRACK_BASE_URL", "OPENAI_BASE_URL", "R1TRACK_MODEL"):
        monkeypatch.delenv(var, raising=False)
    server, close = None, lambda: None
    flags: list[str] = []
    if how in ("default", "flag", "env"):
        url = _closed_port_url()
        if how == "default":  # the real default is port 8000, which another program may hold here
            monkeypatch.setattr(openai_backend, "DEFAULT_BASE_URL", url)
        elif how == "env":
            monkeypatch.setenv("R1TRACK_BASE_URL", url)
        else:
            flags = ["--server", url]
    else:
        server, url, close = {
            "silent": _silent, "garbage": _garbage,
            "http-500": lambda: _listing({"error": "boom"}, 500),
            "http-401": lambda: _listing({"error": "bad key"}, 401),
            "wrong-path": lambda: _fake(),
            "not-a-list": lambda: _listing({"models": ["a"]}),
            "empty": lambda: _listing({"object": "list", "data": []}),
            "my-finetune": lambda: _fake(model="my-finetune", root="/ckpt/step-100"),
        }[how]()
        if how == "wrong-path":
            url = url[: -len("/v1")] + "/api"  # a path the server does not serve
        flags = ["--server", url]
    try:
        if command == "eval":
            root = tmp_path / "GOT10k"
            write_got10k_split(root, "val", n_sequences=1, n_frames=3, size=(160, 120), seed=3)
            argv = ["eval", str(root), "--dataset", "got10k", "--split", "val", "--no-progress"]
        else:
            argv = ["track", str(clip.frames[0].parent), "--init", _init(clip)]
        rc = main([*argv, *flags, "--retries", "1", "--timeout", "5", "--max-fault-seconds", "1",
                   "-o", str(tmp_path / "out"), *extra])
    finally:
        close()
    err = capsys.readouterr().err
    expected = first.format(url=url)
    assert rc == status, err[-1500:]
    assert expected in err, f"{name}: {expected!r} not in {err[-1500:]!r}"
    line = next(li for li in err.splitlines() if expected in li)
    assert line.index(expected) <= len("r1track eval: ") + len("error: "), line  # the cause comes first
    for words in more:
        assert words in line, f"{name}: {words!r} not in {line!r}"
    if command == "eval":  # a run that could not start for want of a server says so in run.json; usage errors write nothing
        written = (tmp_path / "out" / "run.json").is_file()
        assert written == (status == 1)
        if written:
            doc = json.loads((tmp_path / "out" / "run.json").read_text())
            assert doc["invocations"][-1]["requests"]["by_kind"]["lookup"]["attempts"] >= 1
            assert expected in doc["invocations"][-1]["error"]


def test_the_down_at_start_run_resumes_once_the_server_answers(tmp_path, capsys):
    """The issue's case: a server down at the start, model name not a known checkpoint, no --model-family."""
    root = tmp_path / "GOT10k"
    write_got10k_split(root, "val", n_sequences=2, n_frames=4, size=(160, 120), seed=3)
    port = free_port()
    args = ["eval", str(root), "--dataset", "got10k", "--split", "val", "--server", f"http://127.0.0.1:{port}/v1",
            "--model", "my-model", "--no-progress", "--retries", "2", "-o", str(tmp_path / "out")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"no server answers at http://127.0.0.1:{port}/v1: nothing accepts connections there (tried 3 time(s)" in err
    assert "cannot tell the model family" not in err  # the old message sent the user after the wrong fix
    with OpenAIServer(model="my-model", root="Qwen/Qwen2.5-VL-3B-Instruct", port=port):
        assert main(args) == 0
    doc = json.loads((tmp_path / "out" / "run.json").read_text())
    assert [bool(i.get("error")) for i in doc["invocations"]] == [True, False]
    lookup = doc["totals"]["by_kind"]["lookup"]
    assert lookup["requests"] == 2 and lookup["attempts"] == 3 + 1 and lookup["faults"] == {"connection": 3}
    assert doc["totals"]["failed"] == 0 and len(list((tmp_path / "out" / "results").iterdir())) == 2


# -- text initialisation: counted, and bounded like any request ---------------------------------------------------

def test_eval_counts_every_attempt_and_fault_of_text_initialisation(tmp_path, capsys):
    from r1track.testing.openai_server import status
    from test_evaluate import _write_lasot

    _write_lasot(tmp_path / "LaSOT", n=2, frames=4)
    with OpenAIServer(script=[status(500), status(503)]) as server:  # the first grounding request: two faults
        rc = main(["eval", str(tmp_path / "LaSOT"), "--split", "all", "--init", "text", "--server", server.base_url,
                   "--model", "m", "--model-family", "qwen2.5-vl", "--concurrency", "1", "--no-progress",
                   "-o", str(tmp_path / "out")])
    assert rc == 0
    doc = json.loads((tmp_path / "out" / "run.json").read_text())
    text_init = doc["totals"]["by_kind"]["text-init"]
    assert text_init == {"requests": 2, "attempts": 4, "retries": 2, "faults": {"http-500": 1, "http-503": 1}}
    assert doc["totals"]["by_kind"]["frame"]["requests"] == 2 * 3
    assert doc["totals"]["faults"] == {"http-500": 1, "http-503": 1}  # the totals hold every request kind
    first = next(s for s in doc["sequences"] if s["name"] == "toy-1")
    assert first["by_kind"]["text-init"]["faults"] == {"http-500": 1, "http-503": 1}
    assert "text initialisation(s): 2 in 4 attempt(s), 2 retried" in capsys.readouterr().out


@pytest.mark.parametrize("answer", ["null_content", "no_box"])
def test_eval_counts_a_text_initialisation_answered_without_a_box(tmp_path, answer):
    from r1track.testing.openai_server import null_content, reply, status
    from test_evaluate import _write_lasot

    _write_lasot(tmp_path / "LaSOT", n=2, frames=4)
    bad = null_content() if answer == "null_content" else reply("I cannot see it")
    with OpenAIServer(script=[status(503), bad]) as server:  # toy-1's grounding: a fault, then no usable answer
        rc = main(["eval", str(tmp_path / "LaSOT"), "--split", "all", "--init", "text", "--server", server.base_url,
                   "--model", "m", "--model-family", "qwen2.5-vl", "--concurrency", "1", "--no-progress",
                   "-o", str(tmp_path / "out")])
    assert rc == 1  # one sequence failed
    doc = json.loads((tmp_path / "out" / "run.json").read_text())
    first = next(s for s in doc["sequences"] if s["name"] == "toy-1")
    assert first["status"] == "failed" and "grounding" in first["error"]
    assert first["by_kind"]["text-init"] == {"requests": 1, "attempts": 2, "retries": 1, "faults": {"http-503": 1}}
    assert doc["totals"]["by_kind"]["text-init"]["requests"] == 2  # toy-2's too
    assert doc["totals"]["faults"] == {"http-503": 1}


def test_a_grounding_reply_that_echoes_the_key_never_reaches_a_file_or_the_terminal(tmp_path, capfd, caplog,
                                                                                    monkeypatch):
    from r1track.testing.openai_server import reply
    from test_evaluate import _write_lasot

    secret = "sk-closedloop-0123456789abcdef"
    monkeypatch.setenv("R1TRACK_API_KEY", secret)
    _write_lasot(tmp_path / "LaSOT", n=1, frames=3)
    with OpenAIServer(script=[reply(f"Authorization: Bearer {secret}")]) as server:  # no box: the sequence fails
        rc = main(["eval", str(tmp_path / "LaSOT"), "--split", "all", "--init", "text", "--server", server.base_url,
                   "--model", "m", "--model-family", "qwen2.5-vl", "--no-progress", "-o", str(tmp_path / "out")])
    assert rc == 1
    doc = json.loads((tmp_path / "out" / "run.json").read_text())
    assert "grounding reply has no box" in doc["sequences"][0]["error"]  # the failure is still explained
    stream = capfd.readouterr()
    files = [p.read_bytes().decode("latin-1") for p in (tmp_path / "out").rglob("*") if p.is_file()]
    for text in [stream.out, stream.err, caplog.text, *files]:
        assert secret not in text


def test_eval_text_initialisation_on_a_hung_server_stops_the_sequences_within_the_limit(tmp_path):
    from test_evaluate import _write_lasot

    _write_lasot(tmp_path / "LaSOT", n=2, frames=4)
    with SilentServer() as server:
        t0 = time.monotonic()
        rc = main(["eval", str(tmp_path / "LaSOT"), "--split", "all", "--init", "text", "--server", server.base_url,
                   "--model", "m", "--model-family", "qwen2.5-vl", "--no-progress", "--timeout", str(TIMEOUT_S),
                   "--max-fault-seconds", str(LIMIT_S), "-o", str(tmp_path / "out")])
        took = time.monotonic() - t0
    assert rc == 1 and took < LIMIT_S + SLACK_S  # both sequences in flight at once, each bounded
    doc = json.loads((tmp_path / "out" / "run.json").read_text())
    assert all(s["status"] == "failed" and "text initialisation" in s["error"] for s in doc["sequences"])
    assert doc["totals"]["by_kind"]["text-init"] == {"requests": 2, "attempts": 2, "retries": 0,
                                                     "faults": {"timeout": 2}}
    assert not (tmp_path / "out" / "results").exists() or not list((tmp_path / "out" / "results").iterdir())


# -- the model listing: asked once per server and command, shared ------------------------------------------------

@pytest.mark.parametrize("workers", [1, 2])
def test_eval_asks_the_model_listing_once_for_the_family_and_the_model_name(tmp_path, workers):
    from faultproxy import FaultProxy

    root = tmp_path / "GOT10k"
    write_got10k_split(root, "val", n_sequences=3, n_frames=3, size=(160, 120), seed=3)
    with OpenAIServer(model="served", root="Qwen/Qwen2.5-VL-3B-Instruct") as server:
        with FaultProxy(("127.0.0.1", server.port)) as proxy:  # no faults: it counts what passes
            assert main(["eval", str(root), "--dataset", "got10k", "--split", "val", "--server", proxy.base_url,
                         "--workers", str(workers), "--no-progress", "-o", str(tmp_path / "out")]) == 0
        assert {r.body["model"] for r in server.chat_requests()} == {"served"}
    heads = [h for h in proxy.seen_headers if h.startswith(b"GET /v1/models")]
    assert len(heads) == 1  # the family and the model name from one listing, in every worker process
    doc = json.loads((tmp_path / "out" / "run.json").read_text())
    assert doc["totals"]["by_kind"]["lookup"] == {"requests": 1, "attempts": 1, "retries": 0, "faults": {}}


def test_track_asks_the_model_listing_once(clip, tmp_path, capsys):
    from faultproxy import FaultProxy

    with OpenAIServer(model="served", root="Qwen/Qwen2.5-VL-3B-Instruct") as server:
        with FaultProxy(("127.0.0.1", server.port)) as proxy:
            assert main(["track", str(clip.frames[0].parent), "--init", _init(clip), "--server", proxy.base_url,
                         "-o", str(tmp_path / "out")]) == 0
    assert sum(h.startswith(b"GET /v1/models") for h in proxy.seen_headers) == 1
    assert "model lookup(s): 1 in 1 attempt(s)" in capsys.readouterr().err
