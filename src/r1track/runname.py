"""The default folder of an ``r1track eval`` run: ``runs/<dataset>-<split>-<tag><settings>``.

``<tag>`` is :attr:`r1track.presets.Resolved.tag`: the checkpoint, model, backend or preset that answers, plus
``+name=value`` for each tracker flag given. ``<settings>`` adds ``+name=value`` for every *other* setting that
changes the boxes and differs from what the tag alone stands for -- found generically, by comparing the run's
fingerprint (:func:`r1track.evalfolder.fingerprint`: tracker parameters, backend and its options, model,
initialisation, frame limit) with the fingerprint of a reference run: the same tag with every other option at
its default (a backend option's default is read from its class, :func:`r1track.backends.backend_option_defaults`).
A setting added later -- a tracker parameter, a backend option -- is covered without a change here: two runs
whose results may differ get different folders, and the same command always gets the same folder, so a rerun
resumes. Values that would make a name unwieldy are replaced by a short hash of all of them.

Should a default folder still hold a run made with other settings (a folder of an older version, or a setting
no name could tell apart), :func:`default_run_dir` moves to ``<name>+<hash of the settings>`` instead of
refusing to run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from .evalfolder import fingerprint, holds_other_settings
from .evalrun import EvalSettings

__all__ = ["settings_suffix", "settings_hash", "default_run_dir", "MAX_SUFFIX"]

MAX_SUFFIX = 120
"""Longest ``<settings>`` part written out; a longer one becomes ``+settings=<hash>``."""


def _flat(doc: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(doc, dict):
        out: dict[str, Any] = {}
        for k, v in doc.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: doc}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("_") or "none"


def _item(name: str, value: Any) -> str:
    if value is True:
        return f"+{name}"
    if value is False:
        return f"+no-{name}"
    if isinstance(value, str) and "/" in value:  # a model path or hub id: its last component
        value = value.rstrip("/").rsplit("/", 1)[-1]
    return f"+{name}={_slug(str(value))}"


def settings_suffix(settings: EvalSettings, reference: EvalSettings, *, skip: tuple[str, ...] = ()) -> str:
    """``+name=value`` for each fingerprint entry of ``settings`` that differs from ``reference``'s, in
    fingerprint order (``name``: the entry's last part, ``params.search_factor`` -> ``search_factor``; the
    value shown is the setting's own, e.g. ``--oracle-failures`` as typed), leaving out the names in ``skip``
    (those the tag already shows). Longer than :data:`MAX_SUFFIX`: ``+settings=<hash>``."""
    parts = []
    if settings.params.model_family != reference.params.model_family:
        # a family fills its own defaults (crop side, pixel bounds): name the family, then compare the rest
        # with the reference under that family
        parts.append(_item("model_family", settings.params.model_family))
        reference = dataclasses.replace(reference, params=reference.params.replace(model_family=settings.params.model_family))
    mine, ref = _flat(json.loads(json.dumps(fingerprint(settings)))), _flat(json.loads(json.dumps(fingerprint(reference))))
    raw = {**{f"backend_options.{k}": v for k, v in settings.backend_options.items()},
           **{f"params.{f.name}": getattr(settings.params, f.name) for f in dataclasses.fields(settings.params)},
           "backend": settings.backend, "model": settings.model, "init": settings.init, "max_frames": settings.max_frames}
    for key, value in mine.items():
        name = key.rsplit(".", 1)[-1]
        if name in skip or ref.get(key, object()) == value:
            continue
        parts.append(_item(name, raw.get(key, value)))
    suffix = "".join(parts)
    if len(suffix) > MAX_SUFFIX:
        suffix = f"+settings={settings_hash(settings)}"
    return suffix


def settings_hash(settings: EvalSettings) -> str:
    """8 hex digits of the run's fingerprint."""
    blob = json.dumps(fingerprint(settings), sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:8]


def default_run_dir(base: Path, settings: EvalSettings, reference: EvalSettings, *, skip: tuple[str, ...] = ()) -> Path:
    """``base`` (``runs/<dataset>-<split>-<tag>``) plus :func:`settings_suffix`; when that folder holds a run
    made with other settings anyway, ``+<settings hash>`` after it (the same settings always land in the same
    folder)."""
    out = base.with_name(base.name + settings_suffix(settings, reference, skip=skip))
    if holds_other_settings(dataclasses.replace(settings, out_dir=out)):
        out = out.with_name(f"{out.name}+{settings_hash(settings)}")
    return out
