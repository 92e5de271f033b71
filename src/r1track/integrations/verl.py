"""verl (PyPI ``verl`` 0.9.x) custom reward function: ``compute_score`` for NaiveRewardManager and friends.

Configure (Hydra overrides of ``verl.trainer.main_ppo``)::

    reward.custom_reward_function.path=pkg://r1track.integrations.verl
    reward.custom_reward_function.name=compute_score                      # the default
    +reward.custom_reward_function.reward_kwargs.mode=think               # any reward option

verl calls ``compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=..., **kw)`` once
per sample, with ``ground_truth`` = the row's ``reward_model["ground_truth"]`` (the data builder writes the box
as a JSON string ``"[x1,y1,x2,y2]"`` in model-input pixels; a list of 4 numbers works too). ``reward_kwargs``
from the config are merged over the call's kwargs. Keyword arguments that are not
reward options (:mod:`r1track.integrations.reward_kwargs`; verl may pass reward-router arguments) are ignored,
with one logged warning.

Returns a dict with fixed keys, all finite floats: ``score`` (the reward, :mod:`r1track.reward`'s
``overall``), ``acc`` (= ``iou``: verl's core validation metric ``val-core/<data_source>/acc/mean@N`` becomes the
rollouts' average overlap, comparable across shapings), and ``accuracy``, ``format``, ``giou``, ``iou``,
``length``, ``parsed`` as documented in :mod:`r1track.reward`.

verl does not pass the reply's token count, so think mode's minimum-length gate and over-length penalty are
skipped here (``response_length`` may be given as a keyword to enable them).

Imports neither verl nor torch.
"""

from __future__ import annotations

from typing import Any

from ..reward import score_reply
from .reward_kwargs import reward_options

__all__ = ["SCORE_KEYS", "compute_score"]

SCORE_KEYS = ("score", "acc", "accuracy", "format", "giou", "iou", "length", "parsed")
"""The keys of every dict :func:`compute_score` returns, in this order."""


def compute_score(
    data_source: object = None,
    solution_str: object = None,
    ground_truth: object = None,
    extra_info: object = None,
    **kwargs: Any,
) -> dict[str, float]:
    """Score one decoded reply against its ground-truth box (see the module docstring). ``data_source`` and
    ``extra_info`` are accepted and not used. Never raises on data; raises ``ValueError`` on a bad
    reward option value."""
    response_length = kwargs.pop("response_length", None)
    options = reward_options(kwargs, ignore_unknown=True)
    s = score_reply(solution_str, ground_truth, response_length, options)
    return {
        "score": s["overall"],
        "acc": s["iou"],
        "accuracy": s["accuracy"],
        "format": s["format"],
        "giou": s["giou"],
        "iou": s["iou"],
        "length": s["length"],
        "parsed": s["parsed"],
    }
