"""Named tracker presets and the registry of published checkpoints: a name picks the settings.

A **preset** is a named :class:`~r1track.tracker_params.TrackerParams` plus the backend it runs on (``default``,
``v0``, ``think``, ``memory``, ``vis``, ``motion``, ``ncc``). A **checkpoint** is a published model (R1-Track's, on the Hugging
Face hub) with the preset it was trained for and its model facts (:mod:`r1track.checkpoints`, whose names are
importable from here too; this module checks that every checkpoint's preset exists and thinks when it does).

:func:`resolve` turns what a user typed into settings, with one precedence everywhere (``r1track eval``,
``r1track track``, the PyTracking parameter files): an explicit tracker flag > ``--preset`` > the preset of a
known checkpoint named by ``--model`` > ``default``. An unknown model name uses the default preset and the
message says so. :attr:`Resolved.message` is what commands print at start; :attr:`Resolved.tag` names the
run (``runs/<dataset>-<split>-<tag>``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from .backends import get_backend_spec
from .checkpoints import CHECKPOINTS, Checkpoint, find_checkpoint
from .models import family_of_model
from .tracker_params import TrackerParams

__all__ = [
    "Preset",
    "Checkpoint",
    "Resolved",
    "PRESETS",
    "CHECKPOINTS",
    "DEFAULT_PRESET",
    "get_preset",
    "chosen_preset",
    "find_checkpoint",
    "resolve",
    "checkpoint_table",
]

DEFAULT_PRESET = "default"


@dataclass(frozen=True)
class Preset:
    """A named tracker configuration. ``params``: the tracker settings; ``backend``: a name of
    :data:`r1track.backends.BACKENDS` it runs on by default."""

    name: str
    summary: str
    params: TrackerParams = field(default_factory=TrackerParams)
    backend: str = "openai"


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("default", "no think, r1track-v1 prompt, 336-px crops (the R1-Track-100k checkpoints)"),
        Preset("v0", "no think, r1track-v0 prompt, 336-px crops (the R1-Track-5k no-think checkpoints)",
               TrackerParams(prompt_version="r1track-v0")),
        Preset("think", "think mode, r1track-v0 prompt, 1024 reply tokens (R1-Track-GRPO-5k)",
               TrackerParams(prompt_version="r1track-v0", think=True)),
        Preset("think_instruction_first", "think, with the think instruction before the images: the order "
               "R1-Track's think GRPO run trained R1-Track-GRPO-5k with",
               TrackerParams(prompt_version="r1track-v0", think=True, think_layout="instruction-first")),
        Preset("memory", "no think, 3 images (template, last confident crop, search); serve with "
               "--limit-mm-per-prompt '{\"image\":3}'", TrackerParams(memory=True)),
        Preset("vis", "visibility-aware: r1track-vis-v1 prompt (the absent answer []), re-detection over the whole "
               "frame after 3 absent or failed frames; for models trained with --absent-fraction (not the R1-Track "
               "checkpoints, which never learnt to answer absent)",
               TrackerParams(prompt_version="r1track-vis-v1", redetect_after=3)),
        Preset("motion", "the default settings with the kalman-adaptive search window (r1track.window): for fast "
               "targets or a low frame rate; same crops and prompt, so any checkpoint",
               TrackerParams(window_policy="kalman-adaptive")),
        Preset("ncc", "the classical baseline: normalised cross-correlation on the same crops, no model",
               TrackerParams(), backend="ncc"),
    )
}


def _check_checkpoints() -> None:
    """Every published checkpoint names a preset, and thinks exactly when that preset does."""
    for c in CHECKPOINTS:
        preset = PRESETS.get(c.preset)
        if preset is None:
            raise ValueError(f"checkpoint {c.name}: unknown preset {c.preset!r}; known: {', '.join(PRESETS)}")
        if preset.params.think != c.think:
            raise ValueError(f"checkpoint {c.name}: think={c.think} but its preset {c.preset!r} has think={preset.params.think}")


_check_checkpoints()


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ValueError listing the known names otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None


def _describe(params: TrackerParams) -> str:
    mode = "think" if params.think else "no think"
    version = params.memory_prompt_version if params.memory else params.prompt_version
    return f"{params.model_family}, {mode}, {version}, {params.crop_size} px, max_tokens {params.effective_max_tokens}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("_") or "model"


@dataclass(frozen=True)
class Resolved:
    """The outcome of :func:`resolve`. ``params``: the tracker settings to run; ``preset``: the preset
    they start from; ``checkpoint``: the known checkpoint ``--model`` named (None if unknown or not
    given); ``overrides``: the explicit settings applied on top; ``backend``: the backend to use;
    ``message``: one line for the user; ``tag``: the run's name; ``named``: what the tag's first part names
    (``model``, ``backend`` or ``preset``), so a run folder can add what it does not show
    (:mod:`r1track.runname`)."""

    params: TrackerParams
    preset: Preset
    checkpoint: Checkpoint | None
    overrides: dict[str, Any]
    backend: str
    message: str
    tag: str
    named: str = "preset"


def chosen_preset(preset: str | None = None, model: str | None = None) -> Preset:
    """The preset settings start from: ``preset`` when given, else a known checkpoint's own, else the default.
    ValueError on an unknown preset name."""
    ckpt = find_checkpoint(model)
    return get_preset(preset) if preset else get_preset(ckpt.preset) if ckpt else get_preset(DEFAULT_PRESET)


def resolve(
    preset: str | None = None,
    model: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    backend: str | None = None,
    family: str | None = None,
) -> Resolved:
    """Settings from a preset name, a model name and explicit tracker settings (``TrackerParams`` field
    -> value; they always win). ``backend``: an explicit backend name, else the preset's. ``family``: the
    model family found for the model (:func:`r1track.models.resolve_family`); an explicit ``model_family``
    setting wins over it, and it over what ``model`` itself tells (:func:`r1track.models.family_of_model`: a
    known checkpoint, a LoRA adapter's base model, a folder's config, the name); when nothing tells, the
    preset's. Raises ValueError on an unknown preset, an unknown field or an invalid combination."""
    overrides = dict(overrides or {})
    known = {f.name for f in fields(TrackerParams)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown tracker setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    ckpt = find_checkpoint(model)
    chosen = chosen_preset(preset, model)
    base = chosen.params
    changes = dict(overrides)
    if "search_factor" in changes and "max_search_factor" not in changes:  # widen at least to the new factor
        changes["max_search_factor"] = max(base.max_search_factor, changes["search_factor"])
    if "model_family" not in changes:
        told = family_of_model(model) if model and not family else None
        if family or told:
            changes["model_family"] = family or told[0].name  # type: ignore[index]
    params = base.replace(**changes)
    backend = backend or chosen.backend
    spec = get_backend_spec(backend)  # ValueError naming the known backends
    asks_model = spec.needs_server or spec.in_process
    if preset:
        why = f"preset {chosen.name}"
        if ckpt and ckpt.preset != chosen.name:
            why += f" (--preset wins over {ckpt.short_name}'s own preset {ckpt.preset})"
    elif ckpt:
        why = f"{ckpt.name}: known checkpoint, preset {chosen.name}"
    elif model:
        why = f"model {model!r} is not a known checkpoint: default preset (choose one with --preset)"
    else:
        why = "default preset"
    message = f"{why}: {_describe(params)}, backend {backend}"
    if overrides:
        message += "; explicit: " + ", ".join(f"{k}={v!r}" for k, v in overrides.items())
    if ckpt and ckpt.lora:
        message += (f"; note: {ckpt.short_name} is a LoRA adapter: merge it into {ckpt.base_model} first "
                    "(or serve it with vLLM --enable-lora)")
    named = "model"
    if ckpt and asks_model and not preset:
        base_tag = ckpt.short_name
    elif model and asks_model and not preset:
        base_tag = _slug(model.rstrip("/").rsplit("/", 1)[-1])
    elif not preset and backend != chosen.backend:
        base_tag, named = backend, "backend"
    else:
        base_tag, named = chosen.name, "preset"
    tag = base_tag + "".join(
        f"+{k}" if v is True else f"+no-{k}" if v is False else f"+{k}={_slug(str(v))}" for k, v in sorted(overrides.items())
    )
    return Resolved(params, chosen, ckpt, overrides, backend, message, tag, named)


def checkpoint_table() -> str:
    """The README's table of published checkpoints (Markdown), generated from :data:`CHECKPOINTS`."""
    rows = [
        "| checkpoint | training | mode | preset (`--preset`, PyTracking parameter file) | r1track settings |",
        "|---|---|---|---|---|",
    ]
    for c in CHECKPOINTS:
        p = PRESETS[c.preset].params
        extra = f" ({c.note})" if c.note else ""
        lora = "; LoRA adapter: merge into Qwen2.5-VL-3B-Instruct first (or serve with `--enable-lora`)" if c.lora else ""
        rows.append(
            f"| `{c.name}`{extra} | {c.training} {c.data} | {'think' if p.think else 'no think'} | `{c.preset}` "
            f"| `{p.prompt_version}`, {p.crop_size} px, max_tokens {p.effective_max_tokens}{lora} |"
        )
    return "\n".join(rows) + "\n"
