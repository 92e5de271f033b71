"""``r1track track``: follow one target through one video and write the boxes and an annotated video."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Track one target through one video (a folder of frames, or a video file with PyAV installed) and write:

  OUT/boxes.txt     x,y,w,h per frame (original pixels, full precision; frame 1 = the initial box)
  OUT/frames.jsonl  per frame: status (ok, absent or the fallback reason), the model's reply, seconds (and,
                    with a visibility prompt, object_presence_score and redetect)
  OUT/track.gif     the frames with the box drawn (--annotated NAME.mp4 for MP4, needs PyAV)

Start from a box (--init x,y,w,h, 0-based pixels of the first frame) or from a description (--text, Qwen's
grounding answer; needs a model: the openai, transformers or vllm backend). Backends, presets and tracker
settings as in 'r1track eval'; without a server: --backend transformers --model CHECKPOINT (CPU works).
A box that misses the first frame or is more than twice its size is refused. A missing frame (a gap in the
file numbering) or an undecodable one keeps the last box (status missing_frame / unreadable_frame /
image_too_large in frames.jsonl) and is left out of the annotated video.

When the server gives no reply for --max-consecutive-faults frames in a row (or --max-fault-seconds, counted
inside every request: the model lookup, text initialisation, frames), the run stops with exit status 1 and
writes no output files: boxes made by repeating the last one are no track. A server that cannot be asked for
its model at the start ends the run the same way, the message naming the cause first. A reply without any
text (null content, no choice: the server's fault, frame status no-content) counts as no reply here; and when
at least 90 % of the frames asked got no usable reply, the model never answered: exit status 1, no output
files, the cause named.

Exit status: 0 done; 1 stopped (the server gave no usable reply) or the output could not be written (the
message names the folder: a full disk); 2 usage or input error; 3 the server refused the request (HTTP 401
or 403: the API key; a 3xx redirect: the URL -- r1track follows none) on every attempt.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    from .tracking import add_backend_arguments, add_tracker_arguments

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
    add_backend_arguments(p, ground_truth=False)
    add_tracker_arguments(p)
    p.set_defaults(func=run)


def parse_box(text: str) -> tuple[float, float, float, float]:
    from . import CommandError

    try:
        values = tuple(float(v) for v in text.replace(" ", ",").split(",") if v)
    except ValueError:
        values = ()
    if len(values) != 4 or values[2] <= 0 or values[3] <= 0:
        raise CommandError(f"--init must be x,y,w,h with positive w and h, got {text!r}")
    return values  # type: ignore[return-value]


def _frames(video: str):
    """Frames of ``video``: for a folder, its files by frame number with None for a gap in the numbering
    (a missing frame); for a video file, its decoded frames."""
    from pathlib import Path

    from ..data.checks import numbered_slots
    from ..data.sequences import list_frames
    from ..video import iter_frames

    if Path(video).is_dir():
        files = list_frames(video)
        slots = numbered_slots(files, from_lowest=True) if files else None
        if files and slots is None:
            raise ValueError(f"{video}: two frame files carry the same frame number")
        if files:
            return iter(slots)
    return iter_frames(video)


def _check_first(first, init_box, video: str) -> None:
    """CommandError (naming the file) when the first frame cannot start tracking or the box is unusable on it."""
    import numpy as np

    from . import CommandError
    from ..data.checks import box_problem, read_image_header

    if first is None:
        raise CommandError(f"{video}: the first frame is missing (the numbering starts with a gap)")
    if isinstance(first, np.ndarray):
        size = (first.shape[1], first.shape[0])
    else:
        size, reason, detail = read_image_header(first)
        if size is None:
            raise CommandError(f"{first}: {detail} ({reason}); the first frame is needed to start")
    if init_box is not None:
        problem = box_problem(init_box, size)
        if problem is not None:
            where = f"first frame {first}" if not isinstance(first, np.ndarray) else "first frame"
            raise CommandError(f"--init {','.join(f'{v:g}' for v in init_box)} is unusable on the {size[0]}x{size[1]} "
                               f"{where} ({problem})")


def run(args: argparse.Namespace) -> int:
    import itertools
    import json
    import sys
    import time
    from pathlib import Path

    from ..backends import BACKENDS, BackendError, ServerRefused, get_backend_spec, make_backend
    from ..backends.model_lookup import LookupFailed, ModelLookup
    from . import CommandError
    from ..exitcodes import ExitStatus
    from ..faults import FaultGuard, FaultRecord, RequestKind, SequenceStopped, format_summary
    from ..fsutil import atomic_output
    from ..progress import progress_bar
    from ..results import format_number
    from ..tracker import SKIP_STATUSES, Status, Tracker, TrackerInitError
    from ..video import AnnotatedWriter, annotate, count_frames
    from .tracking import backend_options, fault_policy, resolve_settings

    init_box = parse_box(args.init) if args.init else None
    policy = fault_policy(args)
    record = FaultRecord()  # every request: the model lookup, text initialisation, frames
    lookup = ModelLookup(on_lookup=lambda url, attempts, faults: record.add_request(RequestKind.LOOKUP, attempts, faults))
    try:
        resolved = resolve_settings(args, lookup=lookup, deadline=time.monotonic() + policy.max_fault_seconds)
        frames = _frames(args.video)
        first = next(frames)
    except LookupFailed as exc:
        if not exc.retryable:  # exit status 3 when the server refused, else 2: another URL, model or setting
            raise CommandError(str(exc), status=exc.exit_status) from None
        print(format_summary(record), file=sys.stderr)
        print(f"r1track track: {exc}\nnothing was tracked; run it again once the server answers", file=sys.stderr)
        return ExitStatus.RUN_FAILED
    except StopIteration:
        raise CommandError(f"{args.video}: no frames") from None
    except (ValueError, RuntimeError) as exc:
        raise CommandError(str(exc)) from None
    spec = get_backend_spec(resolved.backend)
    if args.text and not spec.grounding:
        raise CommandError(f"--text needs a model: use --backend {' or '.join(n for n, b in BACKENDS.items() if b.grounding)}")
    _check_first(first, init_box, args.video)
    print(f"settings: {resolved.message}", file=sys.stderr)
    out = Path(args.out)
    opts = backend_options(args, spec.name, resolved.params)
    if spec.needs_server:
        opts.update(base_url=args.server[0] if args.server else None, model=args.model, lookup=lookup)
    elif spec.in_process:
        opts.update(model=args.model)
    try:
        backend = make_backend(spec.name, **opts)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    tracker = Tracker(backend, resolved.params, name=Path(args.video).name)
    guard = FaultGuard(policy, getattr(backend, "base_url", backend.label))  # its clock starts at the first request
    writer = AnnotatedWriter(out / args.annotated, fps=args.fps)
    boxes, rows = [], []
    try:
        with progress_bar(count_frames(args.video), "tracking") as bar:
            pairs = _pairs(itertools.chain([first], frames), tracker, init_box, args.text, guard.deadline)
            for k, (frame, r) in enumerate(pairs, start=1):
                record.add_frame(r)
                if r.status is not Status.INIT:
                    guard.observe(r)
                boxes.append(tuple(r.box_xywh_orig))
                row = {"frame": k, "status": r.status, "reply": r.reply, "seconds": r.timing.total_s}
                if r.status is not Status.INIT:
                    row.update(detail=r.detail, attempts=r.attempts, faults=r.faults)
                if tracker.params.visibility_aware:
                    row["object_presence_score"] = r.object_presence_score
                    row["redetect"] = r.redetect
                rows.append(row)
                if r.status in SKIP_STATUSES:  # a missing or undecodable frame has no picture to annotate
                    print(f"r1track track: {r.detail} ({r.status}); the last box is kept", file=sys.stderr)
                else:
                    colour = (255, 255, 0) if r.status is Status.INIT else (0, 255, 0) if r.ok else (255, 64, 64)
                    writer.add(annotate(frame, r.box_xywh_orig, label=f"{k} {r.status}", colour=colour, max_side=args.max_side))
                bar.update(1)
        guard.finish()  # the model never answered usably: no track
    except SequenceStopped as exc:
        writer.abort()
        print(format_summary(record), file=sys.stderr)
        where = "at the end" if exc.never_answered else f"at frame {len(boxes) + 1}"
        print(f"r1track track: STOPPED {where}, no output files written: {_no_reply(backend, exc)}\n"
              "run it again once the server answers", file=sys.stderr)
        return ExitStatus.RUN_FAILED
    except ServerRefused as exc:
        writer.abort()
        raise CommandError(str(exc), status=ExitStatus.SERVER_REFUSED) from None
    except BackendError as exc:
        writer.abort()
        if exc.fatal:
            raise CommandError(str(exc)) from None
        # only text initialisation raises a passing fault: the sequence cannot start without its answer
        record.add_request(RequestKind.TEXT_INIT, exc.attempts, exc.faults)
        print(format_summary(record), file=sys.stderr)
        print(f"r1track track: STOPPED at the first frame (text initialisation), no output files written: "
              f"{_no_reply(backend, exc)}\nrun it again once the server answers", file=sys.stderr)
        return ExitStatus.RUN_FAILED
    except (TrackerInitError, ValueError, RuntimeError) as exc:
        writer.abort()
        raise CommandError(str(exc)) from None
    except BaseException:
        writer.abort()
        raise
    finally:
        backend.close()
    written: list[str] = []
    try:
        with atomic_output(out / "boxes.txt", "w") as f:
            f.writelines(",".join(format_number(v) for v in b) + "\n" for b in boxes)
        written.append("boxes.txt")
        with atomic_output(out / "frames.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        written.append("frames.jsonl")
        video_path = writer.close()
    except OSError as exc:  # a full disk, a quota, a read-only folder: every file is whole or absent
        writer.abort()
        print(format_summary(record), file=sys.stderr)
        print(f"r1track track: cannot write to {out}: {exc.strerror or exc}; "
              f"{'written: ' + ', '.join(written) if written else 'nothing was written'} (no file is half-written); "
              "free space or use another -o, then run it again", file=sys.stderr)
        return ExitStatus.RUN_FAILED
    print(f"tracked {len(boxes)} frames with {backend.label}", file=sys.stderr)
    print(format_summary(record), file=sys.stderr)
    print(f"boxes: {out / 'boxes.txt'}\nper frame: {out / 'frames.jsonl'}\nannotated: {video_path}")
    return ExitStatus.OK


def _pairs(frames, tracker, init_box, text, deadline):
    """(frame, result) pairs of :meth:`Tracker.run` (each request answered by ``deadline()``), keeping each frame
    for the annotated output."""
    seen: list = []

    def remember():
        for frame in frames:
            seen.append(frame)
            yield frame

    for result in tracker.run(remember(), init_box, text=text, deadline=deadline):
        yield seen.pop(0), result


def _no_reply(backend, exc: Exception) -> str:
    """Why tracking stopped, cause first: no (usable) reply from the backend's URL (when it has one; saying when it
    is the default), then the fault policy's account."""
    url = getattr(backend, "base_url", None)
    if url is None:
        return str(exc)
    from ..backends.model_lookup import Hints

    source = getattr(backend, "url_source", "given")
    origin = f" ({Hints().default})" if source == "default" else f" (from {source})" if source != "given" else ""
    what = "no usable reply" if getattr(exc, "never_answered", False) else "no reply"  # replies without text
    return f"{what} from the server at {url}{origin}: {exc}"
