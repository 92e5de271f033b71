"""r1track preset 'v0': no think, r1track-v0 prompt, 336-px crops (the R1-Track-5k no-think checkpoints) (r1track.presets)."""
from r1track.integrations.pytracking import preset_parameters


def parameters():
    return preset_parameters("v0")
