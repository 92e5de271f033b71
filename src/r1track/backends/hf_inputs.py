"""Model inputs of the ``transformers`` engine made directly, equal to the processor's, off the critical path.

The stock way turns a batch into model inputs with the checkpoint's processor on the engine thread: chat
template, image processor (resize, rescale, normalise, patchify every image, the template again in every
request), placeholder expansion, tokenisation with padding. r1track's crops already have the model's input size,
so most of that is copying. :class:`DirectInputs` does it in two parts:

* **per request, ahead of time** (:meth:`DirectInputs.prepare`, called from the backend's ``prepare`` in the
  evaluation's thread pool while the engine answers earlier batches): the chat text tokenised without padding
  and each image placeholder id repeated to the image's token count (the placeholder is a special token, which
  the tokenizer never merges with its neighbours, so this equals tokenising the expanded text); each image (the
  JPEG-decoded pixels, cached per :class:`~r1track.backends.RequestImage`, so a sequence's template is done
  once) cut into the processor's patch layout as ``uint8`` -- and, when the model runs on the CPU, already
  turned into its float32 ``pixel_values`` rows by the lookup table below;
* **per batch, on the engine thread** (:meth:`DirectInputs.assemble`): left padding, attention mask, and the
  images' rows concatenated; on a GPU the ``uint8`` patches travel (a quarter of the bytes) and become float32
  ``pixel_values`` there by a per-channel lookup table (256 entries per channel: one gather).

Exactness (the direct inputs ARE the processor's): the lookup table is not a formula but the processor's own
output, read at load time (:func:`calibrate`): an image whose every channel holds all 256 values, at a size the
processor keeps, goes through the processor's image processor; the table is what came out for each (channel,
value), and the calibration fails unless every occurrence of a value in a channel came out the same (the
processor's normalisation is per pixel) in the patch layout assumed here. Then a small two-request batch goes
through the whole processor and through this class, and every output key must be equal, values and dtypes.
Any failure leaves the engine on the processor (the reason is in the engine report). A batch holding an image
the processor would resize (a side not a multiple of patch x merge, or an area outside its min/max pixels) goes
through the processor too.

Facts relied on (read in transformers 5.17.0, ``processing_utils.py``, ``image_processing_backends.py``,
``models/qwen2_vl/image_processing_qwen2_vl.py`` and its PIL twin; the tests check them on 5.6 and 5.19 too):
the processor expands each image
placeholder token to ``grid_t * grid_h * grid_w / merge_size ** 2`` copies, tokenises with the tokenizer (left
padding here), returns ``input_ids``, ``attention_mask``, ``pixel_values`` (float32, one row per patch),
``image_grid_thw`` (int64, ``[1, h / patch, w / patch]`` per image) and ``mm_token_type_ids`` (1 on
image tokens, else 0); the image processor rescales and normalises each pixel on its own, resizes only to
``smart_resize``'s size, and lays patches out as (grid rows / merge, grid columns / merge, merge row,
merge column, channel, temporal copy, patch row, patch column), the single image repeated ``temporal_patch_size``
times. The slow test ``tests/test_hf_engine.py`` proves equality on every crop side of every family and on
non-square frames with the PIL and torchvision image processors, per verified transformers version
(:data:`r1track.backends.hf_vision.VERIFIED_TRANSFORMERS`). On other versions the load-time calibration and
comparison above still decide.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from PIL import Image

from ..redact import get_logger

__all__ = ["Geometry", "PreparedRequest", "DirectInputs", "CalibrationError", "calibrate", "patchify"]

log = get_logger(__name__)

KNOWN_KEYS = frozenset({"input_ids", "attention_mask", "pixel_values", "image_grid_thw", "mm_token_type_ids"})
"""Processor output keys :class:`DirectInputs` reproduces; another key sends the engine to the processor."""


class CalibrationError(RuntimeError):
    """The direct inputs could not be shown equal to the processor's (the message says how)."""


@dataclass(frozen=True)
class Geometry:
    """The image processor's patch geometry and pixel bounds."""

    patch: int
    merge: int
    temporal: int
    min_pixels: int
    max_pixels: int

    @property
    def factor(self) -> int:
        return self.patch * self.merge

    def keeps(self, width: int, height: int) -> bool:
        """True when the processor leaves a ``width`` x ``height`` image unresized."""
        f = self.factor
        return width % f == 0 and height % f == 0 and self.min_pixels <= width * height <= self.max_pixels

    def tokens(self, width: int, height: int) -> int:
        """Placeholder tokens of an unresized image."""
        return (width // self.patch) * (height // self.patch) // (self.merge * self.merge)


def geometry_of(image_processor: Any) -> Geometry:
    """Read patch size, merge size, temporal patch size and min/max pixels from a Qwen image processor."""
    size = getattr(image_processor, "size", None) or {}
    get = size.get if isinstance(size, dict) else (lambda k, d=None: getattr(size, k, d))
    lo = get("shortest_edge", None) or getattr(image_processor, "min_pixels", None)
    hi = get("longest_edge", None) or getattr(image_processor, "max_pixels", None)
    values = dict(patch=getattr(image_processor, "patch_size", None), merge=getattr(image_processor, "merge_size", None),
                  temporal=getattr(image_processor, "temporal_patch_size", None), min_pixels=lo, max_pixels=hi)
    missing = [k for k, v in values.items() if not isinstance(v, int) or v <= 0]
    if missing:
        raise CalibrationError(f"{type(image_processor).__name__} has no usable {', '.join(missing)}")
    return Geometry(**values)


def patchify(pixels: np.ndarray, geo: Geometry) -> np.ndarray:
    """An (H, W, 3) uint8 image as (patches, 3, patch, patch) uint8 in the processor's patch order (module
    docstring; the temporal copies are added at assembly). H and W must be multiples of patch x merge."""
    h, w, c = pixels.shape
    p, m = geo.patch, geo.merge
    gh, gw = h // p, w // p
    blocks = pixels.reshape(gh // m, m, p, gw // m, m, p, c)
    # (block row, merge row, patch row, block col, merge col, patch col, channel) -> block row, block col,
    # merge row, merge col, channel, patch row, patch col
    return np.ascontiguousarray(blocks.transpose(0, 3, 1, 4, 6, 2, 5)).reshape(gh * gw, c, p, p)


def _calibration_image(geo: Geometry) -> np.ndarray:
    side = geo.factor
    while side * side < max(geo.min_pixels, 256):
        side += geo.factor
    if side * side > geo.max_pixels:
        raise CalibrationError(f"no square calibration image fits the processor's pixel bounds {geo}")
    i = np.arange(side * side, dtype=np.int64)
    # channel c: (i * (2c + 1) + 85 c) mod 256 -- every value in every channel, channels decorrelated
    chans = [((i * (2 * c + 1) + 85 * c) % 256).astype(np.uint8) for c in range(3)]
    return np.stack(chans, axis=-1).reshape(side, side, 3)


def calibrate(image_processor: Any, geo: Geometry) -> np.ndarray:
    """The (3, 256) float32 table the image processor maps each channel's values to (module docstring);
    CalibrationError when its output is not that table applied in :func:`patchify`'s layout."""
    pixels = _calibration_image(geo)
    out = image_processor(images=[Image.fromarray(pixels)], return_tensors="np")
    pv = np.asarray(out["pixel_values"])
    grid = np.asarray(out["image_grid_thw"]).reshape(-1).tolist()
    side = pixels.shape[0]
    if grid != [1, side // geo.patch, side // geo.patch]:
        raise CalibrationError(f"the processor resized a {side}x{side} calibration image (grid {grid})")
    if pv.dtype != np.float32:
        raise CalibrationError(f"the processor's pixel_values are {pv.dtype}, not float32")
    patches = patchify(pixels, geo)  # (n, 3, p, p)
    n, c, p, _ = patches.shape
    if pv.shape != (n, c * geo.temporal * p * p):
        raise CalibrationError(f"pixel_values shape {pv.shape}, expected {(n, c * geo.temporal * p * p)}")
    got = pv.reshape(n, c, geo.temporal, p, p)
    table = np.zeros((3, 256), np.float32)
    for ch in range(3):
        values = patches[:, ch].reshape(-1)
        for t in range(geo.temporal):
            floats = got[:, ch, t].reshape(-1)
            first = np.full(256, -1, np.int64)
            order = np.arange(values.size)
            first[values[::-1]] = order[::-1]  # first occurrence of each value
            if (first < 0).any():
                raise CalibrationError("the calibration image lacks some pixel values")
            table[ch] = floats[first]
            if not np.array_equal(table[ch][values], floats):
                raise CalibrationError(f"channel {ch}: the processor's output is not one value per input value in "
                                       "the expected patch layout")
    return table


@dataclass
class PreparedImage:
    """One image in patch layout (uint8, (patches, 3, patch, patch)), its grid (t, h, w), and (``rows``, when
    made on the host) its float32 ``pixel_values`` rows."""

    patches: Any
    grid: tuple[int, int, int]
    rows: Any = None


@dataclass
class PreparedRequest:
    """What :meth:`DirectInputs.prepare` made of one request: token ids (placeholders expanded), its images,
    and the seconds it took."""

    ids: list[int]
    images: list[PreparedImage]
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


class DirectInputs:
    """Direct model inputs for one processor (module docstring). Build with :meth:`create`, which calibrates and
    self-checks; CalibrationError when the direct inputs cannot be shown equal to the processor's."""

    def __init__(self, processor: Any, geo: Geometry, table: np.ndarray, mm_types: bool,
                 host_rows: bool = False) -> None:
        import torch

        self.host_rows = host_rows
        self.key = ("hf-direct", geo, hashlib.sha256(table.tobytes()).hexdigest(), host_rows)
        """Identifies what :meth:`prepare_image` makes (a cache key: equal for equal geometry and table)."""
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.geo = geo
        self.table_np = table
        self.table = torch.from_numpy(table.reshape(-1).copy())
        self.mm_types = mm_types
        self.image_token = getattr(processor, "image_token", "<|image_pad|>")
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(self.image_token)
        self.pad_id = self.tokenizer.pad_token_id
        self._tables: dict[Any, Any] = {}
        self._lock = threading.Lock()  # the Rust tokenizer is shared with the engine thread's decoding

    @classmethod
    def create(cls, processor: Any, *, host_rows: bool = False) -> "DirectInputs":
        """Calibrate against ``processor`` and prove equality (module docstring). ``host_rows``: make each image's
        float rows while preparing it (a model on the CPU); else only ``uint8`` patches, turned into floats on the
        model's device at assembly."""
        geo = geometry_of(processor.image_processor)
        table = calibrate(processor.image_processor, geo)
        if getattr(processor.tokenizer, "padding_side", "left") != "left":
            raise CalibrationError("the tokenizer pads on the right; the engine needs left padding")
        if processor.tokenizer.pad_token_id is None:
            raise CalibrationError("the tokenizer has no pad token")
        self = cls(processor, geo, table, mm_types=False, host_rows=host_rows)
        self.mm_types = self._check_against_processor()
        return self

    # ------------------------------------------------------------------ per request (thread pool)
    def keeps(self, images: Sequence[Image.Image]) -> bool:
        """True when the processor would leave every image unresized (else the batch takes the processor)."""
        return all(self.geo.keeps(*im.size) for im in images)

    def prepare_image(self, image: Image.Image) -> PreparedImage:
        """One RGB image the processor keeps: its ``uint8`` patches (and, ``host_rows``, float rows)."""
        w, h = image.size
        patches = patchify(np.asarray(image.convert("RGB")), self.geo)
        rows = self.host_rows_of(patches) if self.host_rows else None
        return PreparedImage(patches, (1, h // self.geo.patch, w // self.geo.patch), rows)

    def host_rows_of(self, patches: np.ndarray) -> Any:
        """(n, 3, p, p) uint8 -> (n, 3 * temporal * p * p) float32 torch rows, on the host (numpy gathers)."""
        import torch

        n, c, p, _ = patches.shape
        rows = np.empty((n, c, self.geo.temporal, p, p), np.float32)
        for ch in range(c):
            rows[:, ch] = np.take(self.table_np[ch], patches[:, ch])[:, None]
        return torch.from_numpy(rows.reshape(n, -1))

    def prepare(self, text: str, images: Sequence[PreparedImage]) -> PreparedRequest:
        """Token ids of a chat ``text`` (rendered by the processor's template, one placeholder per image) whose
        image placeholders stand for ``images``, in order."""
        t0 = time.perf_counter()
        with self._lock:
            ids = self.tokenizer(text)["input_ids"]
        slots = [i for i, t in enumerate(ids) if t == self.image_token_id]
        if len(slots) != len(images):
            raise ValueError(f"{len(slots)} image placeholders for {len(images)} images")
        merge = self.geo.merge * self.geo.merge
        out: list[int] = []
        last = 0
        for slot, img in zip(slots, images):
            t, h, w = img.grid
            out.extend(ids[last:slot])
            out.extend([self.image_token_id] * (t * h * w // merge))
            last = slot + 1
        out.extend(ids[last:])
        return PreparedRequest(out, list(images), time.perf_counter() - t0)

    # ------------------------------------------------------------------ per batch (engine thread)
    def assemble(self, prepared: Sequence[PreparedRequest], device: Any = "cpu") -> dict:
        """The model inputs of a batch (left padded), tensors on ``device``."""
        import torch

        longest = max(len(p.ids) for p in prepared)
        ids = torch.full((len(prepared), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prepared), longest), dtype=torch.long)
        for row, p in enumerate(prepared):
            if p.ids:
                ids[row, longest - len(p.ids):] = torch.tensor(p.ids, dtype=torch.long)
                mask[row, longest - len(p.ids):] = 1
        images = [im for p in prepared for im in p.images]
        out: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if self.mm_types:
            out["mm_token_type_ids"] = (ids == self.image_token_id).long()
        if images:
            out["image_grid_thw"] = torch.tensor([list(im.grid) for im in images], dtype=torch.long)
            if all(im.rows is not None for im in images):
                out["pixel_values"] = torch.cat([im.rows for im in images]).to(device)
            else:
                out["pixel_values"] = self._pixels(torch.from_numpy(np.concatenate([im.patches for im in images])),
                                                   device)
        return {k: (v if k == "pixel_values" else v.to(device)) for k, v in out.items()}

    def _pixels(self, patches: Any, device: Any) -> Any:
        """(n, 3, p, p) uint8 torch -> (n, 3 * temporal * p * p) float32 on ``device`` through the calibrated
        table (one gather on the device)."""
        import torch

        device = torch.device(device)
        table = self._tables.get(device)
        if table is None:
            table = self._tables[device] = self.table.to(device)
        if device.type == "cuda":
            patches = patches.pin_memory().to(device, non_blocking=True)
        n, c, p, _ = patches.shape
        offsets = (torch.arange(c, device=device, dtype=torch.int32) * 256).view(1, c, 1, 1)
        index = patches.to(device=device, dtype=torch.int32) + offsets
        values = torch.index_select(table, 0, index.reshape(-1)).view(n, c, 1, p, p)
        return values.expand(n, c, self.geo.temporal, p, p).reshape(n, c * self.geo.temporal * p * p)

    # ------------------------------------------------------------------ load-time proof
    def _check_against_processor(self) -> bool:
        """Run a two-request batch through the processor and through this class; every key must be equal.
        Returns whether the processor emits ``mm_token_type_ids``."""
        import torch

        rng = np.random.default_rng(0)
        side = self.geo.factor
        while side * side < self.geo.min_pixels:
            side += self.geo.factor
        sizes = [(side, side), (side + self.geo.factor, side), (side, side)]
        images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]
        texts = [self._chat_text(2, "The target is at [1,2,3,4]. Where is it now?"), self._chat_text(1, "Find it.")]
        ref = self.processor(text=texts, images=images, padding=True, return_tensors="pt")
        extra = set(ref.keys()) - KNOWN_KEYS
        if extra:
            raise CalibrationError(f"the processor returns {', '.join(sorted(extra))}, which direct inputs do not make")
        self.mm_types = "mm_token_type_ids" in ref
        prepared = [self.prepare(texts[0], [self.prepare_image(im) for im in images[:2]]),
                    self.prepare(texts[1], [self.prepare_image(images[2])])]
        for host_rows in (True, False):  # both ways of making the pixel rows
            for p in prepared:
                for im in p.images:
                    im.rows = self.host_rows_of(im.patches) if host_rows else None
            mine = self.assemble(prepared)
            if set(mine) != set(ref.keys()):
                raise CalibrationError(f"keys differ: processor {sorted(ref.keys())}, direct {sorted(mine)}")
            for key, value in ref.items():
                if value.dtype != mine[key].dtype or value.shape != mine[key].shape or not torch.equal(value, mine[key]):
                    raise CalibrationError(f"{key} differs from the processor's ({value.dtype} {tuple(value.shape)} "
                                           f"vs {mine[key].dtype} {tuple(mine[key].shape)})")
        return self.mm_types

    def _chat_text(self, n_images: int, text: str) -> str:
        content = [{"type": "image"}] * n_images + [{"type": "text", "text": text}]
        return self.processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                                  tokenize=False)
