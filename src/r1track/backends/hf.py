"""The ``transformers`` backend: the checkpoint loaded in this process with Hugging Face transformers, no server.

``pip install "r1track[hf]"`` (torch and transformers; imported on first use). Runs wherever torch runs: a GPU,
Apple's ``mps``, or plain CPU (slow for a 3B model, fine for the tiny test model).

* Loading (transformers 5.x, ``models/auto/modeling_auto.py`` and ``processing_utils.py``):
  ``AutoProcessor.from_pretrained(model, padding_side="left")`` and
  ``AutoModelForImageTextToText.from_pretrained(model, dtype=...)``, which maps a Qwen2.5-VL ``config.json``
  (``model_type: qwen2_5_vl``) to its conditional-generation class. Left padding: a batch's prompts end
  together, where generation starts.
* ``device`` ``auto``: ``cuda`` when torch sees a GPU, else ``mps`` when available, else ``cpu``. ``dtype``
  ``auto``: the checkpoint's own (``config.json``), except float32 on CPU when the checkpoint is float16 (CPU
  half-precision matmuls are slow or missing); or ``bfloat16``, ``float16``, ``float32``.
* Prompt: the request's chat content (the same as the ``openai`` backend's; images first) with each image part
  turned into ``{"type": "image"}``, rendered by the processor's chat template with the generation prompt; the
  images are the JPEG-decoded pixels a server would see (:func:`r1track.backends.local.jpeg_roundtrip`).
* Decoding: greedy (``do_sample=False``) at temperature 0, else sampling with the request's ``temperature`` and
  ``top_p``; ``max_new_tokens`` = the tracker's ``max_tokens``; everything else (repetition penalty, end tokens)
  from the checkpoint's ``generation_config.json``, as vLLM applies it. A batch is split by sampling settings.
* Structured outputs (the no-think ``[x1,y1,x2,y2]`` regex) are not available in plain transformers: a request
  carrying one is refused (fatal), so a run never silently differs from the served setting; turn
  ``--structured-output`` off.

Padded batches and single requests can differ in the last bits of the logits, as can transformers and vLLM
(different kernels): greedy replies of the two engines mostly, not always, agree.
"""

from __future__ import annotations

from typing import Any, Sequence

from .base import BackendError, FrameRequest
from .local import EngineReply, LocalEngineBackend, jpeg_roundtrip

__all__ = ["TransformersBackend", "DEVICES", "DTYPES"]

DEVICES = ("auto", "cuda", "mps", "cpu")
DTYPES = ("auto", "bfloat16", "float16", "float32")


def _chat(request: FrameRequest, n_images: int) -> list[dict]:
    """One user turn with the request's content; image parts become ``{"type": "image"}``."""
    content = request.chat_content(["about:image"] * n_images)
    parts = [{"type": "image"} if part.get("type") == "image_url" else part for part in content]
    return [{"role": "user", "content": parts}]


class TransformersBackend(LocalEngineBackend):
    """In-process transformers engine (see the module docstring). ``model``: hub id or folder.
    ``device``: one of :data:`DEVICES` or a torch device string (``cuda:1``). ``dtype``: one of :data:`DTYPES`.
    ``batch_size``: most requests per ``generate`` call (default 16: a padded batch holds its memory until the
    longest reply ends)."""

    name = "transformers"
    extra = "hf"
    default_batch_size = 16

    def __init__(self, model: str | None = None, *, device: str = "auto", dtype: str = "auto",
                 batch_size: int | None = None, jpeg_quality: int = 95) -> None:
        super().__init__(model, batch_size=batch_size, jpeg_quality=jpeg_quality)
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        self.device = device or "auto"
        self.dtype = dtype

    def _load(self) -> Any:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        device = self.device
        if device == "auto":
            mps = getattr(torch.backends, "mps", None)
            device = "cuda" if torch.cuda.is_available() else "mps" if mps is not None and mps.is_available() else "cpu"
        if self.dtype == "auto":
            dtype: Any = "auto"
        else:
            dtype = getattr(torch, self.dtype)
        processor = AutoProcessor.from_pretrained(self.model, padding_side="left")
        model = AutoModelForImageTextToText.from_pretrained(self.model, dtype=dtype)
        if device == "cpu" and model.dtype == torch.float16:
            model = model.to(torch.float32)
        model = model.to(device).eval()
        self.resolved = {"device": device, "dtype": str(model.dtype).replace("torch.", "")}
        return processor, model, torch

    def _generate(self, engine: Any, requests: Sequence[FrameRequest]) -> list[EngineReply]:
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            s = r.sampling
            if s.regex is not None:
                raise BackendError(
                    f"the transformers backend cannot force the answer form (structured output); run without "
                    f"--structured-output ({self.model})", kind="unsupported", url=self.base_url, fatal=True)
            groups.setdefault((s.temperature, s.top_p, s.max_tokens, s.seed), []).append(i)
        answers: list[EngineReply | None] = [None] * len(requests)
        for (temperature, top_p, max_tokens, seed), idx in groups.items():
            for i, a in zip(idx, self._generate_group(engine, [requests[i] for i in idx], temperature, top_p,
                                                       max_tokens, seed)):
                answers[i] = a
        return answers  # type: ignore[return-value]

    def _generate_group(self, engine: Any, requests: Sequence[FrameRequest], temperature: float, top_p: float,
                        max_tokens: int, seed: int | None) -> list[EngineReply]:
        processor, model, torch = engine
        texts, images = [], []
        for r in requests:
            texts.append(processor.apply_chat_template(_chat(r, len(r.images)), add_generation_prompt=True, tokenize=False))
            images.extend(jpeg_roundtrip(im, self.jpeg_quality) for im in r.images)
        inputs = processor(text=texts, images=images, padding=True, return_tensors="pt").to(model.device)
        if temperature > 0:
            sampling: dict[str, Any] = {"do_sample": True, "temperature": temperature, "top_p": top_p}
            if seed is not None:
                torch.manual_seed(seed)
        else:
            sampling = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=max_tokens, **sampling)
        prompt_len = inputs["input_ids"].shape[1]
        new = out[:, prompt_len:]
        eos = model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
        pad = model.generation_config.pad_token_id
        mask = inputs["attention_mask"]
        replies = []
        for k, row in enumerate(new.tolist()):
            stop = next((j for j, t in enumerate(row) if t in eos_ids), None)
            tokens = row if stop is None else row[:stop]
            if stop is None and pad is not None and pad not in eos_ids:
                while tokens and tokens[-1] == pad:
                    tokens = tokens[:-1]
            text = processor.tokenizer.decode(tokens, skip_special_tokens=True)
            replies.append(EngineReply(text, "stop" if stop is not None else "length", int(mask[k].sum()), len(tokens)))
        return replies
