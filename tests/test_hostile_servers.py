"""Issue 25, hostile servers: each row of the issue reproduced through the real client (r1track's HTTP client,
the OpenAI backend, ``r1track eval`` / ``track``) against the fake OpenAI server, raw loopback servers and the
tests' fault proxy -- no mocks.

Rows: 2 (a duplicated response is never taken as the next frame's answer), 3 (framing numbers that are not ASCII
digits, negative chunk sizes: counted, retried transport faults, also on ``/v1/models``), 4 (a server that never
answers with text ends the run non-zero, naming the cause, with no score table), 6 (the model name a server
lists is redacted in every log line), 7 (refusals: exit status 3; a single redirect does not end a run).
Row 1 (overflowing boxes) is ``test_hostile_answers.py``; row 5 (a full disk) and the small items of row 7 are
at the end of this file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from datagen import corrupt_jpeg
from faultproxy import FaultProxy, LoopbackServer, iter_messages
from r1track.cli import main
from r1track.exitcodes import ExitStatus
from r1track.httpclient import AsyncHTTPClient, MalformedResponse, ResponseTooLarge, StrayResponse, TransportError
from r1track.synthetic import make_sequence, write_got10k_sequence, write_got10k_split
from r1track.testing.openai_server import OpenAIServer, no_choices, null_content, status
from test_evaluate import wobble_responder
from test_faults import SECRET, clean_run, dataset, eval_args, quick_backoff, same_results  # noqa: F401 - fixtures


def run_json(out):
    return json.loads((out / "run.json").read_text())


# -- row 2: a server that answers twice ------------------------------------------------------------------------

def test_a_server_answering_every_request_twice_never_gives_a_stale_reply(dataset, clean_run, tmp_path):
    """Before: the second copy waited in the pooled connection and was read as the next frame's answer (more
    attempts than requests the server saw, wrong boxes). Now each response with bytes after it closes its
    connection; the answer itself is the server's (the connection's first exchange) and the stray bytes are
    counted as an ``extra-bytes`` fault."""
    out = tmp_path / "out"
    with OpenAIServer(responder=wobble_responder) as server:
        with FaultProxy(("127.0.0.1", server.port), rate=1.0, faults=["duplicate"]) as proxy:
            assert main(eval_args(dataset, out, proxy.base_url, "--model", "fake-model")) == 0
        seen = len(server.requests)
    totals = run_json(out)["totals"]
    assert same_results(out, clean_run)  # every frame: the answer to its own request
    assert totals["attempts"] == totals["requests"] == seen == 27  # no stale reply, nothing asked twice
    assert totals["faults"] == {"extra-bytes": proxy.injected["duplicate"]} and proxy.injected["duplicate"] == 27


class RawServer(LoopbackServer):
    """Answers request number i (from 0, per server) with ``handler(i) -> (bytes, close)``."""

    def __init__(self, handler):
        self.handler = handler
        self.count = 0
        super().__init__()

    def handle(self, conn):
        try:
            for _head, _body in iter_messages(conn):
                i, self.count = self.count, self.count + 1
                data, close = self.handler(i)
                for part in data if isinstance(data, list) else [data]:
                    if isinstance(part, float):
                        time.sleep(part)  # a pause between writes
                    else:
                        conn.sendall(part)
                if close:
                    return
        finally:
            conn.close()


def answer(i: int, extra: bytes = b"") -> bytes:
    body = json.dumps({"answer": i}).encode()
    return b"HTTP/1.1 200 OK\r\n" + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body


def test_bytes_after_a_response_on_a_reused_connection_fail_that_attempt_and_the_connection():
    """The first exchange on a connection is trusted; on a reused one the response read could be a late copy of
    the previous answer, so it is refused (StrayResponse, retryable) and the connection is dropped."""
    server = RawServer(lambda i: (answer(i) + answer(i) if i == 1 else answer(i), False))

    async def run():
        client = AsyncHTTPClient(server.base_url)
        first = await client.request("GET", "/")
        with pytest.raises(StrayResponse) as info:
            await client.request("GET", "/")  # reused connection, answered twice
        third = await client.request("GET", "/")  # a new connection: its own answer, not the stray copy
        await client.aclose()
        return first, info.value, third

    first, err, third = asyncio.run(run())
    server.close()
    assert first.json() == {"answer": 0} and first.stray_bytes == 0
    assert err.kind == "extra-bytes" and isinstance(err, TransportError)
    assert third.json() == {"answer": 2} and server.connections == 2


def test_a_response_sent_while_the_connection_was_idle_is_never_read_as_an_answer():
    """The server sends an unsolicited copy after a pause, while the connection waits in the pool: the next
    request takes a new connection and gets its own answer; the stray bytes are counted on it."""
    server = RawServer(lambda i: ([answer(i), 0.05, answer(i)] if i == 0 else answer(i), False))

    async def run():
        client = AsyncHTTPClient(server.base_url)
        first = await client.request("GET", "/")
        await asyncio.sleep(0.3)  # the copy arrives and is buffered by the idle connection
        second = await client.request("GET", "/")
        await client.aclose()
        return first, second

    first, second = asyncio.run(run())
    server.close()
    assert first.json() == {"answer": 0} and second.json() == {"answer": 1}
    assert second.stray_bytes == len(answer(0)) and server.connections == 2


# -- row 3: framing numbers ------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, error", [
    # header bytes are latin-1: 0xB2, 0xB3, 0xB9 are the superscripts 2, 3, 1, which str.isdigit() takes and int() refuses
    (b"HTTP/1.1 \xb2\xb2\xb2 OK\r\nContent-Length: 2\r\n\r\n{}", MalformedResponse),
    (b"HTTP/1.1 2\xb9\xb3 OK\r\nContent-Length: 2\r\n\r\n{}", MalformedResponse),
    (b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n{}", MalformedResponse),
    (b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n{}", MalformedResponse),
    (b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n{}", ResponseTooLarge),  # int() of 4300+ digits raises
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", MalformedResponse),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n{}\r\n0\r\n\r\n", MalformedResponse),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\n{}\r\n0\r\n\r\n", MalformedResponse),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+2\r\n{}\r\n0\r\n\r\n", MalformedResponse),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n{}\r\n0\r\n\r\n", MalformedResponse),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\xb2\r\n{}\r\n0\r\n\r\n", MalformedResponse),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n", MalformedResponse),  # no CRLF after data
    (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", MalformedResponse),
])
def test_framing_numbers_are_ascii_digits_only(raw, error):
    server = RawServer(lambda i: (raw, True))
    with pytest.raises(error) as info:
        asyncio.run(AsyncHTTPClient(server.base_url).request("GET", "/"))
    server.close()
    assert isinstance(info.value, TransportError) and info.value.kind in ("malformed", "too-large")


def test_interim_answers_are_skipped_and_good_framing_still_reads():
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=1\r\n{}\r\n0\r\n\r\n"
    same_length_twice = answer(2, b"Content-Length: %d\r\n" % len(json.dumps({"answer": 2})))
    replies = [b"HTTP/1.1 100 Continue\r\n\r\n" + answer(0), chunked, same_length_twice]
    server = RawServer(lambda i: (replies[i], False))

    async def run():
        client = AsyncHTTPClient(server.base_url)
        out = [await client.request("GET", "/") for _ in range(3)]
        await client.aclose()
        return out

    a, b, c = asyncio.run(run())
    server.close()
    assert (a.status, a.json()) == (200, {"answer": 0}) and b.body == b"{}" and c.json() == {"answer": 2}


@pytest.mark.parametrize("fault", ["bad-status", "bad-length", "bad-chunk"])
def test_a_bad_framing_on_the_model_lookup_is_retried_not_a_usage_error(dataset, tmp_path, quick_backoff, fault):
    """Before: the ValueError escaped the client and the run ended with exit status 2 before tracking."""
    out = tmp_path / "out"
    args = ["eval", str(dataset), "--dataset", "got10k", "--split", "val", "--server", "URL", "--concurrency", "3",
            "--crop-size", "112", "--no-progress", "-o", str(out)]  # no --model, no --model-family: asked first
    with OpenAIServer(model="Qwen2.5-VL-3B-Instruct") as server:
        with FaultProxy(("127.0.0.1", server.port), script=[fault], paths=("/v1/models",)) as proxy:
            args[args.index("URL")] = proxy.base_url
            assert main(args) == 0
    assert proxy.injected == {fault: 1}
    assert run_json(out)["totals"]["failed"] == 0


# -- row 4: the model never answered usably --------------------------------------------------------------------

@pytest.mark.parametrize("how", ["null content", "no choices"])
def test_a_server_that_never_answers_with_text_fails_the_run_naming_the_cause(dataset, clean_run, tmp_path, capsys, how):
    """Before: exit 0 and a score table; the only hint was "no-box 234" among the fallbacks."""
    out = tmp_path / "out"
    action = null_content if how == "null content" else no_choices
    with OpenAIServer(script=[action() for _ in range(100)]) as server:
        rc = main(eval_args(dataset, out, server.base_url, "--model", "fake-model"))
    text = capsys.readouterr().out
    assert rc == ExitStatus.RUN_FAILED
    assert f"the server's reply has {'null content' if how == 'null content' else 'no choices'}" in text
    assert "3 sequence(s) FAILED" in text and not (out / "report").exists()  # no score table
    assert "overall" not in text and not list((out / "results").glob("*"))
    totals = run_json(out)["totals"]
    assert totals["fallbacks"] == {"no-content": 9} and totals["failed"] == 3  # stopped after 3 in a row, each
    with OpenAIServer(responder=wobble_responder) as server:  # the server fixed: a rerun completes the run
        assert main(eval_args(dataset, out, server.base_url, "--model", "fake-model")) == 0
    assert same_results(out, clean_run)


def test_nearly_all_frames_without_text_is_no_result_even_below_the_consecutive_limit(dataset, clean_run, tmp_path,
                                                                                      capsys):
    """--max-consecutive-faults raised so the runs never stop a sequence: at the end, 9 of 9 frames without text
    (>= 90 %) make the sequence no result, and a rerun starts it over."""
    out = tmp_path / "out"
    with OpenAIServer(responder=lambda body: None) as server:
        rc = main(eval_args(dataset, out, server.base_url, "--model", "fake-model", "--max-consecutive-faults", "1000"))
    text = capsys.readouterr().out
    assert rc == ExitStatus.RUN_FAILED and "the model never answered usably: 9 of 9 frame(s)" in text
    assert "no-content 9" in text and "null content" in text and not (out / "report").exists()
    with OpenAIServer(responder=wobble_responder) as server:
        assert main(eval_args(dataset, out, server.base_url, "--model", "fake-model")) == 0
    assert same_results(out, clean_run)  # every frame asked again
    doc = run_json(out)
    assert doc["totals"]["requests"] == 27 + 27 and doc["totals"]["fallbacks"] == {}


def test_some_frames_without_text_are_counted_fallbacks_of_a_finished_run(dataset, tmp_path, capsys):
    out = tmp_path / "out"
    with OpenAIServer(script=[null_content(), no_choices()]) as server:
        assert main(eval_args(dataset, out, server.base_url, "--model", "fake-model", "--concurrency", "1")) == 0
    assert run_json(out)["totals"]["fallbacks"] == {"no-content": 2}
    assert "no-content 2" in capsys.readouterr().out


def test_track_with_a_server_that_never_answers_with_text_writes_nothing(tmp_path, capsys):
    seq = make_sequence("clip", n_frames=6, seed=4)
    write_got10k_sequence(seq, tmp_path / "clip")
    init = ",".join(str(v) for v in seq.boxes_xywh_orig[0])
    with OpenAIServer(responder=lambda body: None) as server:
        rc = main(["track", str(tmp_path / "clip"), "--init", init, "--server", server.base_url, "--model", "m",
                   "--model-family", "qwen2.5-vl", "--max-consecutive-faults", "100", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == ExitStatus.RUN_FAILED and "the model never answered usably" in err and "null content" in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


# -- row 6: every log line redacted ----------------------------------------------------------------------------

def test_a_model_list_that_echoes_the_key_never_reaches_a_log_line(dataset, tmp_path, capfd, caplog, monkeypatch):
    monkeypatch.setenv("R1TRACK_API_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "out"
    with OpenAIServer(model=f"echo-{SECRET}") as server:  # an echoing server: the key in its model list
        rc = main(eval_args(dataset, out, server.base_url))  # no --model: the name is looked up and logged
    assert rc == 0
    assert any("serves model" in r.getMessage() and "***" in r.getMessage() for r in caplog.records)
    stream = capfd.readouterr()
    for text in (caplog.text, stream.out, stream.err, *(p.read_text(errors="replace") for p in out.rglob("*.json"))):
        assert SECRET not in text


def test_every_r1track_logger_redacts(caplog):
    """Each module's logger carries the redacting filter (a new module that takes ``logging.getLogger`` fails
    here), and the filter redacts arguments and tracebacks."""
    import importlib
    import pkgutil

    import r1track
    from r1track.redact import RedactingFilter, register_secret

    loggers = {}
    for info in pkgutil.walk_packages(r1track.__path__, "r1track."):
        if info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra that is not installed
            continue
        for value in vars(module).values():
            if isinstance(value, logging.Logger) and value.name.startswith("r1track"):
                loggers[f"{info.name}: {value.name}"] = value
    assert len(loggers) >= 8
    missing = [k for k, lg in loggers.items() if not any(isinstance(f, RedactingFilter) for f in lg.filters)]
    assert not missing
    register_secret(SECRET)
    caplog.set_level(logging.INFO)
    log = logging.getLogger("r1track.evaluate")
    try:
        raise RuntimeError(f"server said {SECRET}")
    except RuntimeError:
        log.exception("model %r", SECRET)
    assert SECRET not in caplog.text and "model '***'" in caplog.text and "server said ***" in caplog.text


# -- row 7: refusals -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("code", [401, 403, 302])
def test_a_refusal_on_every_attempt_exits_with_status_3(dataset, tmp_path, capsys, quick_backoff, code):
    out = tmp_path / "out"
    with OpenAIServer(script=[status(code) for _ in range(100)]) as server:
        rc = main(eval_args(dataset, out, server.base_url, "--model", "fake-model", "--retries", "2"))
    err = capsys.readouterr().err
    assert rc == ExitStatus.SERVER_REFUSED == 3
    assert f"HTTP {code}: the server refused the request" in err and "on all 3 attempt(s)" in err
    assert ("API key" in err) if code == 401 else ("redirect" in err) if code == 302 else ("permission" in err)


def test_a_single_redirect_does_not_end_the_run(dataset, clean_run, tmp_path, quick_backoff):
    """Before: one 302 aborted the whole run with exit status 2. Now it is retried and counted."""
    out = tmp_path / "out"
    with OpenAIServer(responder=wobble_responder, script=[status(302)]) as server:
        assert main(eval_args(dataset, out, server.base_url, "--model", "fake-model")) == 0
    assert run_json(out)["totals"]["faults"] == {"http-302": 1}
    assert same_results(out, clean_run)


def test_a_refused_model_lookup_and_a_refused_track_exit_with_status_3(dataset, tmp_path, capsys, quick_backoff):
    with OpenAIServer() as server:
        with FaultProxy(("127.0.0.1", server.port), rate=1.0, faults=["http-401"], paths=("/v1/models",)) as proxy:
            args = ["eval", str(dataset), "--dataset", "got10k", "--split", "val", "--server", proxy.base_url,
                    "--crop-size", "112", "--no-progress", "-o", str(tmp_path / "out"), "--retries", "1"]
            assert main(args) == ExitStatus.SERVER_REFUSED  # the family lookup before tracking
    seq = make_sequence("clip", n_frames=4, seed=4)
    write_got10k_sequence(seq, tmp_path / "clip")
    init = ",".join(str(v) for v in seq.boxes_xywh_orig[0])
    with OpenAIServer(script=[status(403) for _ in range(10)]) as server:
        rc = main(["track", str(tmp_path / "clip"), "--init", init, "--server", server.base_url, "--model", "m",
                   "--model-family", "qwen2.5-vl", "--retries", "1", "-o", str(tmp_path / "t")])
    assert rc == ExitStatus.SERVER_REFUSED
    assert "HTTP 403" in capsys.readouterr().err


def test_the_commands_help_documents_every_exit_status(capsys):
    for command in ("eval", "track"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "Exit status: 0" in text and ("3 when the server refused" in text or "3 the server refused" in text)
        assert "401" in text and "redirect" in text and "full disk" in text


def test_counts_on_the_backend(quick_backoff):
    """The backend's own stats name each refusal and stray copy (what run.json sums)."""
    from r1track.backends.openai import OpenAIBackend
    from r1track.backends import BackendError, ServerRefused

    with OpenAIServer(script=[status(401), status(401)]) as server:
        backend = OpenAIBackend(server.base_url, "m", retries=1)
        try:
            with pytest.raises(ServerRefused) as info:
                backend.complete(_request())
        finally:
            backend.close()
    assert isinstance(info.value, BackendError) and info.value.fatal and info.value.exit_status == 3
    assert info.value.faults == {"http-401": 2} and backend.stats == Counter(
        {"requests": 1, "attempts": 2, "retries": 1, "failures": 1, "http-401": 2})


def _request():
    from r1track.backends.ncc import NCCBackend
    from r1track.tracker import Tracker, TrackerParams

    seq = make_sequence("s", n_frames=2, size=(160, 120), seed=3)
    tracker = Tracker(NCCBackend(), TrackerParams(crop_size=112))
    tracker.initialize(seq.frames[0], seq.boxes_xywh_orig[0])
    return tracker.build_request(seq.frames[1], prepare=False)


# -- row 5: a full disk ----------------------------------------------------------------------------------------

def _unshare_works() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.fixture(scope="module")
def long_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("long") / "GOT10k"
    write_got10k_split(root, "val", n_sequences=3, n_frames=100, size=(160, 120), seed=6)
    return root


@pytest.mark.parametrize("disk", [pytest.param("full tmpfs", marks=pytest.mark.slow), "file size limit"])
def test_a_full_disk_stops_the_run_cleanly_naming_the_folder_and_a_rerun_resumes(long_dataset, tmp_path, disk):
    """Before: raw chained tracebacks, no summary, no run.json. ``full tmpfs``: a 20 KiB tmpfs mounted in a user
    namespace (a real ENOSPC; skipped where unprivileged namespaces are off). ``file size limit``:
    RLIMIT_FSIZE of 4 KiB, so the growing replay logs fail (EFBIG) while run.json still fits: it is written,
    saying why the run stopped."""
    if disk == "full tmpfs" and not _unshare_works():
        pytest.skip("no unprivileged user and mount namespaces here (unshare -rm)")
    folder = tmp_path / "disk"
    folder.mkdir()
    out = folder / "out"
    kept = tmp_path / "kept"  # the run folder copied out of the tmpfs (it vanishes with the namespace)
    with OpenAIServer(responder=wobble_responder) as server:
        args = [sys.executable, "-m", "r1track", *eval_args(long_dataset, out, server.base_url, "--model", "fake-model")]
        if disk == "full tmpfs":
            script = (f"mount -t tmpfs -o size=20k tmpfs {folder} && {shlex.join(args)}; rc=$?; "
                      f"cp -r {out} {kept}; exit $rc")
            proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300)
        else:
            import resource

            proc = subprocess.run(args, capture_output=True, text=True, timeout=300,
                                  preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096)))
            shutil.copytree(out, kept)
        reason = "No space left on device" if disk == "full tmpfs" else "File too large"
        assert proc.returncode == ExitStatus.RUN_FAILED, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
        assert f"STOPPED: the run folder {out} could not be written" in proc.stdout
        assert f"cannot write {out}" in proc.stdout and reason in proc.stdout
        assert "requests:" in proc.stdout and "run the same command again to resume" in proc.stdout
        if disk == "file size limit":  # small files still fit: run.json is written and says why
            doc = run_json(kept)
            assert reason in doc["output_error"] and doc["totals"]["failed"] >= 1
        # results stay correct and resumable: the same command on a disk with room finishes the run
        rerun = tmp_path / "rerun"
        shutil.copytree(kept, rerun)
        with OpenAIServer(responder=wobble_responder) as server2:
            assert main(eval_args(long_dataset, rerun, server2.base_url, "--model", "fake-model")) == 0
            clean = tmp_path / "clean"
            assert main(eval_args(long_dataset, clean, server2.base_url, "--model", "fake-model")) == 0
    assert same_results(rerun, clean)


# -- row 7: the small items ------------------------------------------------------------------------------------

def test_a_truncated_first_frame_is_not_trackable_naming_the_file(tmp_path, capsys):
    """Before: "FAILED ... ValueError". The header reads (so the start check passes) but the pixels do not."""
    root = tmp_path / "GOT10k"
    write_got10k_split(root, "val", n_sequences=2, n_frames=6, size=(160, 120), seed=5)
    first = root / "val" / "GOT-10k_Val_000001" / "00000001.jpg"
    corrupt_jpeg(first)
    with OpenAIServer() as server:
        rc = main(eval_args(root, tmp_path / "out", server.base_url, "--model", "fake-model"))
    text = capsys.readouterr().out
    assert rc == ExitStatus.RUN_FAILED and "1 not trackable as stored" in text and "0 failed" in text
    assert f"NOT TRACKED {first}: cannot decode image" in text and "(unreadable_frame); the first frame is needed" in text
    assert "ValueError" not in text
    assert [s["status"] for s in run_json(tmp_path / "out")["sequences"]] == ["bad-data", "done"]


#: ``r1track data build`` as the command line runs it, held after its 20th written sample (the render workers are up
#: and rendering) until the test interrupts it: waiting for files to appear raced the end of a one-second build on a
#: loaded CI machine. The driver first gives SIGINT Python's own handler: a test run started as a background job of a
#: non-interactive shell inherits SIGINT *ignored* (POSIX), and Python keeps an ignored SIGINT, so the build would
#: never see the Ctrl-C (two local CI runs started with ``&`` failed so). The hold sleeps in 0.1-s slices: Python acts
#: on a signal in the main thread at its next bytecode, whichever thread the kernel delivered it to.
_HELD_BUILD = """
import functools, pathlib, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
import r1track.data.build as b
from r1track.cli import main
flag = pathlib.Path(sys.argv[1])
def hold(n):
    if n == 20:
        flag.write_text("rendering")
        for _ in range(1200):
            time.sleep(0.1)
b.build = functools.partial(b.build, _after_sample=hold)
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.slow  # two render processes in a subprocess (about 3 s): CI runs it
def test_an_interrupted_parallel_build_prints_no_worker_traceback(tmp_path):
    """Ctrl-C reaches the whole process group: before, every render worker printed its own traceback."""
    root = tmp_path / "d"
    write_got10k_split(root, "train", n_sequences=6, n_frames=40, size=(640, 480), seed=5)
    out, flag = tmp_path / "set", tmp_path / "rendering.flag"
    proc = subprocess.Popen([sys.executable, "-c", _HELD_BUILD, str(flag), "data", "build", f"got10k:{root}@train",
                             "--out", str(out), "--samples-per-sequence", "200", "--workers", "2", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not flag.exists():
        time.sleep(0.05)
    assert flag.exists() and proc.poll() is None, proc.communicate(timeout=60)
    assert len(list(tmp_path.glob(".set.partial-*/llamafactory/**/*.jpg"))) >= 20  # mid-build, workers up
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == ExitStatus.INTERRUPTED, err
    assert "Traceback" not in err and "Process SpawnPoolWorker" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip().splitlines()[-1] == "r1track: interrupted"
    assert not out.exists() and not list(tmp_path.glob(".set.partial-*"))


def test_build_counts_a_bad_frame_once_and_names_degenerate_boxes(tmp_path):
    root = tmp_path / "GOT10k"
    write_got10k_split(root, "train", n_sequences=2, n_frames=30, size=(320, 240), seed=5)
    seq = root / "train" / "GOT-10k_Train_000001"
    corrupt_jpeg(seq / "00000005.jpg")  # its header reads: found only when a sample renders it
    gt = seq.parent / "GOT-10k_Train_000002" / "groundtruth.txt"
    rows = gt.read_text().splitlines()
    rows[9] = "10,100,300,0.0001"  # a valid box, 1e-4 px high: empty once cut into a crop and rounded
    gt.write_text("\n".join(rows) + "\n")
    out = tmp_path / "set"
    assert main(["data", "build", f"got10k:{root}@train", "--out", str(out), "--samples-per-sequence", "60", "--quiet"]) == 0
    doc = json.loads((out / "stats.json").read_text())
    dropped = doc["samples"]["dropped"]
    assert dropped["unreadable_frame"] >= 2  # several samples used the bad frame ...
    assert doc["frames"]["skipped"]["unreadable_frame"] == 1  # ... it is one frame
    bad = [i for i in doc["issues"] if i["reason"] == "unreadable_frame"]
    assert len(bad) == 1 and bad[0]["path"].endswith("00000005.jpg")
    degenerate = [i for i in doc["issues"] if i["reason"] == "degenerate_box"]
    assert dropped["degenerate_box"] == len(degenerate) >= 1 and "degenerate_box" not in doc["frames"]["skipped"]
    assert all(i["path"] == str(gt.parent) and "ground-truth row 10 (1-based)" in i["detail"] for i in degenerate)


def test_build_help_lists_every_drop_reason(capsys):
    from r1track.reasons import REASONS

    with pytest.raises(SystemExit):
        main(["data", "build", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    missing = [r for r in REASONS if r not in text and r not in ("no_usable_frames", "no_image_size")]
    assert not missing and "degenerate_box" in text


def test_a_file_where_the_plugin_folder_goes_is_named_as_such(tmp_path, capsys):
    """Before: "cannot write in .../r1track (permission denied or read-only)"."""
    pt = tmp_path / "pytracking"
    (pt / "pytracking" / "tracker" / "base").mkdir(parents=True)
    (pt / "pytracking" / "tracker" / "base" / "basetracker.py").write_text("")
    (pt / "pytracking" / "tracker" / "r1track").write_text("not a folder")
    assert main(["install", "--pytracking", str(pt)]) == ExitStatus.USAGE
    err = capsys.readouterr()
    text = err.out + err.err
    assert f"{pt / 'pytracking' / 'tracker' / 'r1track'}: a file sits where r1track needs a folder" in text
    assert "permission denied" not in text
    assert (pt / "pytracking" / "tracker" / "r1track").read_text() == "not a folder"
