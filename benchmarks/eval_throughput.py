"""Frames per second of `r1track eval`: against the reference design, with the client as the bottleneck, and
near a fast server's capacity, with one and with several client processes (``--workers``).

The server (``python -m r1track.testing.openai_server``, its own process) answers every request after a
fixed latency and processes at most ``capacity`` requests at once, so it can serve at most
``capacity / latency`` frames/s, like a vLLM engine with a full batch. Every scenario tracks the same
synthetic sequences (GOT-10k layout, written once). Scenarios (``--scenario``, default all):

* ``reference``: **r1track eval** (hundreds of sequences in flight from one event loop, keep-alive
  connections, the template encoded once per sequence, ``--decode`` fast by default) against the **reference
  design** (R1-Track's ``infer_script/r1track.py``, rewritten here from its description: 8 sequences in
  flight, every frame fully decoded, template *and* search encoded for every request, a new HTTP connection
  per request) at ``--latency`` / ``--capacity`` (default 0.5 s, 128: 256 frames/s). The reference runs on
  the first ``--reference-sequences`` sequences (its rate is steady after the first second).
* ``client-bound``: the server in its cheapest mode (a fixed reply, request bodies not parsed, no latency,
  no capacity limit), so the client alone sets the pace: frames/s, the client's CPU milliseconds per frame
  and the cores it kept busy (all its processes and threads: decoding, cropping and encoding run in a thread
  pool and release the GIL, so one process already uses more than one core) for each ``--workers`` count,
  and the ratio to one worker.
* ``high-capacity``: a server faster than one client core can feed (``--fast-latency`` 0.2 s x
  ``--fast-capacity`` 128 = 640 frames/s): frames/s and share of the capacity per worker count.

Against a real server (a GPU machine with ``vllm serve``; see docs/tracking_and_serving.md) ``--server URL --model NAME`` runs
``r1track eval`` for each ``--workers`` count against it instead (its capacity is unknown: no share shown).

    python benchmarks/eval_throughput.py                                  # every scenario, fake servers
    python benchmarks/eval_throughput.py --scenario client-bound --workers 1,2
    python benchmarks/eval_throughput.py --server http://127.0.0.1:8000/v1 --model WangBiao/R1-Track-GRPO-wo-Think-100k \
        --workers 1,2,4 --data /data/GOT-10k
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from r1track.backends.openai import encode_data_url
from r1track.boxes import xywh_to_xyxy, xyxy_to_xywh
from r1track.crop import DecodeMode, load_image, plan_window, render_crop
from r1track.data import read_got10k
from r1track.evaluate import EvalSettings, evaluate
from r1track.prompts import render_chat_content
from r1track.synthetic import write_got10k_split
from r1track.tracker import TrackerParams

REPLY = "[120,120,216,216]"


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_server(latency: float, capacity: int | None) -> tuple[subprocess.Popen, str]:
    """The fake server in its cheapest mode (fixed reply, bodies not parsed); ``capacity`` None: unlimited."""
    port = free_port()
    limit = ["--capacity", str(capacity)] if capacity else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "r1track.testing.openai_server", "--port", str(port), "--latency", str(latency),
         *limit, "--reply", REPLY],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                conn.close()
                return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("fake server did not start")


def reference_sequence(seq, port: int, params: TrackerParams) -> int:
    """R1-Track's loop for one sequence: full decode, both crops encoded per frame, a new connection per request."""
    first = Image.open(seq.frames[0]).convert("RGB")
    t_win = plan_window(seq.boxes_xywh_orig[0], params.template_factor, params.crop_size)
    template = render_crop(load_image(first), t_win)
    t_box = template.transform.xyxy_orig_to_crop(xywh_to_xyxy(seq.boxes_xywh_orig[0]))
    box = tuple(seq.boxes_xywh_orig[0])
    for path in seq.frames[1:]:
        frame = Image.open(path).convert("RGB")  # full-resolution decode
        window = plan_window(box, params.search_factor, params.crop_size)
        search = render_crop(load_image(frame), window)
        urls = [encode_data_url(template.image), encode_data_url(search.image)]  # the template re-encoded every frame
        body = {"model": "fake-model", "messages": [{"role": "user", "content": render_chat_content(
            params.prompt_version, think=False, boxes_xyxy_model=[t_box], image_urls=urls)}],
                "temperature": 0, "max_tokens": 48}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)  # a new connection per request
        conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
        answer = json.loads(conn.getresponse().read())["choices"][0]["message"]["content"]
        conn.close()
        x1, y1, x2, y2 = json.loads(answer)
        new = xyxy_to_xywh(search.transform.xyxy_crop_to_orig((x1, y1, x2, y2)))
        if new.w > 1 and new.h > 1:
            box = tuple(new)
    return len(seq.frames) - 1


def client_cpu_s() -> float:
    """CPU seconds of this process and of its children that ended (the eval workers; not the server, which
    is still running when this is read)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds of a running process (Linux ``/proc``; None elsewhere)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def run_eval(seqs, out: Path, urls: tuple[str, ...], model: str | None, params: TrackerParams, concurrency: int,
             workers: int, server_pid: int | None = None) -> dict:
    """One ``r1track eval`` run: frames, wall seconds, client CPU seconds (and the server's, when known)."""
    shutil.rmtree(out, ignore_errors=True)
    srv0 = process_cpu_s(server_pid) if server_pid else None
    cpu0, t0 = client_cpu_s(), time.perf_counter()
    run = evaluate(seqs, EvalSettings(out_dir=out, backend="openai", servers=urls, model=model, concurrency=concurrency,
                                      params=params, progress=False, workers=workers))
    dt, cpu = time.perf_counter() - t0, client_cpu_s() - cpu0
    srv1 = process_cpu_s(server_pid) if server_pid else None
    failed = [o.name for o in run.outcomes if o.status != "done"]
    if failed:
        raise RuntimeError(f"sequences not done: {failed[:5]}")
    return {"frames": run.frames_tracked, "seconds": dt, "cpu_s": cpu,
            "server_cpu_s": (srv1 - srv0) if srv0 is not None and srv1 is not None else None}


def scenario_reference(args, seqs, params, tmp) -> None:
    capacity_fps = args.capacity / args.latency
    rows = []
    proc, url = start_server(args.latency, args.capacity)
    try:
        conc = args.concurrency or 2 * args.capacity
        r = run_eval(seqs, tmp / "out", (url,), "fake-model", params, conc, 1)
        rows.append(("r1track eval", conc, r["frames"], r["seconds"]))
    finally:
        proc.terminate()
        proc.wait()
    proc, url = start_server(args.latency, args.capacity)
    try:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        ref = seqs[: args.reference_sequences]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            frames = sum(pool.map(lambda s: reference_sequence(s, port, params), ref))
        rows.append(("reference design", 8, frames, time.perf_counter() - t0))
    finally:
        proc.terminate()
        proc.wait()
    ref_fps = rows[1][2] / rows[1][3]
    print(f"\n## reference: server latency {args.latency:g} s, capacity {args.capacity} requests at once -> at most "
          f"{capacity_fps:.0f} frames/s")
    print("| design | in flight | frames | seconds | frames/s | share of capacity | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, conc, frames, dt in rows:
        fps = frames / dt
        print(f"| {name} | {conc} | {frames} | {dt:.1f} | {fps:.1f} | {fps / capacity_fps:.0%} | {fps / ref_fps:.1f}x |")


def scenario_workers(title: str, args, seqs, params, tmp, latency: float, capacity: int | None,
                     urls: tuple[str, ...] = (), model: str | None = "fake-model") -> None:
    capacity_fps = capacity / latency if capacity and latency > 0 else None
    rows = []
    for workers in args.workers:
        proc = None
        if not urls:
            proc, server_url = start_server(latency, capacity)
        try:
            r = run_eval(seqs, tmp / f"out-w{workers}", urls or (server_url,), model, params, args.concurrency or 512,
                         workers, proc.pid if proc else None)
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait()
        rows.append((workers, r))
    base = rows[0][1]["frames"] / rows[0][1]["seconds"]
    limit = f"at most {capacity_fps:.0f} frames/s" if capacity_fps else "a real server" if urls else "no capacity limit"
    print(f"\n## {title}: {limit}; {os.cpu_count()} CPU cores")
    print("| workers | frames | seconds | frames/s | vs 1 worker | client CPU ms/frame | client cores busy | "
          "server CPU ms/frame | share of capacity |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for workers, r in rows:
        fps = r["frames"] / r["seconds"]
        srv = f"{1000 * r['server_cpu_s'] / r['frames']:.2f}" if r["server_cpu_s"] is not None else "-"
        share = f"{fps / capacity_fps:.0%}" if capacity_fps else "-"
        print(f"| {workers} | {r['frames']} | {r['seconds']:.1f} | {fps:.1f} | {fps / base:.2f}x | "
              f"{1000 * r['cpu_s'] / r['frames']:.2f} | {r['cpu_s'] / r['seconds']:.2f} | {srv} | {share} |")
    print(f"(load average {os.getloadavg()[0]:.1f} at the end: other work on the machine takes cores too)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", choices=["all", "reference", "client-bound", "high-capacity"], default="all",
                    help="what to measure (default all; with --server: the worker counts against it)")
    ap.add_argument("--latency", type=float, default=0.5, help="reference: seconds per request at the server (default 0.5)")
    ap.add_argument("--capacity", type=int, default=128, help="reference: requests the server processes at once (default 128)")
    ap.add_argument("--fast-latency", type=float, default=0.2, help="high-capacity: seconds per request (default 0.2)")
    ap.add_argument("--fast-capacity", type=int, default=128, help="high-capacity: requests at once (default 128)")
    ap.add_argument("--workers", default="1,2", help="client process counts to compare (default 1,2)")
    ap.add_argument("--sequences", type=int, default=256, help="sequences (default 256)")
    ap.add_argument("--frames", type=int, default=21, help="frames per sequence (default 21)")
    ap.add_argument("--size", default="640x480", help="frame size WxH (default 640x480)")
    ap.add_argument("--concurrency", type=int, default=None,
                    help="sequences in flight (default: 2 x capacity for the reference scenario, else 512)")
    ap.add_argument("--reference-sequences", type=int, default=24, help="sequences for the reference design (default 24)")
    ap.add_argument("--server", action="append", default=[], metavar="URL",
                    help="a real OpenAI-compatible server (vllm serve) instead of the fake ones (repeatable: one per GPU)")
    ap.add_argument("--data", help="track this GOT-10k root's val split instead of synthetic sequences")
    ap.add_argument("--model", default=None, help="with --server: the served model name (default: the server's first)")
    ap.add_argument("--decode", choices=[m.value for m in DecodeMode], default=DecodeMode.FAST.value,
                    help="r1track's decode mode (TrackerParams.decode; default fast, the mode the throughput targets "
                         "are stated in; r1track eval's own default is exact)")
    args = ap.parse_args()
    args.workers = [int(v) for v in args.workers.split(",") if v.strip()]
    w, h = (int(v) for v in args.size.lower().split("x"))
    tmp = Path(tempfile.mkdtemp(prefix="r1track-bench-"))
    try:
        params = TrackerParams(decode=args.decode)
        if args.data:
            seqs = list(read_got10k(args.data, "val"))
            print(f"{len(seqs)} sequences of {args.data} (val), crops {params.crop_size} px, --decode {params.decode}")
        else:
            print(f"writing {args.sequences} sequences x {args.frames} frames of {w}x{h} ...", file=sys.stderr)
            write_got10k_split(tmp / "data", "val", n_sequences=args.sequences, n_frames=args.frames, size=(w, h), seed=1)
            seqs = list(read_got10k(tmp / "data", "val"))
            print(f"{args.sequences} sequences x {args.frames - 1} tracked frames of {w}x{h}, crops {params.crop_size} px, "
                  f"--decode {params.decode}")
        if args.server:
            scenario_workers(f"real server(s) {', '.join(args.server)}", args, seqs, params, tmp, 0.0, None,
                             urls=tuple(args.server), model=args.model)
            return 0
        if args.scenario in ("all", "client-bound"):
            scenario_workers("client-bound (fixed reply, no latency, unlimited capacity)", args, seqs, params, tmp, 0.0, None)
        if args.scenario in ("all", "high-capacity"):
            scenario_workers(f"high-capacity (latency {args.fast_latency:g} s x capacity {args.fast_capacity})", args,
                             seqs, params, tmp, args.fast_latency, args.fast_capacity)
        if args.scenario in ("all", "reference"):
            scenario_reference(args, seqs, params, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
