"""r1track default: no-think R1-Track (r1track-v1 prompt, 336-px crops), as the published
R1-Track-GRPO-wo-Think-100k checkpoint was trained. The environment overrides the server:
R1TRACK_BASE_URL (e.g. http://127.0.0.1:8000/v1), R1TRACK_MODEL, R1TRACK_API_KEY."""

from pytracking.utils import TrackerParams


def parameters():
    params = TrackerParams()
    params.backend = "openai"                     # or "ncc": the classical baseline, no server
    params.server_url = "http://127.0.0.1:8000/v1"
    params.model = None                           # None: the first model the server lists
    params.timeout_s = 120.0                      # per attempt; 3 retries with backoff
    params.retries = 3
    params.max_consecutive_faults = 3             # a server that gives no reply for 3 frames in a row ...
    params.max_fault_seconds = 120.0              # ... or 120 s stops the sequence: it raises, no result file
    params.prompt_version = "r1track-v1"
    params.think = False
    params.crop_size = 336
    params.template_factor = 4.0
    params.search_factor = 4.0
    params.temperature = 0.0
    params.structured_output = True               # vLLM >= 0.12 structured_outputs regex [x1,y1,x2,y2]
    params.multiobj_mode = "parallel"
    return params
