"""``r1track data build``: read -> check -> plan -> render (N processes) -> write, atomically.

Output folder (default ``datasets_info/r1track``)::

    <out>/stats.json             counts, skips by reason, histograms, crop sizes, the full config
    <out>/samples.jsonl          one line per sample: frames, windows, boxes in both frames, answer
    <out>/llamafactory/...       ShareGPT JSON + JPEGs + dataset_info.json entries   (--format)
    <out>/easyr1/{train,val}.parquet
    <out>/verl/{train,val}.parquet

Atomicity: everything is written into ``<parent>/.<name>.partial-<pid>`` and renamed to ``<out>``
only when complete, so ``<out>`` either does not exist or is a finished build; a crashed run leaves
at most a hidden ``.partial-<pid>`` folder (removed by the next build once that process is gone).
Determinism: all randomness is planned in this process from the seed, results are consumed in plan
order, and nothing time- or machine-dependent is written, so the same input, options and seed give
byte-identical files for any ``--workers``.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from .. import __version__
from ..interrupts import ctrl_c_held
from ..models import get_family
from ..prompts import ABSENT_ANSWER, format_box, render_answer, render_text
from ..reasons import Reason
from .balance import bin_labels, histogram, spread
from .checks import SEQUENCE_REASONS, CheckedSequence, Issue, check_sequence
from .profiles import SamplerConfig
from .readers import DATASET_KINDS, read_dataset
from .render import RenderedSample, RenderFailure, RenderSettings, init_worker, render_in_worker, render_sample
from .replay import plan_replay
from .sampler import SamplePlan, plan_split, search_values, split_sequences
from .sequences import DatasetError
from .writers import FORMATS, BuiltSample, make_writer

__all__ = ["DEFAULT_OUT", "Source", "BuildError", "BuildResult", "build", "partial_dir_prefix"]

DEFAULT_OUT = Path("datasets_info") / "r1track"
"""Default output folder, relative to the current directory: with ``dataset_dir: datasets_info``
LLaMA-Factory finds the ``r1track_train`` / ``r1track_val`` entries of the repository's
``datasets_info/dataset_info.json`` without any change."""

MAX_ISSUES_LISTED = 200


class BuildError(Exception):
    """A build that cannot start or produced nothing; the message says why."""


@dataclass(frozen=True)
class Source:
    """An input dataset: ``[KIND:]PATH[@SPLIT]`` with KIND one of auto (default), got10k, lasot,
    trackingnet, generic. SPLIT: GOT-10k split, TrackingNet chunk or LaSOT split file."""

    kind: str
    path: Path
    split: str | None = None

    @classmethod
    def parse(cls, spec: str) -> "Source":
        kind = "auto"
        head, sep, rest = spec.partition(":")
        if sep and head in ("auto", *DATASET_KINDS):
            kind, spec = head, rest
        split = None
        if "@" in spec:
            path_part, _, split_part = spec.rpartition("@")
            if path_part and "/" not in split_part:
                spec, split = path_part, split_part
        if not spec:
            raise BuildError(f"empty dataset path in {spec!r}")
        return cls(kind, Path(spec), split)

    def describe(self) -> dict:
        return {"kind": self.kind, "path": str(self.path.resolve()), "split": self.split}


@dataclass
class BuildResult:
    out: Path
    stats: dict
    elapsed_s: float


def partial_dir_prefix(out: Path) -> str:
    return f".{out.name}.partial-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_partials(out: Path, log: Callable[[str], None]) -> None:
    if not out.parent.is_dir():
        return
    for p in out.parent.glob(partial_dir_prefix(out) + "*"):
        suffix = p.name[len(partial_dir_prefix(out)) :]
        if suffix.isdigit() and int(suffix) != os.getpid() and not _pid_alive(int(suffix)):
            log(f"removing {p} left by an interrupted build")
            shutil.rmtree(p, ignore_errors=True)


def _progress(iterable: Iterable, *, total: int | None, desc: str, unit: str, enabled: bool) -> Iterator:
    from ..progress import progress_bar

    return iter(progress_bar(total, desc, unit=unit, enabled=enabled, iterable=iterable))


def _read_and_check(sources: list[Source], progress: bool) -> tuple[list[CheckedSequence], list[Issue], int, int]:
    checked: list[CheckedSequence] = []
    issues: list[Issue] = []
    n_read = 0
    n_frames = 0
    seen: set[str] = set()

    def all_sequences():
        for src in sources:
            try:
                yield from read_dataset(src.kind, src.path, split=src.split)
            except DatasetError:
                raise
            except OSError as exc:
                raise DatasetError(f"{src.path}: {exc}") from exc

    for seq in _progress(all_sequences(), total=None, desc="checking sequences", unit="seq", enabled=progress):
        n_read += 1
        n_frames += len(seq.boxes_xywh_orig)
        cs, found = check_sequence(seq)
        issues.extend(found)
        if cs is not None:
            if cs.key in seen:
                raise DatasetError(f"sequence {cs.key} appears twice in the inputs")
            seen.add(cs.key)
            checked.append(cs)
    return checked, issues, n_read, n_frames


def _hist_block(before: dict[str, list[int]], after_values: dict[str, np.ndarray]) -> dict:
    out = {}
    for dim in ("aspect", "scale"):
        after = histogram(after_values[dim], dim) if len(after_values[dim]) else [0] * len(bin_labels(dim))
        out[dim] = {
            "bins": bin_labels(dim),
            "before": before.get(dim, [0] * len(bin_labels(dim))),
            "after": after,
            "spread_before": round(spread(before.get(dim, [])), 6),
            "spread_after": round(spread(after), 6),
        }
    return out


def _built(result: RenderedSample, index: int, cfg: SamplerConfig) -> BuiltSample | Issue:
    """The sample with its texts (boxes in the family's answer coordinates), or why it is dropped: an
    :class:`Issue` (``degenerate_box``: a box that rounds to an empty one in its crop) naming the sequence folder
    and the ground-truth row (``frames`` 0: a sample is dropped, no frame is skipped)."""
    plan = result.plan
    family = get_family(cfg.model_family)
    side = plan.crops[0].window.out_side
    boxes = [family.encode_xyxy(b, (side, side)) for b in result.boxes_xyxy_crop]
    for crop, b in zip(plan.crops, boxes[:-1] if plan.absent else boxes):
        x1, y1, x2, y2 = json.loads(format_box(b))
        if x2 <= x1 or y2 <= y1:
            box = ",".join(f"{v:g}" for v in crop.box_xywh_orig)
            return Issue(Reason.DEGENERATE_BOX.value, str(Path(crop.frame).parent),
                         f"ground-truth row {crop.frame_index + 1} (1-based), {crop.role} of {plan.split} sample "
                         f"{plan.index}: box {box} is {format_box(b)} in its {side}-px crop, an empty box; sample dropped",
                         0)
    prompt_boxes = boxes[:-1]
    user_text = render_text(cfg.prompt, think=cfg.think, boxes_xyxy_model=prompt_boxes, think_layout=cfg.think_layout)
    answer = ABSENT_ANSWER if plan.absent else render_answer(boxes[-1])
    width = 6
    names = tuple(f"{index:0{width}d}_{c.role}.jpg" for c in plan.crops)
    extra = {
        "split": plan.split,
        "index": index,
        "dataset": plan.dataset,
        "sequence": plan.sequence,
        "image_size": list(plan.image_size),
        "roles": [c.role for c in plan.crops],
        "frames": [c.frame for c in plan.crops],
        "frame_indices": [c.frame_index for c in plan.crops],
        "boxes_xywh_orig": [list(c.box_xywh_orig) for c in plan.crops],
        "windows": [{"x0": t.x0, "y0": t.y0, "side": t.side, "out_side": t.out_side} for t in result.transforms],
        "boxes_xyxy_crop": [[round(v, 4) for v in b] for b in result.boxes_xyxy_crop_raw],
        "crop_side": side,
        "prompt_version": cfg.prompt,
        "think": cfg.think,
        **({"think_layout": cfg.think_layout} if cfg.think else {}),
        "prompt_boxes": [format_box(b) for b in prompt_boxes],
        "answer": answer,
        "images": list(names),
        "model_family": family.name,
        **({"absent": True} if plan.absent else {}),
    }
    return BuiltSample(plan.split, index, names, result.jpegs, user_text, answer, extra)


def _what_options_did(cfg: SamplerConfig, train, val, checked: list[CheckedSequence], prompt_without_absent: str | None,
                      warn: Callable[[str], None], log: Callable[[str], None]) -> SamplerConfig:
    """Say what the options did with these inputs (see :func:`build`); the settings to render with (the ordinary
    prompt when ``--absent-fraction`` alone switched it and no absent sample could be made)."""
    if cfg.absent_fraction > 0:
        plans = train.samples + val.samples
        n_absent = sum(p.absent for p in plans)
        absent_frames = train.absent_candidates + val.absent_candidates
        if absent_frames == 0:
            keep = (f"; the samples keep the ordinary prompt {prompt_without_absent}" if prompt_without_absent
                    else f"; the prompt stays {cfg.prompt}, which offers an answer [] no sample teaches")
            warn(f"absent fraction {cfg.absent_fraction:g}: the inputs have no frame whose target is absent or fully "
                 "covered with a usable template before it within max_gap (visibility labels mark them: GOT-10k "
                 "absence.label / cover.label, LaSOT full_occlusion.txt / out_of_view.txt; generic folders without "
                 f"labels need --absent-from-empty-boxes), so no absent sample was made{keep}")
            if prompt_without_absent:
                cfg = dataclasses.replace(cfg, prompt=prompt_without_absent, absent_fraction=0.0,
                                          absent_from_empty_boxes=False)
        else:
            f = cfg.absent_fraction
            wanted = sum(round(sum(not p.absent for p in sp.samples) * f / (1.0 - f)) for sp in (train, val))
            log(f"absent samples: {n_absent} of {len(plans)} planned ({n_absent / len(plans):.0%}; asked "
                f"{f:.0%}) from {absent_frames} absent frame(s)")
            if n_absent < wanted:
                warn(f"absent fraction {f:g}: only {n_absent} absent samples could be made "
                     f"({absent_frames} absent frame(s) with a usable template within max_gap), not {wanted}")
    if cfg.absent_from_empty_boxes and not any(cs.seq.dataset == "generic" and not cs.seq.labels for cs in checked):
        warn("absent_from_empty_boxes applies to generic folders without visibility labels, and no input is one: "
             "it changed nothing")
    if not val.sequences and cfg.val_fraction > 0:
        warn(f"val fraction {cfg.val_fraction:g}: no val split, since only {len(checked)} usable sequence(s) "
             "(the val split takes whole sequences and leaves at least one for train)")
    n_visible = sum(not p.absent for p in train.samples)
    if cfg.num_samples is not None and n_visible < cfg.num_samples:
        warn(f"num_samples {cfg.num_samples}: only {n_visible} training samples could be made ({train.candidates} "
             f"search candidates in {train.sequences} sequences, {cfg.samples_per_sequence} per sequence)")
    return cfg


def build(
    sources: list[Source],
    out: str | os.PathLike = DEFAULT_OUT,
    cfg: SamplerConfig | None = None,
    *,
    formats: Iterable[str] = ("llamafactory",),
    seed: int = 0,
    workers: int = 1,
    overwrite: bool = False,
    llamafactory_dataset_dir: str | os.PathLike | None = None,
    name: str = "r1track",
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    prompt_without_absent: str | None = None,
    _after_sample: Callable[[int], None] | None = None,
) -> BuildResult:
    """Build a training set (see the module docstring). Raises BuildError for unusable options or
    an empty result, DatasetError for malformed input files; data problems are counted in
    ``stats.json`` instead. ``_after_sample`` is a test hook called after each written sample.

    What options did is said, not left to guess: with ``cfg.absent_fraction`` > 0 the log says how many absent
    samples could be made, and when the inputs have no absent frame at all it warns and -- given
    ``prompt_without_absent``, the prompt the build would have used without absent samples (the command line
    passes it when ``--absent-fraction`` alone switched the prompt) -- writes that prompt instead of the
    visibility prompt. Every warning is logged and kept in ``stats.json`` (``warnings``)."""
    from .profiles import get_profile

    t0 = time.monotonic()
    log = log or (lambda msg: print(f"r1track data build: {msg}", file=sys.stderr))
    cfg = cfg or get_profile("r1track")
    formats = list(dict.fromkeys(formats))
    if not formats:
        raise BuildError("no output format given")
    for f in formats:
        if f not in FORMATS:
            raise BuildError(f"unknown output format {f!r}; known: {', '.join(FORMATS)}")
    if not sources:
        raise BuildError("no input dataset given")
    if workers < 1:
        raise BuildError(f"--workers must be >= 1, got {workers}")
    if not name.replace("_", "").replace("-", "").isalnum():
        raise BuildError(f"dataset name {name!r} must be letters, digits, '_' or '-'")
    out = Path(out)
    if out.exists() and not overwrite:
        raise BuildError(f"{out} exists; pass --overwrite to replace it")
    lf_dir = Path(llamafactory_dataset_dir) if llamafactory_dataset_dir is not None else out.parent
    prefix = Path(os.path.relpath(out.resolve(), lf_dir.resolve())).as_posix()
    prefix = "" if prefix == "." else prefix

    # 1. read and check
    checked, issues, n_read, n_frames = _read_and_check(sources, progress)
    if n_read == 0:
        raise BuildError("the inputs contain no sequences")
    warnings: list[str] = []

    def warn(msg: str) -> None:
        warnings.append(msg)
        log(f"warning: {msg}")

    # 2. plan
    split_ss, train_ss, val_ss = np.random.SeedSequence(seed).spawn(3)
    train_seqs, val_seqs = split_sequences(checked, cfg.val_fraction, np.random.default_rng(split_ss))
    replay_stopped: Counter = Counter()
    if cfg.replay:  # no sampling: the tracker's perfect path (r1track.data.replay)
        train, stopped_train = plan_replay(train_seqs, cfg, "train", num_samples=cfg.num_samples)
        val, stopped_val = plan_replay(val_seqs, cfg, "val")
        replay_stopped = stopped_train + stopped_val
    else:
        train = plan_split(train_seqs, cfg, np.random.default_rng(train_ss), "train", num_samples=cfg.num_samples)
        val = plan_split(val_seqs, cfg, np.random.default_rng(val_ss), "val", num_samples=None)
    plans: list[SamplePlan] = train.samples + val.samples
    if not train.samples:
        raise BuildError(
            f"no training sample can be made from {n_read} sequence(s): {len(checked)} usable, "
            f"{len(train.no_candidates)} without a usable frame pair within the gap rules"
        )
    requested_fraction = cfg.absent_fraction
    cfg = _what_options_did(cfg, train, val, checked, prompt_without_absent, warn, log)

    # 3. render and write into a hidden partial folder
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(out, log)
    tmp = out.parent / f"{partial_dir_prefix(out)}{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    writers = []
    pool = None
    try:
        writers = [make_writer(f, tmp, name=name, prefix=prefix) for f in formats]
        settings = RenderSettings(fill=tuple(int(c) for c in cfg.fill), jpeg_quality=cfg.jpeg_quality,
                                  decode=cfg.decode)
        if workers == 1:
            results: Iterable = (render_sample(p, settings) for p in plans)
        else:
            with ctrl_c_held():  # the workers never hear Ctrl-C, not even while they import: this process acts on it
                pool = multiprocessing.get_context("spawn").Pool(workers, initializer=init_worker, initargs=(settings,))
            results = pool.imap(render_in_worker, plans, chunksize=max(1, min(32, len(plans) // (workers * 16))))
        written = {"train": 0, "val": 0}
        written_plans: list[SamplePlan] = []
        dropped: Counter = Counter()
        crop_sides: Counter = Counter()
        absent_written = {"train": 0, "val": 0}
        clipped = 0
        reported: set[tuple[str, str]] = set()  # a bad frame used by several samples is one issue, one frame
        with open(tmp / "samples.jsonl", "w", encoding="utf-8") as manifest:
            for result in _progress(results, total=len(plans), desc="rendering", unit="sample", enabled=progress):
                if isinstance(result, RenderFailure):
                    dropped[result.reason] += 1
                    if (result.reason, result.path) not in reported:
                        reported.add((result.reason, result.path))
                        issues.append(Issue(result.reason, result.path, result.detail))
                    continue
                sample = _built(result, written[result.plan.split], cfg)
                if isinstance(sample, Issue):  # dropped: named (sequence folder, ground-truth row) in the issues
                    dropped[sample.reason] += 1
                    issues.append(sample)
                    continue
                for w in writers:
                    w.add(sample)
                manifest.write(json.dumps(sample.extra, ensure_ascii=False) + "\n")
                written[sample.split] += 1
                crop_sides[str(result.plan.crops[0].window.out_side)] += 1
                if result.plan.absent:  # no target box: left out of the histograms and the clipping count
                    absent_written[sample.split] += 1
                else:
                    if sample.split == "train":
                        written_plans.append(result.plan)
                    clipped += int(tuple(result.boxes_xyxy_crop[-1]) != tuple(result.boxes_xyxy_crop_raw[-1]))
                if _after_sample is not None:
                    _after_sample(sum(written.values()))
        if pool is not None:
            pool.close()
            pool.join()
            pool = None
        outputs = {}
        for w in writers:
            summary = w.close()
            outputs[summary["format"]] = summary
        writers = []
        if written["train"] == 0:
            raise BuildError("every planned training sample was dropped; see the issues above")

        labels_seen = dict(sorted(Counter(f for cs in checked for f in cs.seq.labels).items()))  # sequences per file
        frame_skips: Counter = Counter()
        seq_skips: Counter = Counter()
        for i in issues:
            if i.reason in SEQUENCE_REASONS:
                seq_skips[i.reason] += 1
            if i.frames and i.reason not in ("no_usable_frames", "no_image_size"):  # samples dropped: frames 0
                frame_skips[i.reason] += i.frames
        stats = {
            "r1track_version": __version__,
            "profile": cfg.name,
            "config": cfg.to_dict(),
            "seed": seed,
            "sources": [s.describe() for s in sources],
            "formats": formats,
            "sequences": {
                "read": n_read,
                "usable": len(checked),
                "skipped": dict(sorted(seq_skips.items())),
                "train": len(train_seqs),
                "val": len(val_seqs),
                "without_samples": {"train": len(train.no_candidates), "val": len(val.no_candidates)},
            },
            "frames": {"annotated": n_frames, "skipped": dict(sorted(frame_skips.items()))},
            **({"visibility_labels": labels_seen} if labels_seen else {}),
            "samples": {
                "candidates": {"train": train.candidates, "val": val.candidates},
                "planned": {"train": len(train.samples), "val": len(val.samples)},
                "written": written,
                "dropped": dict(sorted(dropped.items())),
                "answer_boxes_clipped": clipped,
                **({"absent": {"requested_fraction": requested_fraction,
                               "candidates": {"train": train.absent_candidates, "val": val.absent_candidates},
                               "written": absent_written}} if requested_fraction > 0 else {}),
                **({"replay": {"frames_after_first": {"train": train.candidates, "val": val.candidates},
                               "stopped": dict(sorted(replay_stopped.items()))}} if cfg.replay else {}),
            },
            "crop_sides": dict(sorted(crop_sides.items(), key=lambda kv: int(kv[0]))),
            "histograms": {
                "split": "train",
                "before": "search candidates (usable frames that can be a search frame)",
                "after": "search targets of the written samples",
                **_hist_block(train.before, search_values(written_plans)),
            },
            "issues": [i.__dict__ for i in issues[:MAX_ISSUES_LISTED]],
            "issues_not_listed": max(0, len(issues) - MAX_ISSUES_LISTED),
            "outputs": outputs,
            **({"warnings": warnings} if warnings else {}),
        }
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

        # 4. swap into place
        old = None
        if out.exists():
            old = out.parent / f"{partial_dir_prefix(out)}{os.getpid()}-old"
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        if pool is not None:
            pool.terminate()
            pool.join()
        for w in writers:
            w.abort()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuildResult(out, stats, time.monotonic() - t0)
