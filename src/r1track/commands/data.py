"""``r1track data build``: training sets for LLaMA-Factory, EasyR1 and verl from tracking datasets."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import textwrap

DESCRIPTION = """\
Build a training set of (template, search) pairs or (template, memory, search) triples from
tracking datasets, for LLaMA-Factory (ShareGPT + JPEG), EasyR1 and verl (parquet).

DATASET is [KIND:]PATH[@SPLIT], KIND one of auto (default), got10k, lasot, trackingnet, generic:
  got10k:/data/GOT-10k@train     GOT-10k split (absence.label, cover.label: only visible frames)
  lasot:/data/LaSOT              LaSOT (full_occlusion.txt, out_of_view.txt; @FILE = split list)
  trackingnet:/data/TrackingNet  TrackingNet (all TRAIN_* chunks; @TRAIN_3 for one chunk)
  generic:/data/OTB              folders with groundtruth.txt / groundtruth_rect.txt
Without KIND the most specific layout signature decides (a list.txt alone is not GOT-10k; GOT-10k's label files
are). A KIND the folder does not match is refused, naming the layout it looks like. Visibility labels
(absence.label, cover.label, full_occlusion.txt, out_of_view.txt) are honoured whatever KIND reads them.

Profiles (--profile; options given here override the profile's settings):
{profiles}

The replay profile (r1track-replay) samples nothing: for every sequence it writes exactly the pairs the
tracker asks about when its model answers perfectly from the first box -- the template from frame 0 at the
template factor, each search crop around the previous frame's tracked box at the search factor, one crop side
(--crop-sizes N), the prompt and coordinates of the family. A sequence ends where the tracker would leave that
path (a frame without a usable target box; counted in stats.json, samples.replay.stopped). Track the same
sequences with 'r1track eval' and the same --model-family, --crop-size, --search-factor, --template-factor and
prompt, and the tracker asks the very same questions (docs/closed_loop.md: the closed-loop check).

Data problems are skipped and counted in stats.json by reason, the same names in every layout:
missing_frame, unreadable_frame, image_too_large (checked from the header, before decoding),
zero_area_box (NaN, negative or zero size), box_outside_image, oversized_box, invisible, and whole
sequences whose frames do not match their ground truth (frame_count_mismatch). A sample whose box rounds
to an empty box in its crop is dropped (degenerate_box; stats.json names its folder and ground-truth row),
a bad frame used by several samples is one issue and one skipped frame. Malformed files
(not numbers, not UTF-8) are errors naming file and line (exit status 2). DATASET may also be one
sequence folder. Same inputs, options and --seed give byte-identical outputs for any --workers.
Options that end up doing nothing (--absent-fraction on data without absent frames: the prompt then stays the
ordinary one) are named in a warning, also kept in stats.json.

Model family (--model-family, or inferred from --model): how the base model you will train sees images and
writes boxes. qwen2.5-vl (default; R1-Track's base): crops are multiples of 28 (default 336 px), boxes in
absolute pixels. qwen3-vl and qwen3.5: multiples of 32 from 256 to 512 (default 384 px), boxes as
integers on a 0-1000 grid of the crop. stats.json and samples.jsonl record the family.
"""

EPILOG = """\
examples:
  r1track data build got10k:/data/GOT-10k@train --workers 8
      -> datasets_info/r1track/ (LLaMA-Factory dataset 'r1track_train' of datasets_info/dataset_info.json)
  r1track data build /data/GOT-10k/train --profile r1track-5k --format llamafactory,easyr1,verl --out runs/track5k
  r1track data build /data/LaSOT --triples --crop-sizes 224,336 --max-gap 50 --format verl
  r1track data build got10k:/data/GOT-10k@train --model-family qwen3-vl --crop-sizes 256,320,384,448,512 \
      --out datasets_info/r1track-qwen3-vl --name r1track_qwen3vl --format llamafactory,easyr1,verl
  r1track data build generic:my_sequences --profile r1track-replay --crop-sizes 336 --out runs/replay
      -> the tracker's own questions on my_sequences (then: r1track eval my_sequences --crop-size 336 ...)
"""


def _floats(text: str, n: int | None = None) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if n is not None and len(vals) not in (1, n):
        raise argparse.ArgumentTypeError(f"expected 1 or {n} numbers, got {text!r}")
    return vals


def _range(text: str) -> tuple[float, float]:
    v = _floats(text, 2)
    return (v[0], v[0]) if len(v) == 1 else (v[0], v[1])


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip() and v.strip() != "none")


def _count_or_all(text: str) -> int:
    if text == "all":
        return 0
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'all', got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError("must be >= 1 (or 'all')")
    return v


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..crop import DecodeMode

    p = sub.add_parser("data", help="build training sets from tracking datasets", description="Training-data tools.")
    psub = p.add_subparsers(dest="data_command", metavar="ACTION")
    from ..data.profiles import DEFAULT_PROFILE, PROFILES

    profiles = "\n".join(textwrap.fill(f"{name}{' (default)' if name == DEFAULT_PROFILE else ''}: {cfg.description}",
                                        width=110, initial_indent="  ", subsequent_indent="      ")
                          for name, cfg in PROFILES.items())
    b = psub.add_parser(
        "build",
        help="build a training set (LLaMA-Factory / EasyR1 / verl)",
        description=DESCRIPTION.format(profiles=profiles),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b.add_argument("datasets", nargs="+", metavar="DATASET", help="input dataset(s), see above")
    b.add_argument("-o", "--out", default=None, help="output folder (default: datasets_info/r1track)")
    b.add_argument("--format", dest="formats", type=_names, default=("llamafactory",),
                   help="comma-separated: llamafactory, easyr1, verl (default: llamafactory)")
    b.add_argument("--profile", default=DEFAULT_PROFILE, metavar="PROFILE",
                   help=f"{', '.join(PROFILES)} (default {DEFAULT_PROFILE}; see above)")
    b.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    b.add_argument("--workers", type=int, default=1, help="render processes (default 1)")
    b.add_argument("--overwrite", action="store_true", help="replace an existing output folder (atomically)")
    b.add_argument("--name", default="r1track", help="LLaMA-Factory dataset name prefix: NAME_train, NAME_val (default r1track)")
    b.add_argument("--llamafactory-dataset-dir", default=None,
                   help="LLaMA-Factory dataset_dir the ShareGPT paths are relative to (default: the parent of --out)")
    b.add_argument("--no-progress", action="store_true", help="no progress bars")
    b.add_argument("--quiet", dest="no_progress", action="store_true", help=argparse.SUPPRESS)  # its first spelling
    m = b.add_argument_group("model family (default qwen2.5-vl)")
    m.add_argument("--model-family", default=None, help="qwen2.5-vl (default), qwen3-vl or qwen3.5")
    m.add_argument("--model", default=None, metavar="NAME|DIR",
                   help="the base model to train (hub name or local folder): its family is inferred from the name "
                        "or its config.json; a model of unknown family is refused")
    g = b.add_argument_group("sampling (defaults from the profile)")
    g.add_argument("--triples", action="store_true", default=None, help="template, memory, search (prompt r1track-mem-v1)")
    g.add_argument("--samples-per-sequence", type=int, default=None, help="samples per sequence (average when balancing)")
    g.add_argument("--num-samples", type=_count_or_all, default=None, help="cap on training samples, or 'all'")
    g.add_argument("--max-per-sequence", type=int, default=None, help="cap per sequence when balancing (default 3x samples per sequence)")
    g.add_argument("--max-gap", type=_count_or_all, default=None, help="largest template->search frame distance, or 'all'")
    g.add_argument("--memory-max-gap", type=int, default=None, help="largest memory->search frame distance (triples)")
    g.add_argument("--template-factor", type=_range, default=None, help="template area factor, F or LO,HI (uniform)")
    g.add_argument("--template-center-jitter", type=float, default=None, help="template centre shift, fraction of the window side")
    g.add_argument("--search-factor", type=_range, default=None, help="search area factor, F or LO,HI (uniform)")
    g.add_argument("--search-center-jitter", type=float, default=None, help="search centre shift U(-C,C) x window side")
    g.add_argument("--search-scale-jitter", type=_range, default=None, help="search window scale exp(U(log LO, log HI))")
    g.add_argument("--crop-sizes", type=_ints, default=None,
                   help="crop sides in px: multiples of 28 in 112..504 for qwen2.5-vl (e.g. 112,224,336,448), "
                        "of 32 in 256..512 for qwen3-vl / qwen3.5 (default: 336 / 384)")
    g.add_argument("--balance", type=_names, default=None, help="aspect,scale | aspect | scale | none")
    g.add_argument("--val-fraction", type=float, default=None, help="share of sequences held out for val")
    g.add_argument("--absent-fraction", type=float, default=None,
                   help="share of samples whose search frame has the target absent or fully covered (GOT-10k, LaSOT "
                        "labels), answered [] (default 0; profile r1track-vis: 0.2); switches the prompt to "
                        "r1track-vis-v1 unless --prompt is given")
    g.add_argument("--absent-from-empty-boxes", action="store_true", default=None,
                   help="generic folders: a NaN or zero-size box line means the target is absent (for absent samples)")
    t = b.add_argument_group("text and pixels")
    t.add_argument("--prompt", default=None, help="prompt version (r1track prompts show)")
    t.add_argument("--think", action=argparse.BooleanOptionalAction, default=None,
                   help="add the think instruction to the prompt (default: the profile's)")
    t.add_argument("--think-layout", choices=["images-first", "instruction-first"], default=None,
                   help="with --think: images, instruction, task (profile r1track) or instruction, images, task "
                        "(profile r1track-5k: the layout of R1-Track's think GRPO run)")
    t.add_argument("--fill", type=_ints, default=None, help="padding colour R,G,B (default 0,0,0)")
    t.add_argument("--jpeg-quality", type=int, default=None, help="JPEG quality of the crops (default 95)")
    t.add_argument("--decode", choices=[m.value for m in DecodeMode], default=None,
                   help="how frames are decoded for the crops: exact (default; full resolution, the pixels "
                        "'r1track eval' and 'track' send by default) or fast (JPEGs at the coarsest DCT scale the crop "
                        "needs: faster for large targets, the pixels of the trackers' --decode fast)")
    b.set_defaults(func=run_build)
    p.set_defaults(func=lambda args: p.print_help() or 0)


def _config(args: argparse.Namespace):
    """(sampler settings, the prompt to keep when no absent sample can be made -- set when ``--absent-fraction``
    alone switched the prompt -- or None)."""
    from ..data.profiles import get_profile
    from ..models import DEFAULT_FAMILY
    from ..prompts import get_prompt

    cfg = get_profile(args.profile)
    n_images = 3 if args.triples else None
    prompt = args.prompt
    if n_images == 3 and prompt is None and cfg.prompt != "r1track-mem-v1":
        prompt = "r1track-mem-v1"
    without_absent = None
    if args.absent_fraction and prompt is None and not get_prompt(cfg.prompt).absent:
        without_absent = cfg.prompt
        prompt = "r1track-vis-v1"  # the prompt that offers the absent answer
    num_samples = args.num_samples
    max_gap = args.max_gap
    changes = dict(
        n_images=n_images,
        samples_per_sequence=args.samples_per_sequence,
        max_per_sequence=args.max_per_sequence,
        memory_max_gap=args.memory_max_gap,
        template_factor=args.template_factor,
        template_center_jitter=args.template_center_jitter,
        search_factor=args.search_factor,
        search_center_jitter=args.search_center_jitter,
        search_scale_jitter=args.search_scale_jitter,
        crop_sides=args.crop_sizes,
        balance=args.balance,
        val_fraction=args.val_fraction,
        absent_fraction=args.absent_fraction,
        absent_from_empty_boxes=args.absent_from_empty_boxes,
        prompt=prompt,
        think=args.think,
        think_layout=args.think_layout,
        fill=args.fill,
        jpeg_quality=args.jpeg_quality,
        decode=args.decode,
    )
    if args.model_family is not None or args.model is not None:
        from ..models import resolve_family

        choice = resolve_family(family=args.model_family, model=args.model)
        if choice.warning:
            print(f"r1track data build: warning: {choice.warning}", file=sys.stderr)
        changes["model_family"] = choice.family.name
    else:
        changes["model_family"] = DEFAULT_FAMILY
    if n_images == 3 and not cfg.ordered:
        changes["ordered"] = True
    cfg = cfg.replace(**changes)
    if num_samples is not None:
        cfg = dataclasses.replace(cfg, num_samples=num_samples or None)
    if max_gap is not None:
        cfg = dataclasses.replace(cfg, max_gap=max_gap or None)
    return cfg, without_absent


def ineffective_flags(args: argparse.Namespace, cfg) -> list[str]:
    """One line per flag given on the command line that the other settings make do nothing."""
    out = []
    formats = set(args.formats)
    if args.think_layout is not None and not cfg.think:
        out.append(f"--think-layout {args.think_layout} does nothing without --think")
    if args.memory_max_gap is not None and cfg.n_images != 3:
        out.append("--memory-max-gap does nothing without --triples (there is no memory frame)")
    if args.max_per_sequence is not None and not cfg.balance:
        out.append("--max-per-sequence caps balanced sampling only, and --balance is none")
    if args.absent_from_empty_boxes and cfg.absent_fraction == 0:
        out.append("--absent-from-empty-boxes does nothing without --absent-fraction > 0")
    if args.llamafactory_dataset_dir is not None and "llamafactory" not in formats:
        out.append("--llamafactory-dataset-dir does nothing without --format llamafactory")
    if args.name != "r1track" and "llamafactory" not in formats:
        out.append("--name names the LLaMA-Factory datasets, and --format has no llamafactory")
    return out


def _print_report(result) -> None:
    s = result.stats
    seqs, smp = s["sequences"], s["samples"]
    print(f"wrote {result.out}  ({result.elapsed_s:.1f} s)")
    print(f"  profile {s['profile']}, model family {s['config']['model_family']}, seed {s['seed']}, "
          f"formats {', '.join(s['formats'])}")
    print(f"  sequences: {seqs['read']} read, {seqs['usable']} usable ({seqs['train']} train / {seqs['val']} val)"
          + (f", skipped {seqs['skipped']}" if seqs["skipped"] else ""))
    if s["frames"]["skipped"]:
        print(f"  frames skipped: {s['frames']['skipped']}")
    absent = smp.get("absent")
    print(f"  samples: train {smp['written']['train']}, val {smp['written']['val']}"
          + (f" (absent: train {absent['written']['train']}, val {absent['written']['val']}; asked "
             f"{absent['requested_fraction']:g})" if absent else "")
          + (f", dropped {smp['dropped']}" if smp["dropped"] else "")
          + f"; crop sides {s['crop_sides']}")
    for dim in ("aspect", "scale"):
        h = s["histograms"][dim]
        label = "log2(w/h)" if dim == "aspect" else "log2(sqrt(wh/WH))"
        print(f"  {dim} histogram, {label} (train; before = candidates, after = written; "
              f"evenness {h['spread_before']:.2f} -> {h['spread_after']:.2f}):")
        tb, ta = sum(h["before"]) or 1, sum(h["after"]) or 1
        for name, nb, na in zip(h["bins"], h["before"], h["after"]):
            print(f"    {name:>12}  {100 * nb / tb:5.1f}%  ->  {100 * na / ta:5.1f}%")
    if s.get("warnings"):
        print(f"  {len(s['warnings'])} warning(s), printed above and kept in stats.json")
    if "llamafactory" in s["outputs"]:
        names = ", ".join(s["outputs"]["llamafactory"]["dataset_info"])
        print(f"  LLaMA-Factory datasets: {names} (entries in {result.out / 'llamafactory' / 'dataset_info.json'})")


def run_build(args: argparse.Namespace) -> int:
    from . import CommandError
    from ..data.build import DEFAULT_OUT, BuildError, Source, build
    from ..data.sequences import DatasetError

    from ..data.layouts import LayoutMismatch

    try:
        cfg, without_absent = _config(args)
        for line in ineffective_flags(args, cfg):
            print(f"r1track data build: warning: {line}", file=sys.stderr)
        sources = [Source.parse(d) for d in args.datasets]
        result = build(
            sources,
            args.out or DEFAULT_OUT,
            cfg,
            formats=args.formats,
            seed=args.seed,
            workers=args.workers,
            overwrite=args.overwrite,
            llamafactory_dataset_dir=args.llamafactory_dataset_dir,
            name=args.name,
            progress=not args.no_progress,
            prompt_without_absent=without_absent,
        )
    except LayoutMismatch as exc:
        hint = f" ({exc.suggestion}:{exc.root}, or no KIND: to detect it)" if exc.suggestion else ""
        raise CommandError(f"{exc}{hint}") from None
    except (BuildError, DatasetError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    _print_report(result)
    return 0
