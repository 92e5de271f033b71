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

Speed (:class:`TransformersOptions`; docs/inprocess_engines.md):

* ``engine_inputs`` ``direct`` (default): each request's token ids and patch-layout pixels are made ahead of its
  batch, in the evaluation's thread pool, and a batch's tensors are assembled on the model's device
  (:mod:`r1track.backends.hf_inputs`: proven equal to the processor's at load, else the processor is used);
  ``processor``: the checkpoint's processor on the engine thread for every batch (the way before).
* ``vision_attention`` ``auto`` (default) / ``dense`` / ``stock``: one batched attention call per vision layer
  instead of one per window or image (:mod:`r1track.backends.hf_vision`: flash_attention_2 when importable on
  CUDA, else the dense path on verified transformers versions, else stock with a warning).
* ``decode_cache`` ``dynamic`` (default) / ``static``: transformers' static KV cache, with which transformers
  compiles the decoding step on CUDA (``torch.compile``, CUDA graphs). An option, off by default: its replies
  equal the dynamic cache's on the tiny models on CPU (without compilation); on a GPU the benchmark
  (``benchmarks/gpu_engine.py``) checks it again. When the first static-cache call fails (transformers 5.6 has
  no static cache for Qwen3.5's linear-attention layers), the engine says so and decodes with the dynamic cache.
* Every engine call is timed (:mod:`r1track.backends.engine_report`): inputs, vision tower, prefill, decode,
  and CUDA peak memory, for ``run.json`` and the end-of-run summary.


Padded batches and single requests can differ in the last bits of the logits, as can transformers and vLLM
(different kernels): greedy replies of the two engines mostly, not always, agree.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, fields
from typing import Any, Sequence

from ..redact import get_logger
from .base import BackendError, FrameRequest
from .local import EngineReply, LocalEngineBackend, jpeg_roundtrip

__all__ = ["TransformersBackend", "TransformersOptions", "DEVICES", "DTYPES", "ENGINE_INPUTS", "DECODE_CACHES"]

log = get_logger(__name__)

DEVICES = ("auto", "cuda", "mps", "cpu")
DTYPES = ("auto", "bfloat16", "float16", "float32")
ENGINE_INPUTS = ("direct", "processor")
DECODE_CACHES = ("dynamic", "static")


def _option(default: str, choices: tuple[str, ...], help: str) -> Any:
    return field(default=default, metadata={"choices": choices, "help": help})


@dataclass(frozen=True)
class TransformersOptions:
    """The ``transformers`` engine's speed options (module docstring). Each field is a command-line flag
    (``--vision-attention``, ...) and a PyTracking parameter of the same name; choices and help live here."""

    vision_attention: str = _option("auto", ("auto", "dense", "stock"),
                                    "transformers: vision attention; auto: flash_attention_2 when importable on CUDA, "
                                    "else one batched call per layer (dense) on verified transformers versions, else "
                                    "stock; dense: also on unverified versions; stock: one call per window or image "
                                    "(default auto)")
    engine_inputs: str = _option("direct", ENGINE_INPUTS,
                                 "transformers: direct: token ids and pixels made ahead in the thread pool, checked "
                                 "equal to the processor's at load; processor: the checkpoint's processor per batch "
                                 "(default direct)")
    decode_cache: str = _option("dynamic", DECODE_CACHES,
                                "transformers: static: static KV cache, decoding compiled by transformers on CUDA "
                                "(replies checked equal on CPU; first batches compile); dynamic: the default cache "
                                "(default dynamic)")

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value not in f.metadata["choices"]:
                raise ValueError(f"{f.name} must be one of {', '.join(f.metadata['choices'])}, got {value!r}")


def _chat(request: FrameRequest, n_images: int) -> list[dict]:
    """One user turn with the request's content; image parts become ``{"type": "image"}``."""
    content = request.chat_content(["about:image"] * n_images)
    parts = [{"type": "image"} if part.get("type") == "image_url" else part for part in content]
    return [{"role": "user", "content": parts}]


@dataclass
class _Payload:
    """A request's direct inputs (None: the processor must make them; ``why`` says so)."""

    owner: int
    prepared: Any
    why: str = ""


class _Clock:
    """Marks inside one engine call: perf_counter on CPU, CUDA events on CUDA (read after the call, no extra
    synchronisation). Vision-tower hooks mark ``vision0`` / ``vision1``; a pass-through logits processor marks
    ``prefill`` (its first call comes right after the first forward pass; it runs outside any compiled graph)."""

    def __init__(self, torch: Any, device: Any) -> None:
        self.torch = torch
        self.cuda = device.type == "cuda"
        self.stream = torch.cuda.current_stream(device) if self.cuda else None
        self.marks: dict[str, Any] = {}

    def mark(self, name: str) -> None:
        if name in self.marks:
            return
        if self.cuda:
            event = self.torch.cuda.Event(enable_timing=True)
            event.record(self.stream)
            self.marks[name] = event
        else:
            self.marks[name] = time.perf_counter()

    def seconds(self, a: str, b: str) -> float | None:
        if a not in self.marks or b not in self.marks:
            return None
        if self.cuda:
            self.marks[b].synchronize()
            return self.marks[a].elapsed_time(self.marks[b]) / 1000.0
        return self.marks[b] - self.marks[a]


class TransformersBackend(LocalEngineBackend):
    """In-process transformers engine (see the module docstring). ``model``: hub id or folder.
    ``device``: one of :data:`DEVICES` or a torch device string (``cuda:1``). ``dtype``: one of :data:`DTYPES`.
    ``batch_size``: most requests per ``generate`` call (default 16: a padded batch holds its memory until the
    longest reply ends). ``vision_attention``, ``engine_inputs``, ``decode_cache``: :class:`TransformersOptions`."""

    name = "transformers"
    extra = "hf"
    default_batch_size = 16

    def __init__(self, model: str | None = None, *, device: str = "auto", dtype: str = "auto",
                 batch_size: int | None = None, jpeg_quality: int = 95, vision_attention: str = "auto",
                 engine_inputs: str = "direct", decode_cache: str = "dynamic") -> None:
        super().__init__(model, batch_size=batch_size, jpeg_quality=jpeg_quality)
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        self.device = device or "auto"
        self.dtype = dtype
        self.options = TransformersOptions(vision_attention, engine_inputs, decode_cache)
        self._processor_lock = threading.Lock()
        self._processor: Any = None
        self._direct: Any = None
        self._direct_why = ""
        self._clock: _Clock | None = None
        self._static: bool | None = None  # decode_cache static: None untried, True worked, False failed (dynamic)
        self._told_processor = False

    # ------------------------------------------------------------------ processor and direct inputs
    def processor(self) -> Any:
        """The checkpoint's processor (left padding), loaded once; with ``engine_inputs`` direct, the direct
        inputs are calibrated against it here (their failure is logged and leaves the processor in charge)."""
        with self._processor_lock:
            if self._processor is None:
                from transformers import AutoProcessor

                processor = AutoProcessor.from_pretrained(self.model, padding_side="left")
                if self.options.engine_inputs == "direct":
                    from .hf_inputs import DirectInputs

                    try:
                        self._direct = DirectInputs.create(processor, host_rows=self._device_name() == "cpu")
                    except Exception as exc:  # noqa: BLE001 - any doubt: the processor makes the inputs
                        self._direct_why = f"{type(exc).__name__}: {exc}"
                        log.warning("transformers engine: direct inputs off, the processor makes every batch (%s)",
                                    self._direct_why)
                else:
                    self._direct_why = "--engine-inputs processor"
                self._processor = processor
            return self._processor

    def _prepare_request(self, request: FrameRequest) -> None:
        if self.options.engine_inputs != "direct":
            return
        try:
            self.processor()
        except Exception:  # noqa: BLE001 - loading errors are reported by the engine call, fatally
            return
        if self._direct is not None:
            request.payload = self._direct_payload(request)

    def _direct_payload(self, request: FrameRequest) -> _Payload:
        t0 = time.perf_counter()
        direct = self._direct
        decoded = [jpeg_roundtrip(im, self.jpeg_quality) for im in request.images]
        if not direct.keeps(decoded):
            sizes = ", ".join(f"{w}x{h}" for w, h in (im.size for im in decoded))
            return _Payload(id(self), None, f"an image the processor resizes ({sizes})")
        images = []
        for image, pixels in zip(request.images, decoded):
            key = (direct.key, self.jpeg_quality)
            prepared = image.cache.get(key)
            if prepared is None:
                prepared = image.cache[key] = direct.prepare_image(pixels)
            images.append(prepared)
        text = self._processor.apply_chat_template(_chat(request, len(request.images)), add_generation_prompt=True,
                                                   tokenize=False)
        prepared = direct.prepare(text, images)
        prepared.seconds = time.perf_counter() - t0
        return _Payload(id(self), prepared)

    # ------------------------------------------------------------------ engine
    def _device_name(self) -> str:
        """The torch device ``device`` names (``auto``: cuda, else mps, else cpu)."""
        import torch

        if self.device != "auto":
            return self.device
        mps = getattr(torch.backends, "mps", None)
        return "cuda" if torch.cuda.is_available() else "mps" if mps is not None and mps.is_available() else "cpu"

    def _load(self) -> Any:
        import torch
        import transformers
        from transformers import AutoModelForImageTextToText, LogitsProcessor, LogitsProcessorList

        from .hf_vision import setup_vision_attention, vision_tower

        device = self._device_name()
        if self.dtype == "auto":
            dtype: Any = "auto"
        else:
            dtype = getattr(torch, self.dtype)
        processor = self.processor()
        model = AutoModelForImageTextToText.from_pretrained(self.model, dtype=dtype)
        if device == "cpu" and model.dtype == torch.float16:
            model = model.to(torch.float32)
        model = model.to(device).eval()
        choice = setup_vision_attention(model, self.options.vision_attention)
        tower = vision_tower(model)
        if tower is not None:
            tower.register_forward_pre_hook(lambda *_: self._clock.mark("vision0") if self._clock else None)
            tower.register_forward_hook(lambda *_: self._clock.mark("vision1") if self._clock else None)
        backend = self

        class PrefillMark(LogitsProcessor):
            def __call__(self, input_ids: Any, scores: Any) -> Any:
                if backend._clock is not None:
                    backend._clock.mark("prefill")
                return scores

        self.resolved = {
            "device": device, "dtype": str(model.dtype).replace("torch.", ""),
            "transformers": transformers.__version__, "torch": torch.__version__,
            "vision_attention": choice.describe(),
            "inputs": "direct (equal to the processor's, checked at load)" if self._direct is not None
            else f"processor ({self._direct_why})",
            "decode_cache": self.options.decode_cache,
        }
        return processor, model, torch, LogitsProcessorList([PrefillMark()])

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

    def _inputs(self, engine: Any, requests: Sequence[FrameRequest]) -> tuple[Any, str]:
        """The batch's model inputs on the model's device, and how they were made (``direct`` / ``processor``)."""
        processor, model, torch, _ = engine
        if self._direct is not None:
            payloads, inline = [], 0
            for r in requests:
                p = r.payload
                if not isinstance(p, _Payload) or p.owner != id(self):
                    p = r.payload = self._direct_payload(r)
                    inline += 1
                payloads.append(p)
            if all(p.prepared is not None for p in payloads):
                self._note(prepare_s=sum(p.prepared.seconds for p in payloads), inline=inline)
                return self._direct.assemble([p.prepared for p in payloads], model.device), "direct"
            if not self._told_processor:
                self._told_processor = True
                log.info("transformers engine: a batch goes through the processor: %s (the report counts such batches "
                         "as path 'processor')", next(p.why for p in payloads if p.prepared is None))
        texts, images = [], []
        for r in requests:
            texts.append(processor.apply_chat_template(_chat(r, len(r.images)), add_generation_prompt=True, tokenize=False))
            images.extend(jpeg_roundtrip(im, self.jpeg_quality) for im in r.images)
        self._note(inline=len(requests))
        return processor(text=texts, images=images, padding=True, return_tensors="pt").to(model.device), "processor"

    def _generate_group(self, engine: Any, requests: Sequence[FrameRequest], temperature: float, top_p: float,
                        max_tokens: int, seed: int | None) -> list[EngineReply]:
        processor, model, torch, prefill_mark = engine
        cuda = model.device.type == "cuda"
        clock = _Clock(torch, model.device)
        if cuda:
            torch.cuda.reset_peak_memory_stats(model.device)
        clock.mark("start")
        inputs, path = self._inputs(engine, requests)
        clock.mark("inputs")
        if temperature > 0:
            sampling: dict[str, Any] = {"do_sample": True, "temperature": temperature, "top_p": top_p}
            if seed is not None:
                torch.manual_seed(seed)
        else:
            sampling = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        prompt_len = inputs["input_ids"].shape[1]
        static = self.options.decode_cache == "static" and self._static is not False
        if static:
            sampling["cache_implementation"] = "static"
            if hasattr(model.generation_config, "max_cache_len"):  # transformers >= 5.x: fewer shapes to compile
                sampling["max_cache_len"] = -(-(prompt_len + max_tokens) // 256) * 256
        self._clock = clock
        try:
            with torch.inference_mode():
                try:
                    out = model.generate(**inputs, max_new_tokens=max_tokens, logits_processor=prefill_mark, **sampling)
                except Exception as exc:
                    if not static or self._static:
                        raise
                    # the static cache does not work for this model and transformers: say so, decode as before
                    self._static = False
                    self.resolved["decode_cache"] = f"dynamic (the static cache failed: {type(exc).__name__}: {exc})"
                    log.warning("transformers engine: %s", self.resolved["decode_cache"])
                    sampling.pop("cache_implementation", None)
                    sampling.pop("max_cache_len", None)
                    clock = self._clock = _Clock(torch, model.device)
                    clock.mark("start")
                    clock.mark("inputs")
                    out = model.generate(**inputs, max_new_tokens=max_tokens, logits_processor=prefill_mark, **sampling)
                else:
                    if static:
                        self._static = True
        finally:
            self._clock = None
        clock.mark("end")
        new = out[:, prompt_len:]
        eos = model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
        pad = model.generation_config.pad_token_id
        mask = inputs["attention_mask"]
        replies = []
        rows = new.tolist()
        lock = self._direct._lock if self._direct is not None else threading.Lock()
        for k, row in enumerate(rows):
            stop = next((j for j, t in enumerate(row) if t in eos_ids), None)
            tokens = row if stop is None else row[:stop]
            if stop is None and pad is not None and pad not in eos_ids:
                while tokens and tokens[-1] == pad:
                    tokens = tokens[:-1]
            with lock:
                text = processor.tokenizer.decode(tokens, skip_special_tokens=True)
            replies.append(EngineReply(text, "stop" if stop is not None else "length", int(mask[k].sum()), len(tokens)))
        vision = clock.seconds("vision0", "vision1")
        after_vision = "vision1" if vision is not None else "inputs"
        self._note(path=path, inputs_s=clock.seconds("start", "inputs"), vision_s=vision,
                   prefill_s=clock.seconds(after_vision, "prefill"), decode_s=clock.seconds("prefill", "end"),
                   decode_steps=max(0, new.shape[1] - 1))
        if cuda:
            self._note(peak_memory_mb=torch.cuda.max_memory_allocated(model.device) / 2 ** 20)
        return replies
