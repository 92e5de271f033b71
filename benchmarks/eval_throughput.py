"""Frames per second of `r1track eval` against a server that imitates vLLM, vs. the reference design.

The server (``python -m r1track.testing.openai_server``, its own process) answers every request after a
fixed latency and processes at most ``capacity`` requests at once, so it can serve at most
``capacity / latency`` frames/s, like a vLLM engine with a full batch. Both clients track the same
synthetic sequences (GOT-10k layout, written once):

* **r1track eval**: :func:`r1track.evaluate.evaluate` with hundreds of sequences in flight from one
  event loop, keep-alive connections, the template encoded once per sequence, reduced JPEG decoding.
* **reference design** (R1-Track's ``infer_script/r1track.py``, rewritten here from its description):
  8 sequences in flight (a thread pool of 8), every frame fully decoded, template *and* search encoded
  to base64 JPEG for every request, a new HTTP connection per request.

The reference needs minutes for the whole set at its rate, so it runs on the first
``--reference-sequences`` sequences (the same frames, fewer of them; its rate is steady after the first
second). Prints one table: frames/s, share of the server's capacity, ratio to the reference.

    python benchmarks/eval_throughput.py                      # defaults: latency 0.5 s, capacity 128
    python benchmarks/eval_throughput.py --latency 0.25 --capacity 64 --sequences 128
"""

from __future__ import annotations

import argparse
import http.client
import json
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
from r1track.crop import load_image, plan_window, render_crop
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


def start_server(latency: float, capacity: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "r1track.testing.openai_server", "--port", str(port), "--latency", str(latency),
         "--capacity", str(capacity), "--reply", REPLY],
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency", type=float, default=0.5, help="seconds per request at the server (default 0.5)")
    ap.add_argument("--capacity", type=int, default=128, help="requests the server processes at once (default 128)")
    ap.add_argument("--sequences", type=int, default=256, help="sequences (default 256)")
    ap.add_argument("--frames", type=int, default=21, help="frames per sequence (default 21)")
    ap.add_argument("--size", default="640x480", help="frame size WxH (default 640x480)")
    ap.add_argument("--concurrency", type=int, default=None, help="r1track's sequences in flight (default 2 x capacity)")
    ap.add_argument("--reference-sequences", type=int, default=24, help="sequences for the reference design (default 24)")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    capacity_fps = args.capacity / args.latency
    tmp = Path(tempfile.mkdtemp(prefix="r1track-bench-"))
    try:
        print(f"writing {args.sequences} sequences x {args.frames} frames of {w}x{h} ...", file=sys.stderr)
        write_got10k_split(tmp / "data", "val", n_sequences=args.sequences, n_frames=args.frames, size=(w, h), seed=1)
        seqs = list(read_got10k(tmp / "data", "val"))
        params = TrackerParams()
        rows = []

        proc, url = start_server(args.latency, args.capacity)
        try:
            conc = args.concurrency or 2 * args.capacity
            t0 = time.perf_counter()
            run = evaluate(seqs, EvalSettings(out_dir=tmp / "out", backend="openai", servers=(url,), model="fake-model",
                                              concurrency=conc, params=params, progress=False))
            dt = time.perf_counter() - t0
            rows.append(("r1track eval", conc, run.frames_tracked, dt))
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
            dt = time.perf_counter() - t0
            rows.append(("reference design", 8, frames, dt))
        finally:
            proc.terminate()
            proc.wait()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    ref_fps = rows[1][2] / rows[1][3]
    print(f"\nserver: latency {args.latency:g} s, capacity {args.capacity} requests at once -> at most {capacity_fps:.0f} frames/s; "
          f"frames {w}x{h}, crops {params.crop_size} px")
    print("| design | in flight | frames | seconds | frames/s | share of capacity | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, conc, frames, dt in rows:
        fps = frames / dt
        print(f"| {name} | {conc} | {frames} | {dt:.1f} | {fps:.1f} | {fps / capacity_fps:.0%} | {fps / ref_fps:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
