"""Model families: everything r1track's contract needs to know about the base model, in one registry.

A :class:`ModelFamily` says how a model of that family sees an image and writes a box:

* the **patch factor** (patch size x spatial merge): every image side is resized to a multiple of it, so
  a square crop reaches the model unresized only when its side is a multiple of the factor and its area
  lies inside the processor's pixel bounds (:meth:`ModelFamily.check_crop_side`);
* the **answer coordinates**: :attr:`Coords.ABSOLUTE` (pixels of the model-input image, Qwen2.5-VL) or
  :attr:`Coords.GRID_1000` (integers on a 0-1000 grid laid over the model-input image, Qwen3-VL and
  Qwen3.5). Boxes in prompts, answers, training targets, rewards and structured-output regexes are in
  these coordinates; everything inside r1track (crops, the tracker's state) stays in pixels, and
  :meth:`ModelFamily.encode_xyxy` / :meth:`ModelFamily.decode_xyxy` are the only bridge;
* the **default crop side**, chosen by visual-token budget: (side / factor)^2 tokens per image;
* the LLaMA-Factory template names and notes for each framework (:attr:`ModelFamily.frameworks`).

Rounding on the 0-1000 grid: a pixel coordinate ``x`` of an image ``W`` pixels wide is written as
``round(x * 1000 / W)`` with Python's ``round`` (half to even), the same integer rounding
:func:`r1track.prompts.format_box` applies to absolute pixels; a grid value ``q`` is read back as
``q * W / 1000``. The round trip moves a coordinate by at most ``W / 2000`` pixels (half a grid step;
0.192 px on a 384-px crop) where absolute pixels move it by at most 0.5 px.

The family is chosen once, by one function, :func:`resolve_family` (``--model-family``, else a server's
``/v1/models`` listing, else what the model tells: a registered checkpoint -- a LoRA adapter by its base model --,
a local ``config.json`` or adapter folder, the name), and reaches every consumer from there
(:attr:`r1track.tracker.TrackerParams.model_family`); a ``--model-family`` that disagrees with what the model
tells is used as asked, with a warning naming both. Where each fact comes from: ``docs/model_families.md``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any, Mapping, Sequence

from .boxes import BoxXYXY
from .checkpoints import Checkpoint, find_checkpoint
from .prompts import GROUNDING_TEMPLATE, answer_regex, box_or_absent_regex
from .qwen import check_crop_side as _check_side
from .qwen import smart_resize

__all__ = [
    "Coords",
    "GRID",
    "ModelFamily",
    "FAMILIES",
    "DEFAULT_FAMILY",
    "family_names",
    "get_family",
    "family_from_name",
    "family_from_model_type",
    "family_from_config",
    "family_from_models_listing",
    "family_of_checkpoint",
    "family_of_model",
    "FamilyChoice",
    "resolve_family",
    "infer_family",
    "UnknownModelFamily",
]

GRID = 1000
"""Size of Qwen3's relative grid: coordinates are integers in [0, 1000] across the model-input image."""


class Coords(str, Enum):
    """How a family writes box coordinates."""

    ABSOLUTE = "absolute"
    """Pixels of the model-input image (after the processor's resize)."""
    GRID_1000 = "grid-1000"
    """Integers on a 0-1000 grid over the model-input image: 0 = left/top edge, 1000 = right/bottom edge."""


class UnknownModelFamily(ValueError):
    """The model's family cannot be told (or a family name is not registered); the message names the families."""


@dataclass(frozen=True)
class ModelFamily:
    """One base-model family (see the module docstring).

    ``patch_size`` x ``merge_size`` = :attr:`factor`. ``min_pixels`` / ``max_pixels``: the published
    checkpoints' processor bounds (``preprocessor_config.json``). ``default_crop_side``: the tracker's crop
    side (144 visual tokens per image in every family). ``data_crop_range``: (smallest, largest) crop side the
    data builder writes; every multiple of the factor in between is allowed. ``grounding_max_pixels``: pixel
    budget of the frame sent for text initialisation (1280 visual tokens). ``model_types``: ``config.json``
    ``model_type`` values. ``name_patterns``: regular expressions (lower case) that recognise a checkpoint
    name. ``lf_template`` / ``lf_template_nothink``: LLaMA-Factory ``template`` for think / no-think
    training. ``frameworks``: per framework (llamafactory, easyr1, verl, vllm), how to keep crops unresized.
    """

    name: str
    label: str
    patch_size: int
    merge_size: int
    min_pixels: int
    max_pixels: int
    coords: Coords
    default_crop_side: int
    data_crop_range: tuple[int, int]
    grounding_max_pixels: int
    model_types: tuple[str, ...]
    name_patterns: tuple[str, ...]
    lf_template: str
    lf_template_nothink: str
    frameworks: Mapping[str, str]
    common_crop_sides: tuple[int, ...] = ()
    grounding_template: str = GROUNDING_TEMPLATE

    @property
    def factor(self) -> int:
        """Side multiple of the model-input frame: patch size x spatial merge."""
        return self.patch_size * self.merge_size

    def tokens(self, side: int) -> int:
        """Visual tokens (after merging) of an unresized ``side x side`` crop."""
        return (side // self.factor) ** 2

    @property
    def data_crop_sides(self) -> tuple[int, ...]:
        """Every crop side the data builder may write for this family (multiples of the factor)."""
        lo, hi = self.data_crop_range
        return tuple(range(lo, hi + 1, self.factor))

    def check_crop_side(self, side: int, *, min_pixels: int | None = None, max_pixels: int | None = None) -> int:
        """``side`` when a ``side x side`` crop reaches this family's model unresized (a multiple of
        :attr:`factor` with its area in the processor bounds, the family's unless given); ValueError naming the
        nearest valid sides otherwise."""
        return _check_side(
            side,
            factor=self.factor,
            min_pixels=self.min_pixels if min_pixels is None else min_pixels,
            max_pixels=self.max_pixels if max_pixels is None else max_pixels,
            label=f"{self.label} patch {self.patch_size} x merge {self.merge_size}",
            common=self.common_crop_sides,
        )

    def model_input_size(self, width: int, height: int, *, min_pixels: int | None = None,
                         max_pixels: int | None = None) -> tuple[int, int]:
        """(width, height) this family's processor turns a ``width x height`` image into (smart_resize with
        :attr:`factor`)."""
        h, w = smart_resize(
            height, width, factor=self.factor,
            min_pixels=self.min_pixels if min_pixels is None else min_pixels,
            max_pixels=self.max_pixels if max_pixels is None else max_pixels,
        )
        return w, h

    # ------------------------------------------------------------------ coordinates
    def encode_xyxy(self, box_xyxy_model: Sequence[float], size: tuple[int, int]) -> tuple[float, ...]:
        """A box in model-input pixels of an image of ``size`` = (width, height), in this family's answer
        coordinates, unrounded (:func:`r1track.prompts.format_box` rounds when writing). Absolute: the same
        values. Grid: ``x * 1000 / width``, ``y * 1000 / height``."""
        if self.coords is Coords.ABSOLUTE:
            return tuple(box_xyxy_model)
        w, h = size
        x1, y1, x2, y2 = (float(v) for v in box_xyxy_model)
        return (x1 * GRID / w, y1 * GRID / h, x2 * GRID / w, y2 * GRID / h)

    def decode_xyxy(self, box_answer: Sequence[float], size: tuple[int, int]) -> BoxXYXY:
        """Inverse of :meth:`encode_xyxy`: a box in this family's answer coordinates (as parsed from a reply
        or a ground-truth string) in model-input pixels of an image of ``size`` = (width, height)."""
        x1, y1, x2, y2 = (float(v) for v in box_answer)
        if self.coords is Coords.ABSOLUTE:
            return BoxXYXY(x1, y1, x2, y2)
        w, h = size
        return BoxXYXY(x1 * w / GRID, y1 * h / GRID, x2 * w / GRID, y2 * h / GRID)

    def quantum_px(self, side: int) -> float:
        """Largest distance (pixels of a ``side``-px image) a coordinate moves through write-and-read:
        0.5 for absolute pixels, ``side / 2000`` on the 0-1000 grid."""
        return 0.5 if self.coords is Coords.ABSOLUTE else side / (2 * GRID)

    def answer_regex(self, crop_side: int, *, absent: bool = False) -> str:
        """Structured-output regex forcing ``[x1,y1,x2,y2]`` in this family's coordinates: absolute ->
        :func:`r1track.prompts.answer_regex` (as many digits as ``crop_side`` has); grid -> each value
        ``1000`` or one to three digits (0..999), so nothing past the grid can be written. ``absent=True``
        (visibility-aware prompts) also admits the absent answer ``[]``."""
        if self.coords is Coords.ABSOLUTE:
            return answer_regex(crop_side, absent=absent)
        d = rf"(?:{GRID}|\d{{1,{len(str(GRID)) - 1}}})"
        box = rf"\[{d},{d},{d},{d}\]"
        return box_or_absent_regex(box) if absent else box

    def describe(self) -> dict[str, Any]:
        """The facts as plain data (for ``stats.json``, ``--help`` and the table of docs/conventions.md)."""
        return {
            "name": self.name,
            "factor": self.factor,
            "coords": self.coords.value,
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
            "default_crop_side": self.default_crop_side,
            "data_crop_sides": list(self.data_crop_sides),
            "lf_template": self.lf_template,
            "lf_template_nothink": self.lf_template_nothink,
        }


_QWEN3_FRAMEWORKS = {
    "llamafactory": "image_min_pixels <= 256*256 and image_max_pixels >= 512*512 (LLaMA-Factory resizes before the "
                    "processor; its defaults 32*32 / 768*768 keep 256..512-px crops); the processor's own bounds "
                    "(65536 .. 16777216) then leave them alone",
    "easyr1": "data.min_pixels <= 65536 and data.max_pixels >= 262144 (EasyR1's default min_pixels 262144 turns "
              "256..480-px crops into 512-px ones)",
    "verl": "its image loader (qwen-vl-utils fetch_image with patch 16) keeps multiples of 32 inside "
            "[4096, 16777216]; the processor's min 65536 is the binding bound: crops >= 256 px",
    "vllm": "serve without --mm-processor-kwargs (or keep size.shortest_edge <= 65536 and "
            "size.longest_edge >= the crop area); --limit-mm-per-prompt '{\"image\":2}'",
}

_QWEN3_VL = ModelFamily(
    name="qwen3-vl",
    label="Qwen3-VL",
    patch_size=16,
    merge_size=2,
    min_pixels=65536,
    max_pixels=16777216,
    coords=Coords.GRID_1000,
    default_crop_side=384,
    data_crop_range=(256, 512),
    grounding_max_pixels=1280 * 32 * 32,
    model_types=("qwen3_vl", "qwen3_vl_moe"),
    name_patterns=(r"qwen3[-_]?vl",),
    lf_template="qwen3_vl",
    lf_template_nothink="qwen3_vl_nothink",
    frameworks=_QWEN3_FRAMEWORKS,
    common_crop_sides=(256, 320, 384, 448, 512),
)
"""Qwen3-VL; Qwen3.5 has the same vision side (processor, factor, bounds, grid) and differs in names only."""

FAMILIES: dict[str, ModelFamily] = {
    f.name: f
    for f in (
        ModelFamily(
            name="qwen2.5-vl",
            label="Qwen2.5-VL",
            patch_size=14,
            merge_size=2,
            min_pixels=3136,
            max_pixels=12845056,
            coords=Coords.ABSOLUTE,
            default_crop_side=336,
            data_crop_range=(112, 504),
            grounding_max_pixels=1280 * 28 * 28,
            model_types=("qwen2_5_vl",),
            name_patterns=(r"qwen2[._]?5[-_]?vl", r"r1-track-(?:grpo|sft)"),  # + the published R1-Track checkpoints
            lf_template="qwen2_vl",
            lf_template_nothink="qwen2_vl",
            frameworks={
                "llamafactory": "image_min_pixels <= 112*112 and image_max_pixels >= 504*504 "
                                "(examples/r1_track_lora_sft.yaml: 1024 / 262144)",
                "easyr1": "data.min_pixels <= 12544 (112*112) and data.max_pixels >= 254016 (504*504); "
                          "the shipped scripts set 3136 / 4194304",
                "verl": "defaults keep 112..504-px crops (qwen-vl-utils bounds 3136 .. 12845056)",
                "vllm": "serve without --mm-processor-kwargs min_pixels/max_pixels; "
                        "--limit-mm-per-prompt '{\"image\":2}'",
            },
            common_crop_sides=(112, 224, 336, 448),
        ),
        _QWEN3_VL,
        replace(_QWEN3_VL, name="qwen3.5", label="Qwen3.5", model_types=("qwen3_5", "qwen3_5_moe"),
                name_patterns=(r"qwen3[._]5",), lf_template="qwen3_5", lf_template_nothink="qwen3_5_nothink"),
    )
}

DEFAULT_FAMILY = "qwen2.5-vl"
"""The family of the published R1-Track checkpoints and of every default in r1track."""


def family_names() -> tuple[str, ...]:
    return tuple(FAMILIES)


def _choices() -> str:
    return ", ".join(FAMILIES)


def get_family(name: str | ModelFamily) -> ModelFamily:
    """The registered family (a :class:`ModelFamily` passes through); :class:`UnknownModelFamily` naming the
    families otherwise."""
    if isinstance(name, ModelFamily):
        return name
    try:
        return FAMILIES[str(name).strip().lower()]
    except KeyError:
        raise UnknownModelFamily(f"unknown model family {name!r}; known: {_choices()}") from None


def _matches(text: str) -> set[str]:
    low = text.lower()
    return {f.name for f in FAMILIES.values() if any(re.search(p, low) for p in f.name_patterns)}


def family_from_name(name: str) -> ModelFamily | None:
    """The family a checkpoint name or path names (``Qwen/Qwen3-VL-4B-Instruct``, ``/models/qwen2_5_vl_3b``,
    ``WangBiao/R1-Track-GRPO-wo-Think-100k``), judged on its last path component first, then on the whole
    string; None when no family or more than one matches."""
    text = str(name).strip().rstrip("/")
    for candidate in (text.rsplit("/", 1)[-1], text):
        found = _matches(candidate)
        if len(found) == 1:
            return FAMILIES[found.pop()]
        if len(found) > 1:
            return None
    return None


def family_from_model_type(model_type: str) -> ModelFamily | None:
    """The family whose ``config.json`` ``model_type`` this is (``qwen3_vl`` -> qwen3-vl), or None."""
    for f in FAMILIES.values():
        if model_type in f.model_types:
            return f
    return None


def family_from_config(path: str | Path) -> ModelFamily | None:
    """The family of a local model: ``path`` is its folder or its ``config.json``; None when there is no
    readable ``config.json`` or its ``model_type`` is not a known family's."""
    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    try:
        config = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    return family_from_model_type(model_type) if isinstance(model_type, str) else None


def family_from_models_listing(listing: object, model: str | None = None) -> ModelFamily | None:
    """The family of a served model from an OpenAI ``GET /v1/models`` answer: the entry whose ``id`` is
    ``model`` (the first entry when None); vLLM reports the path or hub name it loaded as ``root``, which
    is judged first (a local ``config.json`` there, then the name), then ``id``."""
    try:
        entries = [e for e in listing["data"] if isinstance(e, dict)]  # type: ignore[index]
    except (TypeError, KeyError):
        return None
    if model is not None:
        entries = [e for e in entries if e.get("id") == model]
    if not entries:
        return None
    entry = entries[0]
    for key in ("root", "id"):
        value = entry.get(key)
        if isinstance(value, str) and value:
            found = _from_model(value)
            if found is not None:
                return found
    return None


def family_of_checkpoint(ckpt: Checkpoint) -> ModelFamily | None:
    """A registered checkpoint's family: a LoRA adapter's is its base model's (the adapter runs on that model,
    whatever the adapter is called); a full checkpoint's is its ``family`` when the registry gives one, else its
    base model's. None when neither tells."""
    base = family_from_name(ckpt.base_model) if ckpt.base_model else None
    if ckpt.lora and base is not None:
        return base
    if ckpt.family:
        return get_family(ckpt.family)
    return base


def _adapter_base(folder: Path) -> str | None:
    """``base_model_name_or_path`` of a PEFT adapter folder (``adapter_config.json``, no ``config.json``)."""
    if not (folder / "adapter_config.json").is_file() or (folder / "config.json").is_file():
        return None
    try:
        config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    return base if isinstance(base, str) and base else None


def family_of_model(model: str) -> tuple[ModelFamily, str] | None:
    """(family, how it was told) of what ``model`` names, or None: a registered checkpoint
    (:mod:`r1track.checkpoints`; a LoRA adapter by its base model), a local folder's ``config.json``
    ``model_type`` (an adapter folder by its ``adapter_config.json`` base model), else the name."""
    ckpt = find_checkpoint(model)
    if ckpt is not None:
        found = family_of_checkpoint(ckpt)
        if found is not None:
            how = (f"the registered LoRA adapter {ckpt.name} on {ckpt.base_model}" if ckpt.lora
                   else f"the registered checkpoint {ckpt.name}")
            return found, how
    path = Path(model)
    if path.exists():
        found = family_from_config(model)
        if found is not None:
            return found, f"{path / 'config.json' if path.is_dir() else path} (model_type)"
        base = _adapter_base(path) if path.is_dir() else None
        if base is not None and base != model:
            told = family_of_model(base)
            if told is not None:
                return told[0], f"the adapter {path}'s base model {base} ({told[1]})"
    found = family_from_name(model)
    return (found, f"the name {model!r}") if found is not None else None


def _from_model(model: str) -> ModelFamily | None:
    told = family_of_model(model)
    return told[0] if told is not None else None


@dataclass(frozen=True)
class FamilyChoice:
    """What :func:`resolve_family` chose: ``family``, ``source`` (how it was told, for messages) and
    ``warning`` (non-empty when ``--model-family`` disagrees with what the model tells: both are named)."""

    family: ModelFamily
    source: str
    warning: str = ""


def resolve_family(*, family: str | None = None, model: str | None = None, listing: object = None,
                   default: str | None = None, choose: str = "pass --model-family") -> FamilyChoice:
    """The model family of a run -- the one function every command and backend gets it from:

    1. ``family``: a name the user gave (``--model-family``); it wins, and when ``model`` (or ``listing``) tells
       another family, :attr:`FamilyChoice.warning` names both;
    2. ``listing``: a server's ``/v1/models`` answer -- the ``root`` (the path or hub name vLLM loaded) of the
       entry whose ``id`` is ``model`` (the first entry when ``model`` is None), then that ``id``;
    3. ``model``: :func:`family_of_model` (a registered checkpoint, a LoRA adapter by its base model, a local
       folder, the name);
    4. ``default``, when given (backends that ask no model: ``ncc``, ``oracle``).

    Raises :class:`UnknownModelFamily` naming the families when nothing tells and there is no default --
    never a silent guess for a model that answers; ``choose`` says how its reader names one (the command line's
    flag by default; a PyTracking parameter file's attribute)."""
    told: tuple[ModelFamily, str] | None = None
    tried: list[str] = []
    if listing is not None:
        found = family_from_models_listing(listing, model)
        if found is not None:
            told = (found, "the server's /v1/models entry" + (f" for {model!r}" if model else ""))
        else:
            tried.append("the server's /v1/models entry" + (f" for {model!r}" if model else ""))
    if told is None and model is not None:
        told = family_of_model(model)
        if told is None:
            tried.append(repr(model))
    if family is not None:
        chosen = get_family(family)
        warning = ""
        if told is not None and told[0].name != chosen.name:
            what = f"--model {model}" if model else "the served model"
            warning = (f"--model-family {chosen.name} disagrees with {what}, a {told[0].name} model by {told[1]}: "
                       f"using {chosen.name} as asked (crops, prompts and answers follow it; drop --model-family "
                       f"to use {told[0].name})")
        return FamilyChoice(chosen, "--model-family", warning)
    if told is not None:
        return FamilyChoice(told[0], told[1])
    if default is not None:
        return FamilyChoice(get_family(default), "the default" + (f" (nothing tells the family of {model!r})" if model else ""))
    what = ", ".join(tried) or "no model given"
    raise UnknownModelFamily(
        f"cannot tell the model family from {what}; {choose} with one of: {_choices()}"
    )


def infer_family(*, family: str | None = None, model: str | None = None, listing: object = None) -> ModelFamily:
    """The model family, from the first source that tells (:func:`resolve_family` without a default):

    1. ``family``: a name the user gave (``--model-family``);
    2. ``listing``: a server's ``/v1/models`` answer -- the ``root`` (the path or hub name vLLM loaded) of the
       entry whose ``id`` is ``model`` (the first entry when ``model`` is None), then that ``id``;
    3. ``model``: a registered checkpoint (a LoRA adapter by its base model), a local folder / ``config.json``
       whose ``model_type`` decides, or the name.

    Raises :class:`UnknownModelFamily` naming the families when nothing tells -- never a silent default."""
    return resolve_family(family=family, model=model, listing=listing).family
