"""r1track preset 'default': no think, r1track-v1 prompt, 336-px crops (the R1-Track-100k checkpoints) (r1track.presets)."""
from r1track.integrations.pytracking import preset_parameters


def parameters():
    return preset_parameters("default")
