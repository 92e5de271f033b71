"""``r1track demo``: the whole pipeline on a machine with no GPU, no model and no data, in under a minute.

1. Generate short synthetic sequences in GOT-10k layout (textured objects that move, change scale and get
   partly or fully occluded): a ``train`` split and a ``val`` split.
2. Build a small training set from ``train`` in all three formats (LLaMA-Factory, EasyR1, verl).
3. Track ``val`` with the embedded ``ncc`` backend (a classical baseline standing in for the model server),
   through the same tracker, crops, prompts and parser as a real run.
4. Score it (GOT-10k protocol), write the report and plots, and an annotated GIF of one sequence.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


__all__ = ["DemoResult", "run_demo", "MARKER"]

MARKER = ".r1track-demo"


@dataclass
class DemoResult:
    out: Path
    train_data: Path
    run_dir: Path
    report_json: Path
    gif: Path
    table: str
    seconds: float
    samples: dict[str, int]  # training samples written per split


def _prepare(out: Path) -> None:
    if out.exists():
        if not (out / MARKER).is_file():
            if any(out.iterdir()):
                raise FileExistsError(f"{out} exists and was not made by 'r1track demo'; choose another --out")
        else:
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by r1track demo; safe to delete\n")


def run_demo(
    out: str | Path = "r1track-demo",
    *,
    sequences: int = 4,
    frames: int = 50,
    seed: int = 0,
    progress: bool = True,
    say: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the demo into ``out`` (a folder it owns: an earlier demo there is replaced; anything else
    there is refused)."""
    from .data.build import Source, build
    from .data.profiles import get_profile
    from .data.readers import read_got10k
    from .evaluate import EvalSettings, evaluate
    from .results import read_result
    from .scoring import format_table, score_results, write_report
    from .synthetic import write_got10k_split
    from .video import AnnotatedWriter, annotate

    say = say or (lambda msg: print(msg, file=sys.stderr))
    t0 = time.monotonic()
    out = Path(out)
    _prepare(out)
    data_root = out / "data" / "GOT10k"
    say(f"[1/4] synthetic sequences -> {data_root}")
    write_got10k_split(data_root, "train", n_sequences=sequences, n_frames=frames, seed=seed + 100, full_occlusion_every=3)
    write_got10k_split(data_root, "val", n_sequences=sequences, n_frames=frames, seed=seed, full_occlusion_every=2)

    train_dir = out / "train_data"
    say(f"[2/4] training set (LLaMA-Factory, EasyR1, verl) -> {train_dir}")
    cfg = dataclasses.replace(get_profile("r1track"), samples_per_sequence=8, val_fraction=0.25)
    built = build(
        [Source("got10k", data_root, "train")], train_dir, cfg, formats=("llamafactory", "easyr1", "verl"), seed=seed,
        progress=False, log=lambda msg: None,
    )

    run_dir = out / "run"
    say(f"[3/4] tracking {sequences} val sequences with the ncc baseline -> {run_dir}")
    seqs = list(read_got10k(data_root, "val"))
    evaluate(seqs, EvalSettings(out_dir=run_dir, backend="ncc", concurrency=sequences, progress=progress))

    say(f"[4/4] scoring -> {run_dir / 'report'}")
    report = score_results(seqs, run_dir / "results", tracker="ncc", dataset="synthetic GOT-10k val", baseline=True)
    paths = write_report(report, run_dir / "report")
    gif = run_dir / "demo.gif"
    boxes, _ = read_result(run_dir / "results", seqs[0].name)
    writer = AnnotatedWriter(gif, fps=10)
    for k, (frame, box, gt) in enumerate(zip(seqs[0].frames, boxes, seqs[0].boxes_xywh_orig), start=1):
        img = annotate(frame, gt, colour=(255, 255, 0))  # ground truth in yellow
        writer.add(annotate(img, box, label=f"frame {k}: ncc (green) / ground truth (yellow)"))
    writer.close()
    written = built.stats["samples"]["written"]
    samples = {split: int(n) for split, n in written.items()}
    return DemoResult(out, train_dir, run_dir, paths["json"], gif, format_table(report), time.monotonic() - t0, samples)
