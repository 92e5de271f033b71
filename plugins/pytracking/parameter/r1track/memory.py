"""r1track memory: three images per request (template, last confident crop, search) with the
r1track-mem-v1 prompt. The server needs --limit-mm-per-prompt '{"image":3}'."""

from .default import parameters as default_parameters


def parameters():
    params = default_parameters()
    params.memory = True
    params.memory_prompt_version = "r1track-mem-v1"
    return params
