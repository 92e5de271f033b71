"""PyTracking tracker ``r1track`` (an MLLM served by vLLM as a tracker); the work is in r1track.integrations.pytracking."""
from r1track.integrations.pytracking import get_tracker_class  # noqa: F401
