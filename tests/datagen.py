"""Test data for the training-data builder: GOT-10k-layout sequences whose target is a pure red
rectangle drawn on whole pixels over a background without red (R = 0), so a test can find the
target in any crop by colour alone. Frames where the target is absent are drawn *without* the
target (and labelled absent), so a crop made from one of them has no red at all."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass
class RedSequence:
    name: str
    size: tuple[int, int]  # (W, H)
    boxes_xywh: np.ndarray  # (N, 4) whole pixels
    absent: np.ndarray  # (N,) bool


def background(w: int, h: int, seed: int) -> np.ndarray:
    """Smooth, red-free background (G and B vary slowly, R = 0)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    g = 60 + 50 * np.sin(xx / rng.uniform(25, 60) + rng.uniform(0, 6)) + 30 * np.cos(yy / rng.uniform(30, 70))
    b = 90 + 40 * np.cos(xx / rng.uniform(40, 90)) + 40 * np.sin(yy / rng.uniform(20, 50) + rng.uniform(0, 6))
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 1] = np.clip(g, 0, 255).astype(np.uint8)
    img[..., 2] = np.clip(b, 0, 255).astype(np.uint8)
    return img


def write_red_split(
    root: Path,
    split: str = "train",
    *,
    n_sequences: int = 3,
    n_frames: int = 20,
    size: tuple[int, int] = (480, 360),
    target_sizes: list[tuple[int, int]] | None = None,
    absent_frames: dict[int, list[int]] | None = None,
    seed: int = 0,
) -> list[RedSequence]:
    """Write ``root/split/<name>/`` with frames ``00000001.jpg``..., ``groundtruth.txt``,
    ``absence.label``, ``cover.label`` and ``list.txt``. ``target_sizes[k]`` = (w, h) of sequence
    k's target (it grows by up to 20 % along the sequence); ``absent_frames[k]`` = 0-based frames of
    sequence k where the target is hidden."""
    split_dir = Path(root) / split
    split_dir.mkdir(parents=True, exist_ok=True)
    w_img, h_img = size
    out = []
    rng = np.random.default_rng(seed)
    for k in range(n_sequences):
        name = f"RED_{k + 1:04d}"
        folder = split_dir / name
        folder.mkdir(exist_ok=True)
        tw, th = (target_sizes[k] if target_sizes else (int(rng.integers(20, 90)), int(rng.integers(20, 90))))
        absent = np.zeros(n_frames, dtype=bool)
        for f in (absent_frames or {}).get(k, []):
            absent[f] = True
        bg = background(w_img, h_img, seed * 1000 + k)
        boxes = np.zeros((n_frames, 4))
        x0, y0 = rng.uniform(0, w_img - tw * 1.2), rng.uniform(0, h_img - th * 1.2)
        vx, vy = rng.uniform(-3, 3), rng.uniform(-3, 3)
        for i in range(n_frames):
            grow = 1.0 + 0.2 * i / max(1, n_frames - 1)
            w, h = max(2, int(round(tw * grow))), max(2, int(round(th * grow)))
            x = int(round(min(max(x0 + vx * i, 0), w_img - w)))
            y = int(round(min(max(y0 + vy * i, 0), h_img - h)))
            frame = bg.copy()
            if not absent[i]:
                frame[y : y + h, x : x + w] = (255, 0, 0)
            boxes[i] = (x, y, w, h)
            Image.fromarray(frame).save(folder / f"{i + 1:08d}.jpg", quality=95, subsampling=0)
        (folder / "groundtruth.txt").write_text("".join(f"{x:.1f},{y:.1f},{w:.1f},{h:.1f}\n" for x, y, w, h in boxes))
        (folder / "absence.label").write_text("".join(f"{int(a)}\n" for a in absent))
        (folder / "cover.label").write_text("".join(f"{0 if a else 8}\n" for a in absent))
        (folder / "meta_info.ini").write_text(f"[METAINFO]\nresolution: ({w_img}, {h_img})\n")
        out.append(RedSequence(name, size, boxes, absent))
    (split_dir / "list.txt").write_text("".join(s.name + "\n" for s in out))
    return out


def red_mask(rgb: np.ndarray) -> np.ndarray:
    """Pixels that are clearly target-red after bilinear resampling and JPEG."""
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    return (r > 128) & (r > g + 60) & (r > b + 60)


def red_extent(rgb: np.ndarray) -> tuple[float, float, float, float]:
    """Sub-pixel edges (x1, y1, x2, y2) of the red target: along the middle row and column, where the
    red channel crosses half of its plateau (linear interpolation between pixel centres)."""
    r = rgb[..., 0].astype(np.float64)
    mask = red_mask(rgb)
    ys, xs = np.nonzero(mask)
    cy, cx = int(np.median(ys)), int(np.median(xs))

    def edges(profile: np.ndarray, centre: int) -> tuple[float, float]:
        level = 0.5 * profile[centre]
        i = centre
        while i > 0 and profile[i - 1] >= level:
            i -= 1
        lo = i + 0.5 if i == 0 else (i - 1) + 0.5 + (level - profile[i - 1]) / (profile[i] - profile[i - 1])
        j = centre
        while j < len(profile) - 1 and profile[j + 1] >= level:
            j += 1
        hi = j + 0.5 if j == len(profile) - 1 else j + 0.5 + (profile[j] - level) / (profile[j] - profile[j + 1])
        return lo, hi

    x1, x2 = edges(r[cy], cx)
    y1, y2 = edges(r[:, cx], cy)
    return x1, y1, x2, y2


def corrupt_jpeg(path: Path) -> None:
    """Keep the header, cut the entropy-coded data: opens fine, fails to decode."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: max(700, len(data) // 5)])

