"""r1track preset 'think': think mode, r1track-v0 prompt, 1024 reply tokens (R1-Track-GRPO-5k) (r1track.presets)."""
from r1track.integrations.pytracking import preset_parameters


def parameters():
    return preset_parameters("think")
