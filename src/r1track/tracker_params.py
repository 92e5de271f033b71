"""Every setting of the tracker in one dataclass, :class:`TrackerParams`, with the reference R1-Track values as
defaults and each field's help text: the ``r1track eval`` / ``r1track track`` flags, their ``--help``, the
PyTracking parameter files and the presets (:mod:`r1track.presets`) are all made from it.

The model family (:mod:`r1track.models`) fills the sizes left None; the window policy (:mod:`r1track.window`)
reads the window fields; :meth:`TrackerParams.sampling` is what every tracking request carries.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, replace
from typing import Any

from .backends.base import Sampling
from .crop import DecodeMode
from .models import DEFAULT_FAMILY, FAMILIES, ModelFamily, get_family
from .prompts import DEFAULT_THINK_LAYOUT, DEFAULT_VERSION, check_think_layout, get_prompt
from .window import SEARCH_FACTOR, TEMPLATE_FACTOR, WINDOW_POLICIES, WindowPolicy, check_window_policy, widened_search_factor

__all__ = ["TrackerParams", "FAMILY_DEFAULTED", "legacy_values"]


def _setting(default: Any, help: str, *, choices: tuple[str, ...] | None = None, **legacy: Any) -> Any:
    """A :class:`TrackerParams` field with its help text (the one place it is written) and, for a setting that
    takes one of a few names, its ``choices`` (the command line's flag offers them). A field added after a
    release says, as ``legacy=VALUE``, the value that reproduces what runs saved before it existed did (often its
    default; another value when the default changes the boxes): an ``r1track eval`` run folder saved without the
    field then resumes as if it had been saved with that value (:func:`r1track.evalfolder.check_fingerprint`)."""
    if set(legacy) - {"legacy"}:
        raise TypeError(f"unknown keyword(s) {sorted(set(legacy) - {'legacy'})}")
    return field(default=default, metadata={"help": help, **({"choices": choices} if choices else {}), **legacy})


FAMILY_DEFAULTED = ("crop_size", "model_min_pixels", "model_max_pixels", "grounding_max_pixels", "redetect_crop_size")
"""The :class:`TrackerParams` fields a model family fills when they are left None."""


def _family_defaults(family: ModelFamily) -> tuple[tuple[str, int], ...]:
    """(field, the family's value) for each of :data:`FAMILY_DEFAULTED`."""
    values = (family.default_crop_side, family.min_pixels, family.max_pixels, family.grounding_max_pixels,
              max(family.data_crop_sides))
    return tuple(zip(FAMILY_DEFAULTED, values))


@dataclass(frozen=True)
class TrackerParams:
    """Every setting of the tracker, with the reference R1-Track values as defaults.

    Each field carries its help text (``dataclasses.fields(TrackerParams)[i].metadata["help"]``): the
    list below, the ``r1track eval`` / ``r1track track`` flags and their ``--help`` are generated from it.
    Named combinations for the published checkpoints live in :mod:`r1track.presets`.

    ``model_family`` (:mod:`r1track.models`) fills the settings left None -- ``crop_size``,
    ``model_min_pixels``, ``model_max_pixels``, ``grounding_max_pixels`` -- with the family's values, decides
    the crop-side rule and writes/reads every box in the family's coordinates. :meth:`replace` with a new family
    and none of those four takes the new family's values.
    """

    # Prompt and model frame
    prompt_version: str = _setting(DEFAULT_VERSION, "prompt version ('r1track prompts show' lists all); r1track-v1 is "
                                   "the R1-Track-100k prompt, r1track-v0 the R1-Track-5k one")
    think: bool = _setting(False, "think mode: R1-Track's think wrapper, the answer read from <answer>")
    think_layout: str = _setting(DEFAULT_THINK_LAYOUT, "think mode: 'images-first' (images, think instruction, task) "
                                 "or 'instruction-first' (instruction, images, task: the layout R1-Track's think GRPO "
                                 "run trained R1-Track-GRPO-5k with; see r1track.prompts.ThinkLayout)")
    # The base model's family: fills the None defaults below (r1track.models).
    model_family: str = _setting(DEFAULT_FAMILY, "the served model's family: " + ", ".join(FAMILIES) + " (crop rule, "
                                 "box coordinates -- pixels or Qwen3's 0-1000 grid --, regex and the defaults below); "
                                 "commands with a server infer it from /v1/models (root) or the model name and refuse "
                                 "an unknown model")
    crop_size: int | None = _setting(None, "crop side in px: a multiple of the family's factor (28 for qwen2.5-vl, "
                                     "default 336; 32 for qwen3, default 384) whose area lies in [model_min_pixels, "
                                     "model_max_pixels], so the model sees the crop unresized")
    model_min_pixels: int | None = _setting(None, "the served processor's min_pixels (default: the family's, "
                                            "3136 for qwen2.5-vl, 65536 for qwen3)")
    model_max_pixels: int | None = _setting(None, "the served processor's max_pixels (default: the family's); set "
                                            "both to the server's mm_processor_kwargs when those differ")
    template_factor: float = _setting(TEMPLATE_FACTOR, "template crop window side = ceil(sqrt(w*h) * factor) original px")
    search_factor: float = _setting(SEARCH_FACTOR, "search crop window side = ceil(sqrt(w*h) * factor) original px")
    window_policy: str = _setting(
        WindowPolicy.LAST_BOX.value,
        "where the search window goes (r1track.window): last-box (R1-Track's: centred on the last box), "
        "constant-velocity (last box + smoothed velocity), kalman (a Kalman filter's predicted centre and "
        "size), adaptive (last box, factor grown with the speed), kalman-adaptive (Kalman centre, factor "
        "grown with its uncertainty); the crop side and the prompt stay the same",
        choices=WINDOW_POLICIES, legacy=WindowPolicy.LAST_BOX.value)  # added after 9ee8746: runs saved before were last-box
    decode: str = _setting(DecodeMode.EXACT.value, "how frame files are decoded: 'exact' (full resolution: a frame "
                           "gives the same crop whether it is a path, a PIL image or an array) or 'fast' (JPEGs at "
                           "the coarsest DCT scale the crop needs, 1/2 to 1/8: less client CPU for large targets, "
                           "slightly different pixels; r1track.crop.DecodeMode)",
                           choices=tuple(m.value for m in DecodeMode),
                           legacy=DecodeMode.FAST.value)  # added after 9ee8746: runs saved before decoded JPEGs fast
    # Sampling
    temperature: float = _setting(0.0, "sampling temperature (0: greedy)")
    top_p: float = _setting(1.0, "nucleus sampling top_p")
    seed: int | None = _setting(None, "sampling seed sent to the server (None: none sent)")
    max_tokens: int | None = _setting(None, "max reply tokens (None: 48 without think, 1024 with think)")
    structured_output: bool = _setting(False, "no-think only: send vLLM's structured_outputs regex forcing "
                                       "[x1,y1,x2,y2] (vLLM >= 0.12; other servers may reject the field)")
    # Sanity checks (a failed check is a fallback frame, counted by reason)
    min_inside_fraction: float = _setting(0.5, "at least this share of the answer's area must lie inside the crop")
    min_box_px: float = _setting(1.0, "the answer clipped to the crop must be at least this wide and high (model px)")
    max_scale_change: float = _setting(2.0, "sqrt(area ratio) to the last accepted box must lie in [1/x, x]")
    require_think_format: bool = _setting(False, "think mode: also fail replies not exactly "
                                          "<think>..</think><answer>..</answer> (R1-Track's reward gate)")
    # Failure policy
    widen_step: float = _setting(1.0, "the search factor grows by this per consecutive failure ...")
    max_search_factor: float = _setting(8.0, "... up to this; back to search_factor on a good answer")
    redetect_after: int = _setting(0, "after this many consecutive absent or failed frames, search the whole frame "
                                   "(one square letterboxed crop) until the target is found again; 0: never")
    redetect_crop_size: int | None = _setting(None, "crop side of a re-detection search (default: the family's "
                                              "largest training crop side, 504 for qwen2.5-vl, 512 for qwen3; crop_size when that "
                                              "exceeds model_max_pixels)")
    # Memory frame (3 images: template, last confident search crop, search)
    memory: bool = _setting(False, "3 images per request: template, last confident crop, search (the server "
                            "needs --limit-mm-per-prompt '{\"image\":3}')")
    memory_prompt_version: str = _setting("r1track-mem-v1", "the 3-image prompt used with memory")
    memory_update_every: int = _setting(1, "refresh the memory with every n-th good answer (until the first, the "
                                        "template is the memory)")
    # Text initialisation (initialize(image, text=...))
    grounding_max_pixels: int | None = _setting(None, "the first frame is resized to the model frame under this "
                                                "pixel budget (and model_max_pixels) for text grounding (default: "
                                                "1280 visual tokens of the family)")

    def __post_init__(self) -> None:
        family = get_family(self.model_family)
        object.__setattr__(self, "model_family", family.name)
        object.__setattr__(self, "decode", DecodeMode.parse(self.decode).value)  # a plain string: JSON, run names
        redetect_side_given = self.redetect_crop_size is not None
        for name, default in _family_defaults(family):
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)
        family.check_crop_side(self.crop_size, min_pixels=self.model_min_pixels, max_pixels=self.model_max_pixels)
        if not redetect_side_given and self.redetect_crop_size ** 2 > self.model_max_pixels:
            # the family's default re-detection side does not fit a smaller processor bound: use the crop side
            object.__setattr__(self, "redetect_crop_size", self.crop_size)
        if redetect_side_given or self.redetect_after:
            family.check_crop_side(self.redetect_crop_size, min_pixels=self.model_min_pixels,
                                   max_pixels=self.model_max_pixels)
        if isinstance(self.redetect_after, bool) or not isinstance(self.redetect_after, int) or self.redetect_after < 0:
            raise ValueError(f"redetect_after must be an integer >= 0, got {self.redetect_after!r}")
        check_think_layout(self.think_layout)
        object.__setattr__(self, "window_policy", check_window_policy(self.window_policy).value)
        if get_prompt(self.prompt_version).n_images != 2:
            raise ValueError(f"prompt_version {self.prompt_version!r} is not a 2-image (template, search) prompt")
        if self.memory and get_prompt(self.memory_prompt_version).n_images != 3:
            raise ValueError(f"memory_prompt_version {self.memory_prompt_version!r} is not a 3-image prompt")
        for name in ("template_factor", "search_factor", "max_search_factor", "max_scale_change"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")
        if self.max_search_factor < self.search_factor:
            raise ValueError(f"max_search_factor {self.max_search_factor} < search_factor {self.search_factor}")
        if self.max_scale_change < 1:
            raise ValueError(f"max_scale_change must be >= 1, got {self.max_scale_change}")
        if not (self.widen_step >= 0 and math.isfinite(self.widen_step)):
            raise ValueError(f"widen_step must be >= 0, got {self.widen_step}")
        if not 0 <= self.min_inside_fraction <= 1:
            raise ValueError(f"min_inside_fraction must be in [0, 1], got {self.min_inside_fraction}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.memory_update_every < 1:
            raise ValueError(f"memory_update_every must be >= 1, got {self.memory_update_every}")
        if self.grounding_max_pixels < self.model_min_pixels:
            raise ValueError(f"grounding_max_pixels {self.grounding_max_pixels} < model_min_pixels {self.model_min_pixels}")

    @property
    def family(self) -> ModelFamily:
        """The :class:`~r1track.models.ModelFamily` of ``model_family``."""
        return get_family(self.model_family)

    def replace(self, **changes: Any) -> "TrackerParams":
        """A copy with ``changes`` (validated). A different ``model_family`` without ``crop_size``,
        ``model_min_pixels``, ``model_max_pixels`` or ``grounding_max_pixels`` takes the new family's values for
        the ones not given."""
        if "model_family" in changes and get_family(changes["model_family"]).name != self.model_family:
            for name, _ in _family_defaults(self.family):
                changes.setdefault(name, None)
        return replace(self, **changes)

    @property
    def effective_max_tokens(self) -> int:
        """``max_tokens``, or its default: 1024 with think, 48 without."""
        if self.max_tokens is not None:
            return self.max_tokens
        return 1024 if self.think else 48

    def sampling(self) -> Sampling:
        """The :class:`Sampling` every tracking request of these params carries."""
        regex = None
        if self.structured_output and not self.think:
            side = max(self.crop_size, self.redetect_crop_size if self.redetect_after else 0)
            regex = self.family.answer_regex(side, absent=self.visibility_aware)
        return Sampling(self.temperature, self.top_p, self.effective_max_tokens, regex, self.seed)

    @property
    def visibility_aware(self) -> bool:
        """Whether the tracking prompt offers the absent answer (then results carry presence scores)."""
        return get_prompt(self.memory_prompt_version if self.memory else self.prompt_version).absent

    def search_factor_after(self, failures: int) -> float:
        """Search factor after ``failures`` consecutive failures (widened, capped;
        :func:`r1track.window.widened_search_factor`)."""
        return widened_search_factor(self.search_factor, self.widen_step, self.max_search_factor, failures)


def _document_fields(cls: type) -> None:
    defaults = cls()
    lines = [f"    * ``{f.name}`` = ``{getattr(defaults, f.name)!r}``: {f.metadata.get('help', '')}" for f in dataclasses.fields(cls)]
    cls.__doc__ = (cls.__doc__ or "") + "\n    Fields:\n\n" + "\n".join(lines) + "\n"


_document_fields(TrackerParams)


def legacy_values() -> dict[str, Any]:
    """Field name -> the value that reproduces runs saved before the field existed, for every
    :class:`TrackerParams` field added since saved settings were first written (see :func:`_setting`)."""
    return {f.name: f.metadata["legacy"] for f in dataclasses.fields(TrackerParams) if "legacy" in f.metadata}
