"""r1track preset 'ncc': the classical baseline: normalised cross-correlation on the same crops, no model (r1track.presets)."""
from r1track.integrations.pytracking import preset_parameters


def parameters():
    return preset_parameters("ncc")
