"""r1track think: R1-Track's think wrapper (<think>...</think><answer>...</answer>) with the r1track-v0
prompt, as the only published think checkpoint (WangBiao/R1-Track-GRPO-5k) was trained. No structured
output (the model must reason first); room for the reasoning in max_tokens."""

from .default import parameters as default_parameters


def parameters():
    params = default_parameters()
    params.think = True
    params.prompt_version = "r1track-v0"
    params.structured_output = False
    params.max_tokens = 1024
    return params
