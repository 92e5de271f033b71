"""The registry of published checkpoints: R1-Track's models on the Hugging Face hub and their facts.

Each :class:`Checkpoint` says which tracker preset it was trained for (a name of :data:`r1track.presets.PRESETS`,
which checks the names and that the preset thinks exactly when the checkpoint does), the base model (which decides
its model family: :func:`r1track.models.family_of_checkpoint`; every published one is ``qwen2.5-vl``), how it was trained and whether it is a LoRA adapter that needs a
merge before vLLM or an in-process engine can load it as a model (:mod:`r1track.backends.local` refuses an
unmerged one). :func:`find_checkpoint` recognises a checkpoint from what a user typed.

The facts are the R1-Track release's (its report and the ``WangBiao/*`` model names): the 5k models were trained
with the r1track-v0 prompt, the 100k ones with r1track-v1 (:mod:`r1track.prompts`), only ``R1-Track-GRPO-5k``
thinks, all use 336-px crops, and the SFT releases are LoRA adapters on Qwen2.5-VL-3B-Instruct. The hub cannot
be reached from the machines r1track is developed on, so the model cards were not re-read here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Checkpoint", "CHECKPOINTS", "find_checkpoint"]


@dataclass(frozen=True)
class Checkpoint:
    """A published checkpoint. ``name``: the hub id (also vLLM's default served model name).
    ``preset``: the name of the tracker preset it was trained for (:data:`r1track.presets.PRESETS`).
    ``base_model``: the model it was trained from; its name decides the family. ``family``: a model family's name
    for a full checkpoint whose base model's name does not tell (None: the base model's); a LoRA adapter's family
    is always its base model's. ``lora``: an adapter, to merge into ``base_model`` first (or serve with
    ``--enable-lora``). ``think``: trained to answer with
    ``<think>..</think><answer>..</answer>`` (its preset thinks too; :mod:`r1track.presets` checks that they
    agree)."""

    name: str
    preset: str
    training: str
    data: str
    family: str | None = None
    base_model: str = "Qwen/Qwen2.5-VL-3B-Instruct"
    lora: bool = False
    note: str = ""
    think: bool = False

    @property
    def short_name(self) -> str:
        """The name without its hub owner (``R1-Track-GRPO-5k``)."""
        return self.name.rsplit("/", 1)[-1]


CHECKPOINTS: tuple[Checkpoint, ...] = (
    Checkpoint("WangBiao/R1-Track-GRPO-wo-Think-100k", "default", "GRPO", "100k", note="best: GOT-10k AO 0.680"),
    Checkpoint("WangBiao/R1-Track-GRPO-wo-Think-5k", "v0", "GRPO", "5k"),
    Checkpoint("WangBiao/R1-Track-GRPO-5k", "think", "GRPO", "5k", think=True),
    Checkpoint("WangBiao/R1-Track-SFT-5k-lora", "v0", "SFT", "5k", lora=True),
    Checkpoint("WangBiao/R1-Track-SFT-100k-lora", "default", "SFT", "100k", lora=True),
)


def find_checkpoint(model: str | None) -> Checkpoint | None:
    """The published checkpoint ``model`` names, or None. Matches the hub id or its last path component
    (a local download folder, a served name equal to the repository name), case-insensitively; a
    trailing ``-merged`` (a merged LoRA adapter) is allowed."""
    if not model:
        return None
    key = model.rstrip("/").rsplit("/", 1)[-1].lower()
    key = re.sub(r"[-_]merged$", "", key)
    for ckpt in CHECKPOINTS:
        if key == ckpt.short_name.lower() or model.lower() == ckpt.name.lower():
            return ckpt
    return None
