"""Trainer configs -> :class:`r1track.reward.RewardOptions`: the vocabulary EasyR1 and verl configs speak.

Both trainers pass reward options as keyword arguments from YAML / Hydra, where values may arrive as strings
(``"0.2"``, ``"false"``) and think mode is spelled ``mode: think`` | ``no-think``. This module is the one place
that reads that vocabulary; :mod:`r1track.reward` itself takes typed options only.

Accepted keys: ``mode`` (``no-think`` (also ``no_think``, ``nothink``) or ``think``, any case) and every
``RewardOptions`` field except ``think``. Booleans accept ``true/false/1/0/yes/no`` (any case) and 0/1;
numbers accept numeric strings. Anything else raises ``ValueError`` naming the option.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from ..redact import get_logger
from ..reward import RewardOptions, Shaping

__all__ = ["MODES", "OPTION_NAMES", "reward_options"]

MODES = ("no-think", "think")
_MODE_ALIASES = {"no-think": False, "no_think": False, "nothink": False, "think": True}
OPTION_NAMES = ("mode",) + tuple(f.name for f in dataclasses.fields(RewardOptions) if f.name != "think")
"""The keyword names a trainer config may set."""

_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
logger = get_logger(__name__)


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOLS:
        return _BOOLS[value.strip().lower()]
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"reward option {name} must be true or false, got {value!r}")


def _number(name: str, value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"reward option {name} must be a number, got {value!r}") from None
    return value  # RewardOptions checks the type and range


def reward_options(kwargs: Mapping[str, Any], *, ignore_unknown: bool = False) -> RewardOptions:
    """Options from a trainer's keyword arguments. Unknown names raise ``ValueError`` listing the known
    ones, unless ``ignore_unknown`` (then they are dropped with one logged warning)."""
    unknown = sorted(k for k in kwargs if k not in OPTION_NAMES)
    if unknown and not ignore_unknown:
        raise ValueError(f"unknown reward option(s) {', '.join(unknown)}; known: {', '.join(OPTION_NAMES)}")
    if unknown:
        logger.warning("r1track reward: ignoring unknown option(s) %s", ", ".join(unknown))
    values: dict[str, Any] = {}
    for name, value in kwargs.items():
        if name not in OPTION_NAMES:
            continue
        if name == "mode":
            think = _MODE_ALIASES.get(value.strip().lower()) if isinstance(value, str) else None
            if think is None:
                raise ValueError(f"reward option mode must be one of {', '.join(MODES)}, got {value!r}")
            values["think"] = think
        elif name == "strict":
            values[name] = _flag(name, value)
        elif name == "shaping":
            if not isinstance(value, str) or value.strip().lower() not in {s.value for s in Shaping}:
                raise ValueError(f"reward option shaping must be one of {', '.join(s.value for s in Shaping)}, got {value!r}")
            values[name] = Shaping(value.strip().lower())
        else:
            values[name] = _number(name, value)
    return RewardOptions(**values)
