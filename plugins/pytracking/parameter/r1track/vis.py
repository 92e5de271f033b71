"""r1track preset 'vis': visibility-aware: r1track-vis-v1 prompt (the absent answer []), re-detection over the whole frame after 3 absent or failed frames (r1track.presets)."""
from r1track.integrations.pytracking import preset_parameters


def parameters():
    return preset_parameters("vis")
