"""Synthetic tracking sequences in GOT-10k layout, for the demo, tests and benchmarks.

A textured object moves, changes scale and aspect, and is partly (optionally fully) hidden by a
passing occluder, over a textured background. Ground truth is pixel-exact: the object is rendered
on whole pixels and ``groundtruth.txt`` holds exactly that rectangle (0-based xywh, original
pixels). Labels follow GOT-10k: ``cover.label`` = visible eighths rounded up (0 = hidden),
``absence.label`` = 1 when hidden, ``cut_by_image.label`` = 0 (the object stays in the image).
With ``out_of_view`` the object also vanishes for a span late in the sequence (it is not drawn: the target has
left the view; ``absence`` 1, ``cover`` 0, the box row keeps the position on its path) and comes back elsewhere:
from the span on, its path is mirrored through the image centre. Long-term tracking and absent-target samples
thus get a second kind of invisible stretch, one a tracker can only recover from by searching far from where the
target was last seen.

Motion profiles (``motion``): ``smooth`` (the default; the path above) and ``fast`` -- a target that moves fast and
changes course (:func:`fast_path`): speed 0.3-0.9 of its size per frame, random accelerations, gradual turns and
sudden direction changes, bouncing off the image borders. Pair it with small targets (``object_scale``) and a frame
skip to test search windows that follow motion (``benchmarks/window_policies.py``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .fsutil import atomic_write_text

__all__ = ["MOTIONS", "SyntheticSequence", "fast_path", "make_sequence", "out_of_view_span", "write_got10k_sequence",
           "write_got10k_split"]

MOTIONS = ("smooth", "fast")
"""The motion profiles of :func:`make_sequence`."""


@dataclass
class SyntheticSequence:
    """Frames (RGB uint8 H x W x 3) and per-frame labels; ``boxes_xywh_orig`` is (N, 4) float."""

    name: str
    frames: list[np.ndarray]
    boxes_xywh_orig: np.ndarray
    cover: np.ndarray
    absence: np.ndarray
    occluder_xywh_orig: np.ndarray  # (N, 4); NaN rows where no occluder is drawn
    object_class: str = "synthetic object"

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.frames[0].shape[:2]
        return w, h


def _smooth_texture(rng: np.random.Generator, h: int, w: int, cells: int, lo: int, hi: int) -> np.ndarray:
    """Low-frequency colour noise: a coarse random grid upsampled bilinearly."""
    gh, gw = max(2, h // cells), max(2, w // cells)
    grid = rng.integers(lo, hi, size=(gh, gw, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(grid).resize((w, h), Image.Resampling.BILINEAR))


def _object_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A high-contrast pattern (stripes x checker) in two random saturated colours, with a border."""
    c1 = rng.integers(150, 256, size=3)
    c2 = rng.integers(0, 90, size=3)
    period = int(rng.integers(6, 14))
    yy, xx = np.mgrid[0:h, 0:w]
    angle = rng.uniform(0, math.pi)
    stripes = ((np.cos(angle) * xx + np.sin(angle) * yy) // (period / 2)).astype(int) % 2
    checker = ((xx // period) + (yy // period)) % 2
    mask = (stripes ^ checker).astype(bool)
    tex = np.where(mask[..., None], c1, c2).astype(np.uint8)
    return tex


def fast_path(n_frames: int, size: tuple[int, int], target_side: float, box_wh: tuple[float, float],
              seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``fast`` motion profile's centre path (cx, cy), each (n_frames,), original pixels, for a target of
    size ``target_side`` (``sqrt(w*h)``, original pixels) whose box is at most ``box_wh`` large, in an image of
    ``size`` (width, height). The speed (x ``target_side`` per frame) starts at a cruising speed U(0.3, 0.7) and
    accelerates at random -- each frame it moves 10 % of the way back to the cruising speed plus N(0, 0.06) --
    within [0.1, 1.0]; the heading turns by N(0, 0.12) rad per frame and, with probability 0.04 per frame, by a
    sudden +-U(pi/2, pi); the box bounces off the borders. Deterministic in ``seed``."""
    rng = np.random.default_rng([seed, 20230])
    width, height = size
    half_w, half_h = box_wh[0] / 2 + 2, box_wh[1] / 2 + 2
    lo_x, hi_x = half_w, max(half_w, width - half_w)
    lo_y, hi_y = half_h, max(half_h, height - half_h)
    x, y = rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)
    cruise = rng.uniform(0.3, 0.7)
    speed = cruise
    heading = rng.uniform(0, 2 * math.pi)
    cx, cy = np.zeros(n_frames), np.zeros(n_frames)
    for i in range(n_frames):
        cx[i], cy[i] = x, y
        speed = float(np.clip(speed + 0.1 * (cruise - speed) + rng.normal(0.0, 0.06), 0.1, 1.0))
        heading += rng.normal(0.0, 0.12)
        if rng.random() < 0.04:
            heading += rng.choice([-1.0, 1.0]) * rng.uniform(math.pi / 2, math.pi)
        vx, vy = speed * target_side * math.cos(heading), speed * target_side * math.sin(heading)
        x, y = x + vx, y + vy
        if not lo_x <= x <= hi_x:  # bounce: mirror the position and the heading's x part
            x = 2 * lo_x - x if x < lo_x else 2 * hi_x - x
            x = min(max(x, lo_x), hi_x)
            heading = math.pi - heading
        if not lo_y <= y <= hi_y:
            y = 2 * lo_y - y if y < lo_y else 2 * hi_y - y
            y = min(max(y, lo_y), hi_y)
            heading = -heading
    return cx, cy


def make_sequence(
    name: str,
    *,
    n_frames: int = 40,
    size: tuple[int, int] = (320, 240),
    seed: int = 0,
    full_occlusion: bool = False,
    out_of_view: bool = False,
    object_scale: tuple[float, float] = (0.14, 0.26),
    motion: str = "smooth",
    path_frames: int | None = None,
) -> SyntheticSequence:
    """Generate one sequence. ``size`` = (width, height). With ``full_occlusion`` the occluder hides
    the object completely for a few frames in the middle (absence = 1, cover = 0 there). With ``out_of_view``
    the object is gone for ``max(2, n_frames // 8)`` frames starting at 70 % of the sequence
    (:func:`out_of_view_span`) and moves on along its path mirrored through the image centre. Neither option
    changes the random draws, so the frames before the span stay the same. ``object_scale``: the object's width
    is U(lo, hi) x the image's shorter side. ``motion``: ``smooth`` or ``fast`` (see the module docstring; the
    other draws -- textures, size, occluder -- are the same for both). ``path_frames`` (default ``n_frames``): the
    motion, occlusion and out-of-view span are laid out for a sequence of this many frames and only the first
    ``n_frames`` are made (a short sequence with the slow motion of a long one; ``path_frames`` >= ``n_frames``)."""
    if motion not in MOTIONS:
        raise ValueError(f"unknown motion profile {motion!r}; known: {', '.join(MOTIONS)}")
    total = n_frames if path_frames is None else int(path_frames)
    if total < n_frames:
        raise ValueError(f"path_frames ({total}) must be >= n_frames ({n_frames})")
    rng = np.random.default_rng(seed)
    width, height = size
    background = _smooth_texture(rng, height, width, cells=24, lo=40, hi=200)
    base = min(width, height)
    w0 = rng.uniform(*object_scale) * base
    h0 = w0 * math.exp(rng.uniform(-0.6, 0.6))
    obj_tex = _object_texture(rng, int(h0 * 2.2) + 2, int(w0 * 2.2) + 2)
    # Smooth trajectory: centre on a Lissajous-like path, scale breathing, inside the image.
    t = np.linspace(0.0, 1.0, total)
    ph = rng.uniform(0, 2 * math.pi, size=4)
    scale = 1.0 + 0.35 * np.sin(2 * math.pi * t * rng.uniform(0.5, 1.2) + ph[0])
    aspect = np.exp(0.15 * np.sin(2 * math.pi * t * rng.uniform(0.3, 0.9) + ph[1]))
    ws = np.maximum(8.0, w0 * scale * aspect)
    hs = np.maximum(8.0, h0 * scale / aspect)
    cx = width / 2 + (width / 2 - ws.max() / 2 - 4) * 0.8 * np.sin(2 * math.pi * t * rng.uniform(0.4, 1.0) + ph[2])
    cy = height / 2 + (height / 2 - hs.max() / 2 - 4) * 0.8 * np.sin(2 * math.pi * t * rng.uniform(0.4, 1.0) + ph[3])
    if motion == "fast":
        cx, cy = fast_path(total, size, math.sqrt(w0 * h0), (float(ws.max()), float(hs.max())), seed)
    # Occluder: a textured bar sweeping across the object's path in the middle of the sequence.
    occ_w = (ws.max() * (1.4 if full_occlusion else 0.45))
    occ_h = hs.max() * (1.6 if full_occlusion else 1.2)
    occ_tex = _smooth_texture(rng, int(occ_h) + 2, int(occ_w) + 2, cells=6, lo=90, hi=160)
    mid = total // 2
    gone = out_of_view_span(total) if out_of_view else range(0)
    if out_of_view:  # it comes back on the far side: the path mirrored through the image centre
        after = np.arange(total) >= gone.start
        cx = np.where(after, width - cx, cx)
        cy = np.where(after, height - cy, cy)
    frames: list[np.ndarray] = []
    boxes = np.zeros((n_frames, 4), dtype=np.float64)
    cover = np.zeros(n_frames, dtype=np.int64)
    occluders = np.full((n_frames, 4), np.nan)
    for i in range(n_frames):
        frame = background.copy()
        w, h = int(round(ws[i])), int(round(hs[i]))
        x = int(round(cx[i] - w / 2))
        y = int(round(cy[i] - h / 2))
        x = min(max(x, 0), width - w)
        y = min(max(y, 0), height - h)
        boxes[i] = (x, y, w, h)
        if i in gone:  # out of view: nothing drawn
            frames.append(frame)
            continue
        frame[y : y + h, x : x + w] = np.asarray(Image.fromarray(obj_tex).resize((w, h), Image.Resampling.NEAREST))
        visible = np.ones((h, w), dtype=bool)
        # Occluder centred on the object around the middle frames, sliding left to right.
        offset = (i - mid) / max(1, total // 6)
        if abs(offset) <= 1.5:
            ow, oh = int(occ_w), int(occ_h)
            ox = int(round(x + w / 2 - ow / 2 + offset * (w / 2 + ow / 2)))
            oy = int(round(y + h / 2 - oh / 2))
            fx0, fy0 = max(ox, 0), max(oy, 0)
            fx1, fy1 = min(ox + ow, width), min(oy + oh, height)
            if fx1 > fx0 and fy1 > fy0:
                occluders[i] = (fx0, fy0, fx1 - fx0, fy1 - fy0)
                frame[fy0:fy1, fx0:fx1] = occ_tex[fy0 - oy : fy1 - oy, fx0 - ox : fx1 - ox]
                vx0, vy0 = max(fx0 - x, 0), max(fy0 - y, 0)
                vx1, vy1 = min(fx1 - x, w), min(fy1 - y, h)
                if vx1 > vx0 and vy1 > vy0:
                    visible[vy0:vy1, vx0:vx1] = False
        frac = float(visible.mean())
        cover[i] = 0 if frac <= 0.0 else min(8, math.ceil(frac * 8 - 1e-9))
        frames.append(frame)
    cover[0] = 8 if cover[0] == 0 else cover[0]
    absence = (cover == 0).astype(np.int64)
    return SyntheticSequence(name, frames, boxes, cover, absence, occluders)


def out_of_view_span(n_frames: int) -> range:
    """Frames (0-based) where an ``out_of_view`` sequence has no target: ``max(2, n // 8)`` frames from 70 %."""
    start = max(1, int(0.7 * n_frames))
    return range(start, min(n_frames, start + max(2, n_frames // 8)))


def write_got10k_sequence(seq: SyntheticSequence, folder: str | os.PathLike, *, quality: int = 92) -> Path:
    """Write ``seq`` in GOT-10k train/val layout: ``00000001.jpg``..., ``groundtruth.txt``,
    ``absence.label``, ``cover.label``, ``cut_by_image.label``, ``meta_info.ini``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(seq.frames, start=1):
        Image.fromarray(frame).save(folder / f"{i:08d}.jpg", quality=quality)
    atomic_write_text(folder / "groundtruth.txt", "".join(f"{x:.4f},{y:.4f},{w:.4f},{h:.4f}\n" for x, y, w, h in seq.boxes_xywh_orig))
    atomic_write_text(folder / "absence.label", "".join(f"{int(a)}\n" for a in seq.absence))
    atomic_write_text(folder / "cover.label", "".join(f"{int(c)}\n" for c in seq.cover))
    atomic_write_text(folder / "cut_by_image.label", "".join("0\n" for _ in seq.frames))
    w, h = seq.size
    meta = (
        "[METAINFO]\n"
        "url: synthetic\n"
        "begin: 00:00:00\n"
        f"end: 00:00:{len(seq.frames) // 10:02d}\n"
        "anno_fps: 10Hz\n"
        f"object_class: {seq.object_class}\n"
        "motion_class: moving\n"
        "major_class: synthetic\n"
        "root_class: object\n"
        "motion_adverb: smoothly\n"
        f"resolution: ({w}, {h})\n"
    )
    atomic_write_text(folder / "meta_info.ini", meta)
    return folder


def write_got10k_split(
    root: str | os.PathLike,
    split: str = "val",
    *,
    n_sequences: int = 3,
    n_frames: int = 40,
    size: tuple[int, int] = (320, 240),
    seed: int = 0,
    full_occlusion_every: int = 0,
    out_of_view_every: int = 0,
    object_scale: tuple[float, float] = (0.14, 0.26),
    motion: str = "smooth",
    path_frames: int | None = None,
) -> list[str]:
    """Write ``n_sequences`` synthetic sequences as ``<root>/<split>/GOT-10k_<Split>_%06d`` plus
    ``list.txt``; returns the sequence names. Every ``full_occlusion_every``-th sequence (0 = none)
    has a fully hidden stretch, every ``out_of_view_every``-th one (0 = none) an out-of-view stretch;
    ``object_scale``, ``motion`` and ``path_frames`` as in :func:`make_sequence`."""
    split_dir = Path(root) / split
    split_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for k in range(n_sequences):
        name = f"GOT-10k_{split.capitalize()}_{k + 1:06d}"
        full = bool(full_occlusion_every) and (k % full_occlusion_every == full_occlusion_every - 1)
        gone = bool(out_of_view_every) and (k % out_of_view_every == out_of_view_every - 1)
        seq = make_sequence(name, n_frames=n_frames, size=size, seed=seed * 1000 + k, full_occlusion=full,
                            out_of_view=gone, object_scale=object_scale, motion=motion, path_frames=path_frames)
        write_got10k_sequence(seq, split_dir / name)
        names.append(name)
    atomic_write_text(split_dir / "list.txt", "".join(n + "\n" for n in names))
    return names
