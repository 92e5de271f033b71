"""EasyR1 reward function: ``compute_score`` for EasyR1's batch (and older sequential) reward managers.

EasyR1 loads ``examples/reward_function/r1track.py`` (the plugin file, a one-line re-export of this module) by
path and calls ``compute_score(reward_inputs, **reward_function_kwargs)``:

* current EasyR1 (``worker.reward.reward_type=batch``, the file's ``REWARD_TYPE``): a list of
  ``{"response", "response_length", "ground_truth"}`` dicts -> one score dict per item, in order;
* EasyR1 releases of April-November 2025 with ``worker.reward.reward_type=sequential``: one such dict -> one
  score dict.

Each score dict has the keys of :data:`r1track.reward.SCORE_KEYS` (EasyR1 logs their means as
``reward/<key>``); ``reward_function_kwargs`` are read by :func:`r1track.integrations.reward_kwargs.reward_options`
(``mode=think``, ``shaping=giou``, ...). A malformed item scores as a failure (logged), never raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..redact import get_logger
from ..reward import RewardOptions, failure_scores, score_reply
from .reward_kwargs import reward_options

__all__ = ["REWARD_NAME", "REWARD_TYPE", "compute_score", "score_input"]

REWARD_NAME = "r1track"
REWARD_TYPE = "batch"

logger = get_logger(__name__)


def score_input(reward_input: object, options: RewardOptions) -> dict[str, float]:
    """Score one EasyR1 ``RewardInput`` mapping; a non-mapping gives the failure dict (logged)."""
    if not isinstance(reward_input, Mapping):
        logger.warning("r1track reward: reward input is a %s, not a mapping: scored as a failure", type(reward_input).__name__)
        return failure_scores(options)
    return score_reply(
        reward_input.get("response"), reward_input.get("ground_truth"), reward_input.get("response_length"), options
    )


def compute_score(reward_inputs: Any, **kwargs: Any) -> Any:
    """Score EasyR1 reward inputs (a list of dicts, or one dict); kwargs are the reward function kwargs."""
    options = reward_options(kwargs)
    if isinstance(reward_inputs, Mapping):
        return score_input(reward_inputs, options)
    return [score_input(item, options) for item in reward_inputs]
