"""r1track think: R1-Track's think wrapper (<think>...</think><answer>...</answer>), for the
R1-Track-GRPO(-5k) checkpoints trained with it. No structured output (the model must reason first)."""

from .default import parameters as default_parameters


def parameters():
    params = default_parameters()
    params.think = True
    params.structured_output = False
    params.max_tokens = 1024
    return params
