"""r1track preset 'think_instruction_first': think, with the think instruction before the images (the order
R1-Track's think GRPO run trained R1-Track-GRPO-5k with) (r1track.presets)."""
from r1track.integrations.pytracking import preset_parameters


def parameters():
    return preset_parameters("think_instruction_first")
