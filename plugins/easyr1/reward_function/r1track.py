"""EasyR1 reward function for r1track: box reward for single-object tracking with Qwen2.5-VL.

EasyR1 loads this file by path as a standalone module (``importlib`` ``spec_from_file_location``), so it
holds no logic and only absolute imports: the scoring lives in the installed ``r1track`` package
(:mod:`r1track.reward`; install r1track into EasyR1's environment with ``pip install -e <r1track checkout>``).

    worker.reward.reward_function=<r1track>/plugins/easyr1/reward_function/r1track.py:compute_score
    worker.reward.reward_function_kwargs.mode=think            # no-think (default) | think
    worker.reward.reward_function_kwargs.shaping=giou          # r1track (default) | giou | iou
    worker.reward.reward_function_kwargs.format_weight=0.05    # any other r1track.reward.RewardConfig option

``compute_score`` takes the batch EasyR1 builds -- a list of ``{"response", "response_length",
"ground_truth"}`` -- and returns one dict per item, in order, each with the same numeric keys (``overall``,
``accuracy``, ``format``, ``giou``, ``iou``, ``length``, ``parsed``); EasyR1 logs their means as
``reward/<key>``. A single dict (EasyR1 releases of April-November 2025 with
``worker.reward.reward_type=sequential``) gives a single dict back.
"""

from r1track.reward import RewardConfig, score_batch, score_input

REWARD_NAME = "r1track"
REWARD_TYPE = "batch"


def compute_score(reward_inputs, **kwargs):
    """Score EasyR1 reward inputs (a list of dicts, or one dict); kwargs are ``RewardConfig`` options."""
    config = RewardConfig.from_kwargs(kwargs)
    if isinstance(reward_inputs, dict):
        return score_input(reward_inputs, config)
    return score_batch(reward_inputs, config)
