"""PyTracking tracker ``r1track``: an MLLM (Qwen2.5-VL / R1-Track served by vLLM) as a tracker.

Copy or link this folder to ``pytracking/tracker/r1track`` and ``../parameter/r1track`` to
``pytracking/parameter/r1track``, then ``python pytracking/run_tracker.py r1track default ...``.
Everything happens in the installed ``r1track`` package; importing this file opens no connection.
"""

from .r1track_tracker import R1Track


def get_tracker_class():
    return R1Track
