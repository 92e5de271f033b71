"""The ``vllm`` backend: the checkpoint loaded in this process with vLLM's offline ``LLM`` class, no server.

``pip install "r1track[vllm]"`` (vLLM is imported on first use). What it does, read from vLLM 0.32
(``vllm/entrypoints/llm.py``: ``LLM.chat``, ``get_default_sampling_params``;
``vllm/entrypoints/openai/chat_completion/protocol.py``: ``to_sampling_params``), so that a request gets the
reply ``vllm serve`` would give it:

* Requests of every sequence in flight go to the engine together: one ``LLM.chat`` call per batch (see
  :mod:`r1track.backends.local`), each conversation with its own ``SamplingParams``; vLLM schedules them
  continuously inside the call.
* Each conversation is the ``openai`` backend's message, byte for byte: the same chat content with the same
  base64 JPEG data URLs, rendered by the same chat-template code the server uses. The template comes first and
  its bytes are identical in every request of a sequence, so prefix caching (``enable_prefix_caching=True``)
  and the multimodal cache reuse it.
* Sampling as the server builds it: the request's ``temperature``, ``top_p``, ``max_tokens``, ``seed``; the
  penalties, ``top_k``, ``min_p`` and extra stop tokens from the checkpoint's generation config
  (``model_config.get_diff_sampling_param()``), else OpenAI's defaults; a ``regex`` becomes
  ``StructuredOutputsParams(regex=...)`` (the server's ``structured_outputs``).
* Engine: ``limit_mm_per_prompt={"image": max_images}`` (2; 3 with a memory frame), ``max_model_len`` 4096
  (room for think mode's 1024 tokens and three 336-px images), ``enable_prefix_caching=True``,
  ``gpu_memory_utilization``, ``dtype``, ``tensor_parallel_size``, ``enforce_eager``; any other ``LLM``
  argument through ``engine_args``.
* LoRA adapters of the checkpoint registry are refused before loading, with the merge recipe
  (:class:`~r1track.backends.local.LocalEngineBackend`): vLLM's ``LLM`` would need the base model plus
  ``enable_lora`` and a ``LoRARequest`` per call, and the published adapters were only checked merged.

vLLM starts engine processes: a script that builds this backend must guard its entry point with
``if __name__ == "__main__":`` (the ``r1track`` command does).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .base import BackendError, FrameRequest
from .local import EngineReply, LocalEngineBackend
from .openai import cached_data_url

__all__ = ["VLLMBackend", "OPENAI_SAMPLING_DEFAULTS"]

OPENAI_SAMPLING_DEFAULTS: dict[str, float] = {
    "repetition_penalty": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "top_k": 0,
    "min_p": 0.0,
}
"""The sampling fields r1track never sends, with the value vLLM's chat endpoint uses when neither the request
nor the checkpoint's generation config sets them."""


class VLLMBackend(LocalEngineBackend):
    """In-process vLLM engine (see the module docstring). ``model``: hub id or folder. ``batch_size``: most
    requests per ``LLM.chat`` call (default 256, vLLM's own ``max_num_seqs``: the engine schedules them itself). ``max_images``: images per prompt (2; 3 with a memory frame).
    ``engine_args``: more keyword arguments for ``vllm.LLM``."""

    name = "vllm"
    extra = "vllm"
    default_batch_size = 256

    def __init__(self, model: str | None = None, *, batch_size: int | None = None, max_images: int = 2,
                 max_model_len: int = 4096, gpu_memory_utilization: float = 0.9, dtype: str = "auto",
                 tensor_parallel_size: int = 1, enforce_eager: bool = False,
                 engine_args: Mapping[str, Any] | None = None, jpeg_quality: int = 95) -> None:
        super().__init__(model, batch_size=batch_size, jpeg_quality=jpeg_quality)
        if max_images < 1:
            raise ValueError(f"max_images must be >= 1, got {max_images}")
        self.max_images = int(max_images)
        self.engine_kwargs: dict[str, Any] = dict(
            limit_mm_per_prompt={"image": self.max_images},
            max_model_len=int(max_model_len),
            enable_prefix_caching=True,
            gpu_memory_utilization=float(gpu_memory_utilization),
            dtype=dtype,
            tensor_parallel_size=int(tensor_parallel_size),
            enforce_eager=bool(enforce_eager),
        )
        self.engine_kwargs.update(engine_args or {})

    def _load(self) -> Any:
        from vllm import LLM

        llm = LLM(model=self.model, **self.engine_kwargs)
        return llm, llm.model_config.get_diff_sampling_param() or {}

    def _sampling(self, request: FrameRequest, defaults: Mapping[str, Any]) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        s = request.sampling
        fixed = {k: defaults.get(k, v) for k, v in OPENAI_SAMPLING_DEFAULTS.items()}
        return SamplingParams.from_optional(
            temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, seed=s.seed,
            stop_token_ids=list(defaults["stop_token_ids"]) if defaults.get("stop_token_ids") else None,
            structured_outputs=StructuredOutputsParams(regex=s.regex) if s.regex is not None else None,
            **fixed,
        )

    def _generate(self, engine: Any, requests: Sequence[FrameRequest]) -> list[EngineReply]:
        llm, defaults = engine
        for r in requests:
            if len(r.images) > self.max_images:
                raise BackendError(f"{len(r.images)} images in one prompt, the engine takes at most {self.max_images} "
                                   "(max_images)", kind="client-error", url=self.base_url, fatal=True)
        conversations = [
            [{"role": "user", "content": r.chat_content([cached_data_url(im, self.jpeg_quality) for im in r.images])}]
            for r in requests
        ]
        outputs = llm.chat(conversations, [self._sampling(r, defaults) for r in requests], use_tqdm=False)
        replies = []
        for out in outputs:
            completion = out.outputs[0]
            replies.append(EngineReply(completion.text, completion.finish_reason,
                                       len(out.prompt_token_ids or ()), len(completion.token_ids or ())))
        return replies

    def _unload(self, engine: Any) -> None:
        llm, _ = engine
        shutdown = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if shutdown is not None and hasattr(shutdown, "shutdown"):
            shutdown.shutdown()
