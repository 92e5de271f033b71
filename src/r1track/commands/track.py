"""``r1track track``: follow one target through one video and write the boxes and an annotated video."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Track one target through one video (a folder of frames, or a video file with PyAV installed) and write:

  OUT/boxes.txt     x,y,w,h per frame (original pixels, full precision; frame 1 = the initial box)
  OUT/frames.jsonl  per frame: status (ok or the fallback reason), the model's reply, seconds
  OUT/track.gif     the frames with the box drawn (--annotated NAME.mp4 for MP4, needs PyAV)

Start from a box (--init x,y,w,h, 0-based pixels of the first frame) or from a description (--text, Qwen's
grounding answer; needs the openai backend). Backends as in 'r1track eval' (openai, or the ncc baseline).

When the server gives no reply for --max-consecutive-faults frames in a row (or --max-fault-seconds), the
run stops with exit status 1 and writes no output files: boxes made by repeating the last one are no track.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    from .eval import add_backend_arguments, add_tracker_arguments

    p = sub.add_parser("track", help="track one video and write boxes and an annotated GIF/MP4", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", help="frame folder or video file")
    start = p.add_mutually_exclusive_group(required=True)
    start.add_argument("--init", help="initial box x,y,w,h in first-frame pixels")
    start.add_argument("--text", help="describe the target instead (text initialisation)")
    p.add_argument("-o", "--out", default="r1track-track", help="output folder (default: r1track-track)")
    p.add_argument("--annotated", default="track.gif", help="annotated output file name in OUT, .gif or .mp4 (default track.gif)")
    p.add_argument("--fps", type=float, default=10.0, help="frame rate of the annotated video (default 10)")
    p.add_argument("--max-side", type=int, default=640, help="longer side of the annotated frames in px (default 640)")
    add_backend_arguments(p, oracle=False)
    add_tracker_arguments(p)
    p.set_defaults(func=run)


def parse_box(text: str) -> tuple[float, float, float, float]:
    from ..cli import CommandError

    try:
        values = tuple(float(v) for v in text.replace(" ", ",").split(",") if v)
    except ValueError:
        values = ()
    if len(values) != 4 or values[2] <= 0 or values[3] <= 0:
        raise CommandError(f"--init must be x,y,w,h with positive w and h, got {text!r}")
    return values  # type: ignore[return-value]


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from ..backends import BackendError, make_backend
    from ..cli import CommandError
    from ..faults import FaultGuard, FaultRecord, SequenceStopped, format_summary
    from ..fsutil import atomic_output
    from ..results import format_number
    from ..tracker import Tracker, TrackerInitError
    from ..video import AnnotatedWriter, annotate, count_frames, iter_frames
    from .eval import backend_options, fault_policy, tracker_params

    if args.text and args.backend != "openai":
        raise CommandError("--text needs a model: use --backend openai")
    init_box = parse_box(args.init) if args.init else None
    try:
        params = tracker_params(args)
        frames = iter_frames(args.video)
        first = next(frames)
    except StopIteration:
        raise CommandError(f"{args.video}: no frames") from None
    except (ValueError, RuntimeError) as exc:
        raise CommandError(str(exc)) from None
    out = Path(args.out)
    policy = fault_policy(args)
    opts = backend_options(args)
    if args.backend == "openai":
        opts.update(base_url=args.server[0] if args.server else None, model=args.model)
    backend = make_backend(args.backend, **opts)
    tracker = Tracker(backend, params, name=Path(args.video).name)
    guard = FaultGuard(policy, getattr(backend, "base_url", backend.label))
    record = FaultRecord()
    writer = AnnotatedWriter(out / args.annotated, fps=args.fps)
    total = count_frames(args.video)
    try:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="frame", desc="tracking", dynamic_ncols=True)
    except ImportError:  # pragma: no cover
        bar = None
    boxes, rows = [], []
    try:
        init = tracker.initialize(first, init_box, text=args.text)
        boxes.append(tuple(init.box_xywh_orig))
        rows.append({"frame": 1, "status": "init", "reply": init.reply, "seconds": init.timing.total_s})
        writer.add(annotate(first, init.box_xywh_orig, label="1 init", colour=(255, 255, 0), max_side=args.max_side))
        if bar:
            bar.update(1)
        for k, frame in enumerate(frames, start=2):
            r = tracker.track(frame)
            record.add_frame(r)
            guard.observe(r)
            boxes.append(tuple(r.box_xywh_orig))
            rows.append({"frame": k, "status": r.status, "detail": r.detail, "reply": r.reply, "seconds": r.timing.total_s,
                         "attempts": r.attempts, "faults": r.faults})
            colour = (0, 255, 0) if r.ok else (255, 64, 64)
            writer.add(annotate(frame, r.box_xywh_orig, label=f"{k} {r.status}", colour=colour, max_side=args.max_side))
            if bar:
                bar.update(1)
    except SequenceStopped as exc:
        writer.abort()
        if bar:
            bar.close()
            bar = None
        print(format_summary(record), file=sys.stderr)
        print(f"r1track track: STOPPED at frame {len(boxes) + 1}, no output files written: {exc}\n"
              "run it again once the server answers", file=sys.stderr)
        return 1
    except (TrackerInitError, BackendError, ValueError, RuntimeError) as exc:
        writer.abort()
        raise CommandError(str(exc)) from None
    except BaseException:
        writer.abort()
        raise
    finally:
        if bar:
            bar.close()
        backend.close()
    with atomic_output(out / "boxes.txt", "w") as f:
        f.writelines(",".join(format_number(v) for v in b) + "\n" for b in boxes)
    with atomic_output(out / "frames.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    video_path = writer.close()
    print(f"tracked {len(boxes)} frames with {backend.label}", file=sys.stderr)
    print(format_summary(record), file=sys.stderr)
    print(f"boxes: {out / 'boxes.txt'}\nper frame: {out / 'frames.jsonl'}\nannotated: {video_path}")
    return 0
