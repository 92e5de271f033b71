"""r1track preset 'motion': the default settings with the kalman-adaptive search window, for fast targets or a low frame rate (r1track.presets)."""
from r1track.integrations.pytracking import preset_parameters


def parameters():
    return preset_parameters("motion")
