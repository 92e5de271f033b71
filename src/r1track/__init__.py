"""r1track: turn a multimodal LLM (Qwen2.5-VL, Qwen3-VL, Qwen3.5) into a single-object tracker.

The core library every plugin imports: prompts, box maths, crop geometry, answer parsing, rewards,
the tracker loop, model clients, dataset readers and metrics. Heavy frameworks (torch,
transformers, vLLM, LLaMA-Factory, verl) are never imported here.
"""

__version__ = "0.1.0"
