"""Which frames and crop windows a build uses: pure planning, no pixels.

Everything random happens here, in one process, from generators derived from the build seed, so
the plan (and with it every output byte) is the same whatever the number of render workers.

Rules (see :class:`~r1track.data.profiles.SamplerConfig` for the knobs):

* only *usable* frames (present, visible, box with area; :mod:`r1track.data.checks`) are used;
* a *search candidate* is a usable frame that has the partners the sample needs: a usable template
  frame at most ``max_gap`` frames away (before it when ``ordered``), and for triples a usable
  memory frame between template and search, at most ``memory_max_gap`` before the search frame;
* without balancing, each sequence gives ``samples_per_sequence`` search frames drawn uniformly
  from its candidates; with balancing, search frames are drawn from all candidates with weights
  1 / (candidates in the same aspect/scale cell) (Efraimidis-Spirakis keys), at most
  ``max_per_sequence`` per sequence;
* partners are drawn uniformly among the frames that qualify; then each image gets its window;
* with ``absent_fraction`` F > 0 (pairs), ``round(n * F / (1 - F))`` absent samples join the ``n`` visible
  ones (fewer when the data has fewer absent candidates): search frames drawn uniformly among the frames whose
  target is absent (:func:`absent_frames`) that have a usable template within ``max_gap`` before them, the
  search window centred on the last usable box before the search frame, and their places in the sample order
  drawn at random (the visible samples keep their order). They are planned after the visible samples from the same generator, so the visible plan
  is unchanged, and F = 0 draws nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..crop import CropJitter, CropWindow, plan_window
from .balance import aspect_log2, balance_weights, histogram, scale_log2
from .checks import CheckedSequence
from .profiles import LABELLED_DATASETS, SamplerConfig

__all__ = ["CropPlan", "SamplePlan", "SplitPlan", "split_sequences", "search_candidates", "absent_frames",
           "absent_candidates", "plan_split", "search_values", "ROLES"]

ROLES = {2: ("template", "search"), 3: ("template", "memory", "search")}


@dataclass(frozen=True)
class CropPlan:
    """One image of a sample: the frame, its ground-truth box (xywh, original pixels) and the
    planned window (the renderer cuts exactly this window, however it decodes the frame; see ``r1track.crop``)."""

    role: str
    frame: str
    frame_index: int
    box_xywh_orig: tuple[float, float, float, float]
    window: CropWindow


@dataclass(frozen=True)
class SamplePlan:
    """One training sample: images in prompt order (template, (memory), search)."""

    split: str
    index: int
    dataset: str
    sequence: str
    image_size: tuple[int, int]
    crops: tuple[CropPlan, ...]
    absent: bool = False
    """The target is not visible in the search frame; the search crop's ``box_xywh_orig`` is then the last box
    seen before it (the one its window is centred on) and the answer is ``[]``."""

    @property
    def search(self) -> CropPlan:
        return self.crops[-1]


@dataclass
class SplitPlan:
    """The samples of one split and what the planner saw: ``candidates`` = search candidates,
    ``before`` = their histograms per balance dimension, ``no_candidates`` = sequences that offer
    none (too short for the gap rules after skipping unusable frames)."""

    split: str
    samples: list[SamplePlan]
    sequences: int
    candidates: int
    no_candidates: list[str] = field(default_factory=list)
    before: dict[str, list[int]] = field(default_factory=dict)
    absent_candidates: int = 0


def split_sequences(
    checked: list[CheckedSequence], val_fraction: float, rng: np.random.Generator
) -> tuple[list[CheckedSequence], list[CheckedSequence]]:
    """(train, val): ``round(val_fraction * n)`` sequences (at least 1 when the fraction is positive
    and there are 2 or more) drawn at random for val; both keep the reading order."""
    n = len(checked)
    n_val = 0
    if val_fraction > 0 and n >= 2:
        n_val = min(n - 1, max(1, round(val_fraction * n)))
    chosen = set(rng.permutation(n)[:n_val].tolist())
    train = [c for i, c in enumerate(checked) if i not in chosen]
    val = [c for i, c in enumerate(checked) if i in chosen]
    return train, val


def _prefix(usable: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(usable, dtype=np.int64)])


def _count(c: np.ndarray, a, b):
    """Usable frames in [a, b] (inclusive, clipped to the sequence); works on arrays."""
    n = len(c) - 1
    a = np.clip(a, 0, n)
    b = np.clip(np.asarray(b) + 1, 0, n)
    return np.where(b > a, c[b] - c[a], 0)


def search_candidates(usable: np.ndarray, cfg: SamplerConfig) -> np.ndarray:
    """Indices of the frames that can be the search frame of a sample (see the module docstring)."""
    u = np.asarray(usable, dtype=bool)
    n = len(u)
    s = np.arange(n)
    c = _prefix(u)
    gap = cfg.max_gap if cfg.max_gap is not None else n
    if cfg.n_images == 2:
        if cfg.ordered:
            ok = _count(c, s - gap, s - 1) > 0
        else:
            ok = (_count(c, s - gap, s + gap) - u) > 0
        return np.flatnonzero(u & ok)
    # triples: the latest usable frame before s is the best memory candidate
    last = np.maximum.accumulate(np.where(u, s, -1))
    prev = np.concatenate([[-1], last[:-1]])
    ok = (prev >= 0) & (prev >= s - cfg.memory_max_gap) & (_count(c, s - gap, prev - 1) > 0)
    return np.flatnonzero(u & ok)


def absent_frames(cs: CheckedSequence, cfg: SamplerConfig) -> np.ndarray:
    """(N,) bool: frames whose target is absent by the sequence's visibility labels (a sequence read with label
    files, ``Sequence.labels``, whatever the reader, or of one of :data:`LABELLED_DATASETS`: present file, not
    visible) or, with ``absent_from_empty_boxes`` in a generic folder without labels, whose box line is NaN or
    has no size."""
    present = np.array([f is not None for f in cs.frames], dtype=bool)
    if cs.seq.labels or cs.seq.dataset.split("-")[0] in LABELLED_DATASETS:  # got10k-<split>, lasot
        return present & ~np.asarray(cs.seq.visible, dtype=bool)
    if cfg.absent_from_empty_boxes and cs.seq.dataset == "generic":
        b = np.asarray(cs.seq.boxes_xywh_orig, dtype=np.float64).reshape(-1, 4)
        with np.errstate(invalid="ignore"):
            good = np.isfinite(b).all(axis=1) & (b[:, 2] > 0) & (b[:, 3] > 0)
        return present & ~good
    return np.zeros(len(cs.frames), dtype=bool)


def absent_candidates(cs: CheckedSequence, cfg: SamplerConfig) -> np.ndarray:
    """Indices of absent frames with a usable template frame at most ``max_gap`` before them."""
    u = np.asarray(cs.usable, dtype=bool)
    n = len(u)
    s = np.arange(n)
    gap = cfg.max_gap if cfg.max_gap is not None else n
    ok = _count(_prefix(u), s - gap, s - 1) > 0
    return np.flatnonzero(absent_frames(cs, cfg)[:n] & ok)


def _plan_absent(
    checked: list[CheckedSequence], cfg: SamplerConfig, rng: np.random.Generator, n_visible: int
) -> tuple[list[tuple[CheckedSequence, list[CropPlan]]], int]:
    """(absent samples as (sequence, crops), number of candidates); see the module docstring."""
    pool = [(cs, int(s)) for cs in checked for s in absent_candidates(cs, cfg)]
    n_want = int(round(n_visible * cfg.absent_fraction / (1.0 - cfg.absent_fraction)))
    k = min(n_want, len(pool))
    out = []
    for j in (rng.choice(len(pool), size=k, replace=False) if k else []):
        cs, s = pool[int(j)]
        u = np.asarray(cs.usable, dtype=bool)
        gap = cfg.max_gap if cfg.max_gap is not None else len(u)
        lo = max(0, s - gap)
        templates = np.flatnonzero(u[lo:s]) + lo
        t = int(rng.choice(templates))
        last = int(np.flatnonzero(u[:s])[-1])  # the last box seen before the target went
        side = int(cfg.crop_sides[int(rng.integers(len(cfg.crop_sides)))]) if len(cfg.crop_sides) > 1 else int(cfg.crop_sides[0])
        crops = []
        for role, f, box_row in (("template", t, t), ("search", s, last)):
            box = tuple(float(v) for v in cs.seq.boxes_xywh_orig[box_row])
            crops.append(CropPlan(role, str(cs.frames[f]), f, box, _window(cfg, role, box, side, rng)))  # type: ignore[arg-type]
        out.append((cs, crops))
    return out, len(pool)


def _window(cfg: SamplerConfig, role: str, box: tuple[float, float, float, float], side: int, rng: np.random.Generator) -> CropWindow:
    """The planned window of one image (template or search/memory), drawing its factor and jitter from ``rng``."""
    if role == "template":
        factor = _factor(rng, cfg.template_factor)
        c = cfg.template_center_jitter
        jitter = CropJitter(center=c) if c > 0 else None
    else:
        factor = _factor(rng, cfg.search_factor)
        c, sc = cfg.search_center_jitter, tuple(cfg.search_scale_jitter)
        jitter = CropJitter(center=c, scale=sc) if (c > 0 or sc != (1.0, 1.0)) else None
    # side checked against the model family's rule by SamplerConfig
    return plan_window(box, factor, side, jitter=jitter, rng=rng if jitter else None, check_side=False)


def _partners(u: np.ndarray, s: int, cfg: SamplerConfig, rng: np.random.Generator) -> list[int]:
    """Frame indices in prompt order (template, (memory), search) for search frame ``s``."""
    n = len(u)
    gap = cfg.max_gap if cfg.max_gap is not None else n
    lo = max(0, s - gap)
    if cfg.n_images == 2:
        hi = s - 1 if cfg.ordered else min(n - 1, s + gap)
        cand = np.flatnonzero(u[lo : hi + 1]) + lo
        cand = cand[cand != s]
        return [int(rng.choice(cand)), s]
    first = lo + int(np.argmax(u[lo:]))  # first usable frame >= s - gap (exists: s is a candidate)
    m_lo = max(first + 1, s - cfg.memory_max_gap)
    ms = np.flatnonzero(u[m_lo:s]) + m_lo
    m = int(rng.choice(ms))
    ts = np.flatnonzero(u[lo:m]) + lo
    return [int(rng.choice(ts)), m, s]


def _factor(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    lo, hi = lo_hi
    return float(rng.uniform(lo, hi)) if hi > lo else float(lo)


def _select(
    seq_ids: np.ndarray, offsets: np.ndarray, values: dict[str, np.ndarray], cfg: SamplerConfig, n_target: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Positions (into the candidate arrays) of the chosen search frames, in sample order. Sequence
    ``i``'s candidates are positions ``offsets[i]:offsets[i + 1]``."""
    if not cfg.balance:
        picks = []
        for i in range(len(offsets) - 1):
            lo, hi = int(offsets[i]), int(offsets[i + 1])
            k = min(cfg.samples_per_sequence, hi - lo)
            if k:
                picks.append(lo + rng.choice(hi - lo, size=k, replace=False))
        chosen = np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)
        return rng.permutation(chosen)[:n_target]
    w = balance_weights(values, cfg.balance)
    keys = np.log(rng.random(len(w))) / w  # Efraimidis-Spirakis: larger key = drawn earlier
    order = np.lexsort((np.arange(len(w)), -keys))
    by_seq = seq_ids[order]
    grouped = np.argsort(by_seq, kind="stable")
    sorted_ids = by_seq[grouped]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(sorted_ids)) + 1])
    lengths = np.diff(np.concatenate([starts, [len(sorted_ids)]]))
    rank = np.empty(len(order), dtype=np.int64)
    rank[grouped] = np.arange(len(sorted_ids)) - np.repeat(starts, lengths)
    return order[rank < cfg.cap_per_sequence][:n_target]


def plan_split(
    checked: list[CheckedSequence], cfg: SamplerConfig, rng: np.random.Generator, split: str, *, num_samples: int | None
) -> SplitPlan:
    """Plan the samples of one split (``num_samples`` caps their number; None = no cap)."""
    seq_ids, frames, boxes_l, sizes_l, no_cand = [], [], [], [], []
    for i, cs in enumerate(checked):
        cand = search_candidates(cs.usable, cfg)
        if len(cand) == 0:
            no_cand.append(cs.key)
        seq_ids.append(np.full(len(cand), i, dtype=np.int64))
        frames.append(cand.astype(np.int64))
        boxes_l.append(np.asarray(cs.seq.boxes_xywh_orig, dtype=np.float64)[cand])
        sizes_l.append(np.tile(np.asarray(cs.image_size, dtype=np.float64), (len(cand), 1)))
    empty = np.zeros(0, dtype=np.int64)
    seq_ids_a = np.concatenate(seq_ids) if seq_ids else empty
    frames_a = np.concatenate(frames) if frames else empty
    offsets = np.concatenate([[0], np.cumsum([len(f) for f in frames], dtype=np.int64)])
    boxes = np.concatenate(boxes_l).reshape(-1, 4) if boxes_l else np.zeros((0, 4))
    sizes = np.concatenate(sizes_l).reshape(-1, 2) if sizes_l else np.zeros((0, 2))
    values = {"aspect": aspect_log2(boxes), "scale": scale_log2(boxes, sizes)}
    before = {d: histogram(v, d) for d, v in values.items()}
    n_with = len(checked) - len(no_cand)
    n_target = n_with * cfg.samples_per_sequence
    if num_samples is not None:
        n_target = min(n_target, num_samples)
    chosen = _select(seq_ids_a, offsets, values, cfg, n_target, rng)

    roles = ROLES[cfg.n_images]
    samples: list[SamplePlan] = []
    for pos in chosen:
        cs = checked[int(seq_ids_a[pos])]
        s = int(frames_a[pos])
        idx = _partners(cs.usable, s, cfg, rng)
        side = int(cfg.crop_sides[int(rng.integers(len(cfg.crop_sides)))]) if len(cfg.crop_sides) > 1 else int(cfg.crop_sides[0])
        crops = []
        for role, f in zip(roles, idx):
            box = tuple(float(v) for v in cs.seq.boxes_xywh_orig[f])
            crops.append(CropPlan(role, str(cs.frames[f]), f, box, _window(cfg, role, box, side, rng)))  # type: ignore[arg-type]
        samples.append(
            SamplePlan(split, len(samples), cs.seq.dataset, cs.seq.name, cs.image_size, tuple(crops))
        )
    n_absent_candidates = 0
    if cfg.absent_fraction > 0:
        absent, n_absent_candidates = _plan_absent(checked, cfg, rng, len(samples))
        total = len(samples) + len(absent)
        at = rng.choice(total, size=len(absent), replace=False) if absent else np.zeros(0, dtype=np.int64)
        merged: list[SamplePlan | None] = [None] * total
        for k, (cs, crops) in zip(at, absent):
            merged[int(k)] = SamplePlan(split, 0, cs.seq.dataset, cs.seq.name, cs.image_size, tuple(crops), absent=True)
        visible = iter(samples)  # the visible samples keep their order in the free places
        samples = [replace(p if p is not None else next(visible), index=i) for i, p in enumerate(merged)]
    return SplitPlan(split, samples, len(checked), int(len(frames_a)), no_cand, before, n_absent_candidates)


def search_values(samples: list[SamplePlan]) -> dict[str, np.ndarray]:
    """aspect / scale values of the search targets of ``samples`` (for the "after" histograms; pass visible
    samples only: an absent sample's search box is the last one seen)."""
    boxes = np.array([s.search.box_xywh_orig for s in samples], dtype=np.float64).reshape(-1, 4)
    sizes = np.array([s.image_size for s in samples], dtype=np.float64).reshape(-1, 2)
    return {"aspect": aspect_log2(boxes), "scale": scale_log2(boxes, sizes)}

