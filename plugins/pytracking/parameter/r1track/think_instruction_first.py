"""r1track think, instruction first: the 'think' parameters with the think instruction before the images
(think_layout "instruction-first"), the order R1-Track's think GRPO run trained WangBiao/R1-Track-GRPO-5k
with; 'think' keeps the images first, as R1-Track's own inference script sends them."""

from .think import parameters as think_parameters


def parameters():
    params = think_parameters()
    params.think_layout = "instruction-first"
    return params
