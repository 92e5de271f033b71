"""Sampler settings and the named profiles of ``r1track data build``.

Three profiles:

* ``r1track`` (default, ours): pairs from visible frames at most ``max_gap`` frames apart, template
  before search; template crop centred on the target at the tracker's template factor; search crop
  at the tracker's search factor, with centre and scale jitter that imitate a tracker's drift;
  balanced over target aspect ratio and relative scale; prompt ``r1track-v1``.
* ``r1track-5k``: the recipe of the reference R1-Track-5k set (``generation_data/sampling_data.py``):
  two random frames per video in random temporal order, each cropped on its own with area factor
  U(2, 8) and a centre shift of U(-0.2, 0.2) x crop side, 336 px, black padding, prompt
  ``r1track-v0``. docs/training_data.md ("Profiles") lists every place where r1track differs.
* ``r1track-vis``: ``r1track`` plus absent-target samples (``absent_fraction`` 0.2) and the visibility-aware
  prompt ``r1track-vis-v1``, whose answer for an absent target is ``[]``.
* ``r1track-replay``: no sampling at all -- every (template, search) pair the tracker asks about when its model
  answers perfectly from the first box (:mod:`r1track.data.replay`): template from frame 0 at the template
  factor, each search crop around the previous frame's tracked box at the search factor, one crop side, no
  jitter, every sequence in train. The exact "on-policy" distribution of a perfect tracker, and the set of the
  closed-loop check (``docs/closed_loop.md``).

Absent samples (``absent_fraction`` F > 0, pairs only): a share F of the set has a search frame whose target is
absent or fully covered by the dataset's labels (GOT-10k ``absence.label`` / ``cover.label`` 0, LaSOT
``full_occlusion.txt`` / ``out_of_view.txt``; generic folders only with ``absent_from_empty_boxes``, where a
NaN or zero-size box line then means absent), the template a usable frame before it within ``max_gap``, and the
search window centred on the last box seen before the search frame (where a tracker that just lost the target
would look), with the usual search jitter. The answer is ``[]``. Templates are always visible. F = 0 (the
default) plans exactly what it planned before, byte for byte.

All factors are area factors in the sense of :func:`r1track.crop.plan_window`: window side =
``ceil(sqrt(w * h) * factor)`` original pixels.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from ..crop import DecodeMode
from ..models import DEFAULT_FAMILY, get_family
from ..prompts import DEFAULT_THINK_LAYOUT, PROMPTS, check_think_layout, get_prompt
from .. import window

__all__ = [
    "TEMPLATE_FACTOR",
    "SEARCH_FACTOR",
    "MIN_CROP_SIDE",
    "MAX_CROP_SIDE",
    "SUPPORTED_CROP_SIDES",
    "BALANCE_DIMENSIONS",
    "SamplerConfig",
    "LABELLED_DATASETS",
    "PROFILES",
    "DEFAULT_PROFILE",
    "get_profile",
]

TEMPLATE_FACTOR: float = window.TEMPLATE_FACTOR
"""Template area factor of r1track's tracker (4.0, R1-Track's ``template_area_factor``; the default of
``TrackerParams.template_factor``, owned by :mod:`r1track.window`): training templates look exactly like the
ones the tracker sends."""

SEARCH_FACTOR: float = window.SEARCH_FACTOR
"""Search area factor of r1track's tracker (4.0, R1-Track's ``search_area_factor``); training search crops
jitter around it."""

MIN_CROP_SIDE, MAX_CROP_SIDE = get_family(DEFAULT_FAMILY).data_crop_range
SUPPORTED_CROP_SIDES = get_family(DEFAULT_FAMILY).data_crop_sides
"""Every crop side the builder writes for Qwen2.5-VL: multiples of 28 from 112 to 504 px (other families:
``ModelFamily.data_crop_sides``, e.g. multiples of 32 from 256 to 512 for Qwen3-VL). The LLaMA-Factory
example configs (``image_min_pixels`` / ``image_max_pixels``) are checked against all of them."""

BALANCE_DIMENSIONS = ("aspect", "scale")

LABELLED_DATASETS = ("got10k", "lasot")
"""Datasets whose visibility labels say when a target is absent (for absent samples)."""

_ABSENT_FIELDS = ("absent_fraction", "absent_from_empty_boxes")
_REPLAY_IGNORES = ("samples_per_sequence", "max_per_sequence", "max_gap", "balance")
"""Sampling settings a replay build does not use (it takes every frame on the tracker's path)."""


@dataclass(frozen=True)
class SamplerConfig:
    """Everything that decides which samples a build makes (the seed aside).

    ``n_images``: 2 (template, search) or 3 (template, memory, search). ``samples_per_sequence``:
    samples drawn per sequence without balancing, and the average with it (the set has
    ``samples_per_sequence x sequences`` samples unless ``num_samples`` caps it).
    ``max_per_sequence``: cap per sequence when balancing (None = 3 x samples_per_sequence).
    ``max_gap``: largest frame distance template -> search (None = any). ``ordered``: template
    before search in time (False = either order, as the reference). ``memory_max_gap``: largest
    distance memory -> search. Factor ranges are (lo, hi) uniform; jitter centres are fractions of the
    window side (U(-c, c) per axis), scale jitter multiplies the side by exp(U(log lo, log hi)).
    The memory crop is made like a search crop (it is the tracker's previous search crop).
    ``model_family``: the base model's family (:mod:`r1track.models`); prompt boxes and answers are written in
    its coordinates and crop sides follow its rule. ``crop_sides``: each sample draws one side (all its
    images share it); empty = the family's default side (336 or 384). ``balance``: subset of
    ("aspect", "scale"). ``val_fraction``: share of sequences held out for the val split.
    ``absent_fraction``: share of absent-target samples (module docstring; needs a prompt with the absent
    answer). ``absent_from_empty_boxes``: in generic folders, a NaN or zero-size box line means absent.
    ``decode``: how frames are decoded for the crops (:class:`r1track.crop.DecodeMode`): ``exact`` (default,
    full resolution: the pixels the tracker sends with its default ``TrackerParams.decode``) or ``fast``
    (JPEG DCT scaling, as the tracker's ``--decode fast``).
    ``replay``: plan the tracker's perfect path instead of sampling (:mod:`r1track.data.replay`); needs pairs,
    one template factor, one search factor, one crop side and no jitter (the sampling settings
    ``samples_per_sequence``, ``max_per_sequence``, ``max_gap`` and ``balance`` are not used).
    """

    name: str
    n_images: int = 2
    samples_per_sequence: int = 4
    num_samples: int | None = None
    max_per_sequence: int | None = None
    max_gap: int | None = 100
    ordered: bool = True
    memory_max_gap: int = 5
    template_factor: tuple[float, float] = (TEMPLATE_FACTOR, TEMPLATE_FACTOR)
    template_center_jitter: float = 0.0
    search_factor: tuple[float, float] = (SEARCH_FACTOR, SEARCH_FACTOR)
    search_center_jitter: float = 0.125
    search_scale_jitter: tuple[float, float] = (0.8, 1.25)
    crop_sides: tuple[int, ...] = ()
    balance: tuple[str, ...] = BALANCE_DIMENSIONS
    prompt: str = "r1track-v1"
    think: bool = False
    think_layout: str = DEFAULT_THINK_LAYOUT
    fill: tuple[int, int, int] = (0, 0, 0)
    jpeg_quality: int = 95
    decode: str = DecodeMode.EXACT.value
    val_fraction: float = 0.02
    model_family: str = DEFAULT_FAMILY
    absent_fraction: float = 0.0
    absent_from_empty_boxes: bool = False
    replay: bool = False
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        family = get_family(self.model_family)
        object.__setattr__(self, "model_family", family.name)
        object.__setattr__(self, "decode", DecodeMode.parse(self.decode).value)
        if not self.crop_sides:
            object.__setattr__(self, "crop_sides", (family.default_crop_side,))
        self.validate()

    def validate(self) -> None:
        """ValueError naming the setting that is out of range."""
        check_think_layout(self.think_layout)
        if self.n_images not in (2, 3):
            raise ValueError(f"n_images must be 2 (pairs) or 3 (triples), got {self.n_images}")
        p = get_prompt(self.prompt)
        if p.n_images != self.n_images:
            raise ValueError(f"prompt {self.prompt!r} takes {p.n_images} images but samples have {self.n_images}")
        if self.n_images == 3 and not self.ordered:
            raise ValueError("triples need temporal order (template, then memory, then search): set ordered")
        if self.samples_per_sequence < 1:
            raise ValueError(f"samples per sequence must be >= 1, got {self.samples_per_sequence}")
        if self.num_samples is not None and self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
        if self.max_per_sequence is not None and self.max_per_sequence < 1:
            raise ValueError(f"max_per_sequence must be >= 1, got {self.max_per_sequence}")
        if self.max_gap is not None and self.max_gap < 1:
            raise ValueError(f"max_gap must be >= 1 frame, got {self.max_gap}")
        if self.memory_max_gap < 1:
            raise ValueError(f"memory_max_gap must be >= 1 frame, got {self.memory_max_gap}")
        for what, (lo, hi) in (("template factor", self.template_factor), ("search factor", self.search_factor)):
            if not (0 < lo <= hi and math.isfinite(hi)):
                raise ValueError(f"{what} range must satisfy 0 < lo <= hi, got ({lo}, {hi})")
        lo, hi = self.search_scale_jitter
        if not (0 < lo <= hi and math.isfinite(hi)):
            raise ValueError(f"search scale jitter must satisfy 0 < lo <= hi, got ({lo}, {hi})")
        for what, c in (("template", self.template_center_jitter), ("search", self.search_center_jitter)):
            if not (0 <= c < 0.5):
                raise ValueError(f"{what} centre jitter must be in [0, 0.5) of the window side, got {c}")
        family = get_family(self.model_family)
        for s in self.crop_sides:
            family.check_crop_side(s)
            if s not in family.data_crop_sides:
                lo, hi = family.data_crop_range
                raise ValueError(
                    f"crop side {s} px is outside the sizes the builder writes for {family.name} ({lo}..{hi}, "
                    f"multiples of {family.factor}); the shipped training configs keep exactly these unresized"
                )
        bad = [b for b in self.balance if b not in BALANCE_DIMENSIONS]
        if bad:
            raise ValueError(f"unknown balance dimension(s) {bad}; known: {', '.join(BALANCE_DIMENSIONS)}")
        if not (0.0 <= self.absent_fraction < 1.0):
            raise ValueError(f"absent fraction must be in [0, 1), got {self.absent_fraction}")
        if self.absent_fraction > 0 and self.n_images != 2:
            raise ValueError("absent samples are made for pairs only (no triples)")
        if self.absent_fraction > 0 and not p.absent:
            absent_prompts = ", ".join(k for k, v in PROMPTS.items() if v.absent)
            raise ValueError(f"absent samples need a prompt that offers the absent answer [] ({absent_prompts}; "
                             f"profile r1track-vis), not {self.prompt!r}")
        if not (0.0 <= self.val_fraction < 1.0):
            raise ValueError(f"val fraction must be in [0, 1), got {self.val_fraction}")
        if self.replay:
            self._validate_replay()
        if not (1 <= self.jpeg_quality <= 100):
            raise ValueError(f"JPEG quality must be in 1..100, got {self.jpeg_quality}")
        if len(self.fill) != 3 or not all(0 <= int(c) <= 255 for c in self.fill):
            raise ValueError(f"fill must be three values in 0..255, got {self.fill}")

    def _validate_replay(self) -> None:
        """ValueError naming the setting a replay build cannot follow (the tracker has one of each, no jitter)."""
        if self.n_images != 2:
            raise ValueError("a replay set is made of (template, search) pairs: triples are not supported")
        for what, (lo, hi) in (("template factor", self.template_factor), ("search factor", self.search_factor)):
            if lo != hi:
                raise ValueError(f"a replay set follows the tracker, which has one {what}: give one value, "
                                 f"not the range ({lo:g}, {hi:g})")
        if self.template_center_jitter or self.search_center_jitter or tuple(self.search_scale_jitter) != (1.0, 1.0):
            raise ValueError("a replay set has no crop jitter (the tracker's windows are exact): leave the "
                             "template/search centre jitter at 0 and the search scale jitter at 1")
        if len(self.crop_sides) != 1:
            raise ValueError(f"a replay set follows the tracker, which has one crop side: give one, not "
                             f"{', '.join(map(str, self.crop_sides))}")
        if self.absent_fraction > 0:
            raise ValueError("a replay set ends each sequence where the target is lost: --absent-fraction does "
                             "not apply")

    @property
    def cap_per_sequence(self) -> int:
        return self.max_per_sequence or 3 * self.samples_per_sequence

    def replace(self, **changes) -> "SamplerConfig":
        """A copy with ``changes`` applied (validated); None values are ignored. A new ``model_family``
        without ``crop_sides`` takes that family's default side."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if changes.get("model_family", self.model_family) != self.model_family and "crop_sides" not in changes:
            changes["crop_sides"] = ()
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The settings (for ``stats.json``); the absent-sample settings only when they are used, so a build
        without absent samples writes the same ``stats.json`` as before they existed."""
        d = dataclasses.asdict(self)
        d.pop("description")
        if self.absent_fraction == 0 and not self.absent_from_empty_boxes:
            for name in _ABSENT_FIELDS:
                d.pop(name)
        if not self.replay:
            d.pop("replay")
        else:
            for name in _REPLAY_IGNORES:
                d.pop(name)
        return d


PROFILES: dict[str, SamplerConfig] = {
    p.name: p
    for p in (
        SamplerConfig(
            name="r1track",
            description="ours: visible frames, template before search within max_gap, tracker-factor template, "
            "drift-style search jitter, balanced aspect/scale, r1track-v1 prompt",
        ),
        SamplerConfig(
            name="r1track-5k",
            samples_per_sequence=1,
            num_samples=5000,
            max_gap=None,
            ordered=False,
            template_factor=(2.0, 8.0),
            template_center_jitter=0.2,
            search_factor=(2.0, 8.0),
            search_center_jitter=0.2,
            search_scale_jitter=(1.0, 1.0),
            balance=(),
            prompt="r1track-v0",
            think_layout="instruction-first",
            description="reference R1-Track-5k recipe: two random frames per video, independent crops with area "
            "factor U(2,8) and centre shift U(-0.2,0.2) x side, 336 px (the family's default side), r1track-v0 prompt, "
            "black padding; with --think, the reference think-GRPO layout (instruction, images, task)",
        ),
        SamplerConfig(
            name="r1track-vis",
            prompt="r1track-vis-v1",
            absent_fraction=0.2,
            description="r1track plus 20 % absent-target samples (search frame absent or fully covered by the "
            "GOT-10k / LaSOT labels, answer []), r1track-vis-v1 prompt; for visibility-aware tracking (preset vis)",
        ),
        SamplerConfig(
            name="r1track-replay",
            replay=True,
            samples_per_sequence=1,
            max_gap=None,
            search_center_jitter=0.0,
            search_scale_jitter=(1.0, 1.0),
            balance=(),
            val_fraction=0.0,
            description="the tracker's own questions when it tracks perfectly from the first box: template from "
            "frame 0, each search crop around the previous tracked box, tracker factors, one crop side, no jitter, "
            "every sequence in train; what the closed-loop check trains on (docs/closed_loop.md)",
        ),
    )
}

DEFAULT_PROFILE = "r1track"


def get_profile(name: str) -> SamplerConfig:
    """The named profile; ValueError listing the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}") from None
