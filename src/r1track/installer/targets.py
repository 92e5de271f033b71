"""The registry of installers: one per framework, each a module of this package holding its
:class:`~r1track.installer.plan.TargetSpec`. The keys are the ``r1track install`` flags (``--llamafactory``...)."""

from __future__ import annotations

from . import easyr1, llamafactory, pytracking
from .plan import TargetSpec

__all__ = ["TARGETS"]

TARGETS: dict[str, TargetSpec] = {spec.name: spec for spec in (llamafactory.SPEC, easyr1.SPEC, pytracking.SPEC)}
