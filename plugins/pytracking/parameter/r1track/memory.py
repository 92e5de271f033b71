"""r1track preset 'memory': no think, 3 images (template, last confident crop, search); serve with --limit-mm-per-prompt '{"image":3}' (r1track.presets)."""
from r1track.integrations.pytracking import preset_parameters


def parameters():
    return preset_parameters("memory")
