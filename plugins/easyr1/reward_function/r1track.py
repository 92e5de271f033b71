"""EasyR1 reward function for r1track (loaded by path; the work is in r1track.integrations.easyr1):
worker.reward.reward_function=<this file>:compute_score, reward_function_kwargs.mode=think|no-think."""
from r1track.integrations.easyr1 import REWARD_NAME, REWARD_TYPE, compute_score  # noqa: F401
