"""What the tracker sends to a backend and what comes back: one small interface.

A :class:`FrameRequest` is everything a model needs for one frame: the images in prompt order
(template, (memory), search — or the one full frame for text initialisation), the prompt version
and boxes, the sampling settings, and — for the non-LLM backends (``ncc``, ``oracle``) — the
geometry that maps the crop back to the original frame. A backend answers with a :class:`Reply`
whose ``text`` is read by :func:`r1track.parse.parse_reply`, exactly like a model's reply, so every
backend goes through the same parser, sanity checks and failure policy.

Backends raise :class:`BackendError` when no reply could be had (after their own retries); the
tracker turns a non-fatal one into a counted fallback frame and re-raises a fatal one (the server
rejects the request itself, so every frame would fail the same way).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Sequence

from PIL import Image

from ..boxes import BoxXYXY, scale_xyxy
from ..crop import CropTransform
from ..exitcodes import ExitStatus
from ..models import DEFAULT_FAMILY, ModelFamily, get_family
from ..prompts import DEFAULT_THINK_LAYOUT, render_answer, render_chat_content, render_grounding_content
from ..redact import redact

__all__ = [
    "KIND_TRACK",
    "KIND_GROUND",
    "RequestImage",
    "Sampling",
    "FrameRequest",
    "Reply",
    "BackendError",
    "ServerRefused",
    "Backend",
]

KIND_TRACK = "track"
"""A tracking request: template, (memory), search crops and the task prompt."""
KIND_GROUND = "ground"
"""A text-initialisation request: one full frame and Qwen's grounding prompt."""


@dataclass(eq=False)
class RequestImage:
    """One image of a request (RGB PIL image) and a per-image cache for backends.

    The tracker keeps the same object for the template (and the memory frame) across a sequence,
    so whatever a backend derives from it — the base64 JPEG data URL, a grey-level array — is
    computed once per sequence and found in ``cache`` afterwards. ``role``: ``template``, ``memory``,
    ``search`` or ``frame``."""

    image: Image.Image
    role: str
    cache: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.image.size


@dataclass(frozen=True)
class Sampling:
    """Decoding settings sent with a request. ``regex``: force the answer form through vLLM's
    ``structured_outputs`` (None: free text)."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 48
    regex: str | None = None
    seed: int | None = None


@dataclass(eq=False)
class FrameRequest:
    """Everything one model call needs.

    ``images``: in prompt order. ``boxes_xyxy_model``: the boxes the prompt states, one per image
    before the search image (model-input pixels = crop pixels for valid crop sizes).
    ``search_transform``: the search crop's exact map to/from the original frame (tracking requests).
    ``model_scale``: (sx, sy) model pixels per original pixel of the one image (grounding requests).
    ``prior_box_xyxy_model``: the tracker's last box inside the search crop (where a motionless
    target would be); used by the ``ncc`` baseline, never put in the prompt.
    ``image_size``: (width, height) of the original frame. ``frame_index``: 0 = the first frame.
    ``payload``: a backend's prepared form of the request (for instance serialised JSON), filled by
    :meth:`Backend.prepare` and reused on retries. ``family``: the model family; prompt boxes and answers
    are written in its coordinates (:meth:`answer_text`), every box field here stays in model-input pixels.
    ``redetect``: the search crop covers the whole frame (the tracker's re-detection).
    ``deadline``: ``time.monotonic()`` seconds by which the answer must be had, retries included (the fault
    policy's limit, :meth:`r1track.faults.FaultGuard.deadline`); a backend that waits on a server gives up then
    with a ``timeout`` :class:`BackendError`. None: no limit beyond the backend's own retries.
    """

    kind: str
    images: tuple[RequestImage, ...]
    sampling: Sampling
    frame_index: int
    image_size: tuple[int, int]
    sequence: str = ""
    prompt_version: str | None = None
    think: bool = False
    think_layout: str = DEFAULT_THINK_LAYOUT
    boxes_xyxy_model: tuple[BoxXYXY, ...] = ()
    grounding_text: str | None = None
    search_transform: CropTransform | None = None
    model_scale: tuple[float, float] | None = None
    prior_box_xyxy_model: BoxXYXY | None = None
    payload: Any = field(default=None, repr=False)
    family: ModelFamily = field(default_factory=lambda: get_family(DEFAULT_FAMILY))
    redetect: bool = False
    deadline: float | None = None

    def chat_content(self, image_urls: Sequence[str]) -> list[dict]:
        """OpenAI chat ``content``: the images (one URL per image, in order), then the text —
        rendered by :mod:`r1track.prompts`, the one place prompt texts live."""
        if self.kind == KIND_GROUND:
            if len(image_urls) != 1 or self.grounding_text is None:
                raise ValueError("a grounding request has exactly one image and a text")
            return render_grounding_content(self.grounding_text, image_urls[0])
        if self.prompt_version is None:
            raise ValueError("a tracking request needs a prompt version")
        boxes = [self.family.encode_xyxy(b, img.size) for b, img in zip(self.boxes_xyxy_model, self.images)]
        return render_chat_content(
            self.prompt_version, think=self.think, boxes_xyxy_model=boxes, image_urls=image_urls,
            think_layout=self.think_layout,
        )

    def answer_text(self, box_xyxy_model: Sequence[float]) -> str:
        """``[x1,y1,x2,y2]`` for a box in model-input pixels of the last image, written as a model of this
        request's family answers (the non-LLM backends reply through this)."""
        return render_answer(self.family.encode_xyxy(box_xyxy_model, self.model_size))

    def orig_to_model_xyxy(self, box_xyxy_orig: Sequence[float]) -> BoxXYXY:
        """Map a box from original-frame pixels into this request's model-input frame (the search
        crop for tracking, the resized frame for grounding)."""
        if self.search_transform is not None:
            return self.search_transform.xyxy_orig_to_crop(box_xyxy_orig)
        if self.model_scale is not None:
            return scale_xyxy(box_xyxy_orig, *self.model_scale)
        raise ValueError("request has no geometry")

    def model_to_orig_xyxy(self, box_xyxy_model: Sequence[float]) -> BoxXYXY:
        """Inverse of :meth:`orig_to_model_xyxy`."""
        if self.search_transform is not None:
            return self.search_transform.xyxy_crop_to_orig(box_xyxy_model)
        if self.model_scale is not None:
            sx, sy = self.model_scale
            return scale_xyxy(box_xyxy_model, 1.0 / sx, 1.0 / sy)
        raise ValueError("request has no geometry")

    @property
    def model_size(self) -> tuple[int, int]:
        """(width, height) of the model-input frame: the last image's size."""
        return self.images[-1].size


@dataclass(frozen=True)
class Reply:
    """A backend's answer. ``text``: what the model wrote (parsed by the tracker).
    ``latency_s``: wall time of the call including retries. ``attempts``: HTTP attempts (1 for
    local backends). ``finish_reason`` / ``usage``: as the server reported them, when it did.
    ``faults``: transport faults by kind met on the way (attempts that a retry then made good).
    ``empty_reason``: set when the server answered but its answer held no text at all -- the message
    ``content`` was null, or there was no choice (``text`` is then ""): a reason that points at the server,
    not at the model (the tracker's ``no-content`` fallback). "" for every reply that has a text, even an
    empty one."""

    text: str
    latency_s: float = 0.0
    attempts: int = 1
    finish_reason: str | None = None
    usage: dict | None = None
    faults: dict[str, int] = field(default_factory=dict)
    empty_reason: str = ""


class BackendError(Exception):
    """No reply could be had. ``kind``: ``timeout``, ``connection``, ``malformed``, ``too-large``,
    ``http-5xx``, ``http-429``, ``bad-response``, ``client-error``, ``unsupported``. ``fatal``: retrying
    or moving to the next frame cannot help (the server rejected the request itself: bad model name,
    too many images, bad API key); the tracker re-raises these. ``attempts``: HTTP attempts made;
    ``faults``: every fault met by kind, the last one included. The message names the URL and passes
    through :func:`r1track.redact.redact`, so it never holds the API key."""

    def __init__(self, message: str, *, kind: str, url: str = "", attempts: int = 1, fatal: bool = False,
                 faults: dict[str, int] | None = None):
        super().__init__(redact(message))
        self.kind = kind
        self.url = url
        self.attempts = attempts
        self.fatal = fatal
        self.faults = dict(faults) if faults is not None else {}


class ServerRefused(BackendError):
    """The server refused the work itself -- HTTP 401 (authentication), 403 (permission) or a 3xx
    redirect -- on every attempt: fix the API key or the server URL. Always fatal. ``exit_status``: the
    command line's status for it (:attr:`r1track.exitcodes.ExitStatus.SERVER_REFUSED`, 3)."""

    exit_status = ExitStatus.SERVER_REFUSED

    def __init__(self, message: str, *, kind: str, url: str = "", attempts: int = 1,
                 faults: dict[str, int] | None = None):
        super().__init__(message, kind=kind, url=url, attempts=attempts, fatal=True, faults=faults)


class Backend:
    """The backend interface. Subclasses implement :meth:`complete` (and, where they do I/O,
    :meth:`complete_async`); :meth:`prepare` does CPU work ahead of the call (the tracker runs it
    off the event loop); :meth:`close` / :meth:`aclose` release resources.

    ``name``: short id (``openai``, ``ncc``, ``oracle``). ``baseline``: True for a classical method
    that is not a language model (results must be labelled as such). ``supports_grounding``:
    text initialisation is possible."""

    name: str = "backend"
    baseline: bool = False
    supports_grounding: bool = False

    @property
    def label(self) -> str:
        """Human-readable name for tables and logs (baselines say so)."""
        return f"{self.name} (classical baseline, not an MLLM)" if self.baseline else self.name

    def prepare(self, request: FrameRequest) -> None:
        """CPU work ahead of the call (encode images, serialise). Thread-safe per request. Default: none."""

    def complete(self, request: FrameRequest) -> Reply:
        """Answer ``request`` (blocking). Raises :class:`BackendError` when no answer could be had."""
        raise NotImplementedError

    async def complete_async(self, request: FrameRequest) -> Reply:
        """Answer ``request`` without blocking the event loop. Default: :meth:`complete` in a worker thread."""
        return await asyncio.to_thread(self.complete, request)

    def close(self) -> None:
        """Release connections and other resources (idempotent)."""

    async def aclose(self) -> None:
        """Async form of :meth:`close`."""
        self.close()

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
