"""The ``openai`` backend: any OpenAI-compatible chat-completions server (vLLM serving Qwen2.5-VL).

* One persistent keep-alive client per backend and event loop (:mod:`r1track.httpclient`),
  shared by every tracker that uses the backend. :meth:`OpenAIBackend.complete_async` uses the caller's
  loop, so one process keeps hundreds of requests in flight; :meth:`OpenAIBackend.complete` runs the
  very same coroutine on the backend's private background loop. There is one retry loop
  (:meth:`OpenAIBackend._call`) for chat requests and the model lookup alike. Clients are created on
  first use, never at import or construction (PyTracking spawns worker processes).
* Timeouts (connect; send + whole response), retries with exponential backoff and jitter, bounded by
  ``backoff_max_s`` (``Retry-After`` honoured up to that bound), on every transport fault (refused,
  reset, timeout, malformed HTTP, oversized body), HTTP 5xx, 408 and 429, and unreadable 200 bodies;
  after the last attempt a :class:`~r1track.backends.BackendError` naming the URL and carrying every
  fault met by kind. Other 4xx answers (unknown model, too many images, bad key) are fatal at once:
  every frame would fail the same way.
* The model name, when not given, is asked once per backend (``GET /v1/models``; one backend per
  server in ``r1track eval``) through the same retry loop; only a definite answer is fatal (a 4xx
  other than 408/429, or a list without models). Its faults are counted in ``lookup_stats``.
* Every error message and reply text passes through :func:`r1track.redact.redact`: a server that
  echoes the ``Authorization`` header cannot leak the key into logs or files.
* Images go as base64 JPEG data URLs in the order template, (memory), search, then the text
  (:func:`r1track.prompts.render_chat_content`), so vLLM's prefix and encoder caches reuse the
  template across a video's frames. Each image's data URL is cached on its
  :class:`~r1track.backends.RequestImage`: the template is encoded once per sequence, and its bytes
  are identical in every request.
* Structured output: a request whose sampling has a ``regex`` carries
  ``"structured_outputs": {"regex": ...}`` (vLLM >= 0.12; the removed ``guided_regex`` field is
  silently ignored by current vLLM and is never sent).

Settings come from the arguments, else the environment (``R1TRACK_BASE_URL`` /
``OPENAI_BASE_URL``, ``R1TRACK_MODEL``, ``R1TRACK_API_KEY`` / ``OPENAI_API_KEY``), else defaults
(``http://127.0.0.1:8000/v1``; the model the server lists first). The API key is sent as a bearer
token and never logged or shown in ``repr``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import random
import time
import weakref
from collections import Counter
from typing import Any, Callable, Mapping, TypeVar
from urllib.parse import urlsplit

from PIL import Image

from ..crop import encode_jpeg
from ..httpclient import DEFAULT_MAX_BODY_BYTES, AsyncHTTPClient, BackgroundLoop, Response, TransportError
from ..redact import redact, register_secret

from .base import Backend, BackendError, FrameRequest, Reply, RequestImage

__all__ = [
    "ENV_BASE_URL",
    "ENV_MODEL",
    "ENV_API_KEY",
    "DEFAULT_BASE_URL",
    "OpenAIBackend",
    "cached_data_url",
    "encode_data_url",
    "normalize_base_url",
]

log = logging.getLogger(__name__)

ENV_BASE_URL = "R1TRACK_BASE_URL"
ENV_MODEL = "R1TRACK_MODEL"
ENV_API_KEY = "R1TRACK_API_KEY"
DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"

_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_DETAIL_CHARS = 300  # of an error body, quoted in messages (after redaction)

T = TypeVar("T")


def encode_data_url(image: Image.Image, quality: int = 95) -> str:
    """``data:image/jpeg;base64,...`` of an RGB PIL image. The same pixels and quality always give
    the same bytes (what vLLM's caches key on)."""
    return "data:image/jpeg;base64," + base64.b64encode(encode_jpeg(image, quality)).decode("ascii")


def cached_data_url(image: RequestImage, quality: int = 95) -> str:
    """:func:`encode_data_url` of the image, encoded once per :class:`RequestImage` and quality (cached on it:
    a sequence's template is encoded once, and every backend that sends JPEGs shares the encoding)."""
    key = ("jpeg-data-url", quality)
    url = image.cache.get(key)
    if url is None:
        url = encode_data_url(image.image, quality)
        image.cache[key] = url
    return url


def normalize_base_url(url: str) -> str:
    """``http://host:port`` -> ``http://host:port/v1``; a URL with a path keeps it; no trailing slash.
    ValueError for anything that is not an http(s) URL."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"server URL must look like http://host:port/v1, got {url!r}")
    return url if parts.path not in ("", "/") else url + "/v1"


def _close_background(background: BackgroundLoop, clients: dict) -> None:
    loop = background.loop
    entry = clients.pop(loop, None) if loop is not None else None
    if entry is not None:
        try:
            background.run(entry[0].aclose())
        except Exception:  # a loop already broken, or called from the loop thread itself (garbage collection)
            pass
    background.stop()


class OpenAIBackend(Backend):
    """Client of an OpenAI-compatible server (see the module docstring).

    ``base_url``: e.g. ``http://127.0.0.1:8000/v1``. ``model``: the served model name (vLLM
    ``--served-model-name``); None asks the server (``GET /v1/models``, first entry).
    ``api_key``: bearer token (vLLM ``--api-key``). ``timeout_s``: limit per attempt for sending the
    request and receiving the whole response; ``connect_timeout_s``: connect timeout. ``retries``:
    extra attempts after the first; ``backoff_s`` / ``backoff_max_s``: first and largest pause between
    attempts (doubling, with jitter). ``max_connections``: connection pool size (requests beyond it
    queue in the client). ``max_body_bytes``: largest reply accepted (1 MiB). ``jpeg_quality``:
    quality of the JPEGs sent (95, as OpenCV encodes by default). ``extra_body``: extra top-level
    request fields (e.g. ``{"top_k": 20}``).

    ``stats`` counts, for chat requests, ``requests``, ``attempts``, ``retries``, ``replies``,
    ``failures`` (gave up) and each fault by kind (``timeout``, ``connection``, ``malformed``,
    ``too-large``, ``http-500``, ``http-429``, ``bad-response``, ``client-error``), whether or not a
    retry then succeeded; ``lookup_stats`` the same for the model lookup.
    """

    name = "openai"
    supports_grounding = True

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        backoff_max_s: float = 4.0,
        max_connections: int = 1024,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        jpeg_quality: int = 95,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        self.base_url = normalize_base_url(base_url or os.environ.get(ENV_BASE_URL) or os.environ.get("OPENAI_BASE_URL")
                                           or DEFAULT_BASE_URL)
        self.url = self.base_url + "/chat/completions"
        self._path = urlsplit(self.base_url).path.rstrip("/")
        self.model = model or os.environ.get(ENV_MODEL) or None
        self._api_key = api_key or os.environ.get(ENV_API_KEY) or os.environ.get("OPENAI_API_KEY") or None
        register_secret(self._api_key)
        if retries < 0 or timeout_s <= 0 or connect_timeout_s <= 0 or backoff_s < 0 or backoff_max_s < 0:
            raise ValueError("retries, timeouts and backoff must be non-negative (timeouts positive)")
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {jpeg_quality}")
        self.timeout_s = float(timeout_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self.backoff_max_s = float(backoff_max_s)
        self.max_connections = int(max_connections)
        self.max_body_bytes = int(max_body_bytes)
        self.jpeg_quality = int(jpeg_quality)
        self.extra_body = dict(extra_body or {})
        self.stats: Counter[str] = Counter()
        self.lookup_stats: Counter[str] = Counter()
        self._background = BackgroundLoop(f"r1track-openai-{self.base_url}")
        self._clients: dict[asyncio.AbstractEventLoop, tuple[AsyncHTTPClient, asyncio.Lock]] = {}
        self._rng = random.Random()
        # a backend dropped or alive at exit without close() still closes the sync path's connections
        weakref.finalize(self, _close_background, self._background, self._clients)

    def __repr__(self) -> str:  # never the key
        return f"OpenAIBackend(base_url={self.base_url!r}, model={self.model!r}, api_key={'set' if self._api_key else 'unset'})"

    # ------------------------------------------------------------------ clients
    def _loop_client(self) -> tuple[AsyncHTTPClient, asyncio.Lock]:
        """The client (and model-lookup lock) of the running event loop: the caller's loop on the async
        path, the private background loop on the sync path. A client belongs to one loop; clients of
        loops that have since closed are dropped."""
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is None:
            for old in [k for k in self._clients if k.is_closed()]:
                del self._clients[old]
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            client = AsyncHTTPClient(self.base_url, headers=headers, connect_timeout_s=self.connect_timeout_s,
                                     read_timeout_s=self.timeout_s, max_connections=self.max_connections,
                                     max_body_bytes=self.max_body_bytes)
            entry = self._clients[loop] = (client, asyncio.Lock())
        return entry

    def close(self) -> None:
        """Close the sync path's connections and stop its background loop (idempotent; a later call
        starts a new one)."""
        _close_background(self._background, self._clients)

    async def aclose(self) -> None:
        """Close the running loop's connections, then the sync path's."""
        entry = self._clients.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[0].aclose()
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    # ------------------------------------------------------------------ model name
    def _listing_from(self, resp: Response) -> tuple[dict | None, BackendError | None, float | None]:
        """The ``GET /v1/models`` answer as JSON when it lists a model; else the error (fatal for a
        definite answer: a 4xx other than 408/429, or a list without models)."""
        url = self.base_url + "/models"
        if resp.status != 200:
            return None, *self._status_error(resp, url)
        try:
            listing = resp.json()
            models = listing["data"]
            if not isinstance(models, list):
                raise TypeError("data is not a list")
        except Exception as exc:
            return None, BackendError(f"{url}: unreadable model list ({type(exc).__name__}): "
                                      f"{resp.text[:_DETAIL_CHARS]!r}", kind="bad-response", url=url), None
        if not models or not isinstance(models[0], dict) or "id" not in models[0]:
            return None, BackendError(f"{url} lists no model; pass the served model name", kind="client-error",
                                      url=url, fatal=True), None
        return listing, None, None

    def _models_from(self, resp: Response) -> tuple[str | None, BackendError | None, float | None]:
        listing, err, retry_after = self._listing_from(resp)
        return (str(listing["data"][0]["id"]) if listing is not None else None), err, retry_after

    def resolve_model(self) -> str:
        """The model name, asking the server once when none was given (blocking)."""
        return self.model if self.model is not None else self._background.run(self.resolve_model_async())

    def model_listing(self) -> dict:
        """The server's ``GET /v1/models`` answer as JSON (vLLM lists each served name as ``id`` and the path
        or hub name it loaded as ``root``), asked through the same retry loop as chat requests (faults counted
        in ``lookup_stats``); :class:`BackendError` when it cannot be had (fatal for a definite answer)."""
        listing, _, _ = self._background.run(self._call("GET", "/models", b"", self._listing_from, self.lookup_stats))
        return listing

    async def resolve_model_async(self) -> str:
        """The model name, asking the server when none was given: once per backend (concurrent callers
        wait for the one lookup), retried like chat requests. Raises :class:`BackendError` (fatal
        only for a definite answer)."""
        await self._lookup_model()
        assert self.model is not None
        return self.model

    async def _lookup_model(self) -> Counter[str]:
        """Ask the model name when unknown; returns the faults this caller's lookup met (empty when the
        name was known or another caller looked it up), so they are counted with the caller's frame."""
        if self.model is not None:
            return Counter()
        _, lock = self._loop_client()
        async with lock:
            if self.model is not None:
                return Counter()
            model, _, faults = await self._call("GET", "/models", b"", self._models_from, self.lookup_stats)
            self.model = model
            log.info("%s serves model %r", self.base_url, model)
            return faults

    # ------------------------------------------------------------------ request body
    def image_url(self, image: RequestImage) -> str:
        """The image's data URL, encoded once per :class:`RequestImage` and quality."""
        return cached_data_url(image, self.jpeg_quality)

    def body(self, request: FrameRequest, model: str) -> dict[str, Any]:
        """The chat-completions request body for ``request``."""
        s = request.sampling
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": "user", "content": request.chat_content([self.image_url(i) for i in request.images])}],
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
        }
        if s.seed is not None:
            body["seed"] = s.seed
        if s.regex is not None:
            body["structured_outputs"] = {"regex": s.regex}
        body.update(self.extra_body)
        return body

    def prepare(self, request: FrameRequest) -> None:
        """Encode the images (cached) and, when the model name is known, serialise the body."""
        if self.model is not None:
            request.payload = json.dumps(self.body(request, self.model), separators=(",", ":")).encode()
        else:
            for image in request.images:
                self.image_url(image)

    def _payload(self, request: FrameRequest, model: str) -> bytes:
        if request.payload is None:
            request.payload = json.dumps(self.body(request, model), separators=(",", ":")).encode()
        return request.payload

    # ------------------------------------------------------------------ one attempt
    def _status_error(self, resp: Response, url: str) -> tuple[BackendError, float | None]:
        """The error for a non-200 answer (fatal for 4xx other than 408/429) and its Retry-After."""
        code = resp.status
        detail = redact(resp.text[:_DETAIL_CHARS].strip())
        if code in _RETRY_STATUS or code >= 500:
            retry_after = None
            if code in (429, 503):
                try:
                    retry_after = float(resp.headers.get("retry-after", ""))
                except ValueError:
                    retry_after = None
            return BackendError(f"{url}: HTTP {code}: {detail}", kind=f"http-{code}", url=url), retry_after
        return BackendError(f"{url}: HTTP {code} (request rejected; not retried): {detail}", kind="client-error",
                            url=url, fatal=True), None

    def _chat_from(self, resp: Response) -> tuple[Reply | None, BackendError | None, float | None]:
        """(reply, None, _) on success; (None, error, retry_after) otherwise."""
        if resp.status != 200:
            return None, *self._status_error(resp, self.url)
        try:
            data = resp.json()
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            if not isinstance(text, str):
                raise TypeError("content is not a string")
        except Exception as exc:
            return None, BackendError(f"{self.url}: unreadable reply ({type(exc).__name__}): "
                                      f"{resp.text[:_DETAIL_CHARS]!r}", kind="bad-response", url=self.url), None
        return Reply(redact(text), finish_reason=choice.get("finish_reason"), usage=data.get("usage")), None, None

    def _pause(self, attempt: int, retry_after: float | None) -> float:
        base = min(self.backoff_max_s, self.backoff_s * (2 ** (attempt - 1)))
        pause = base * (0.5 + 0.5 * self._rng.random())
        if retry_after is not None and retry_after >= 0:
            pause = max(pause, min(retry_after, self.backoff_max_s))
        return pause

    async def _call(
        self, method: str, route: str, payload: bytes,
        read: Callable[[Response], tuple[T | None, BackendError | None, float | None]], stats: Counter[str],
    ) -> tuple[T, int, Counter[str]]:
        """The one retry loop: send until ``read`` accepts a response, a fatal error, or the retries
        run out. Returns (value, attempts, faults met by kind); raises :class:`BackendError` carrying
        the attempts and faults."""
        client, _ = self._loop_client()
        stats["requests"] += 1
        faults: Counter[str] = Counter()
        attempt = 0
        while True:
            attempt += 1
            stats["attempts"] += 1
            retry_after = None
            try:
                value, err, retry_after = read(await client.request(method, self._path + route, payload))
            except TransportError as exc:
                value, err = None, BackendError(f"{self.base_url}{route}: {type(exc).__name__}: {exc or 'no detail'}",
                                                kind=exc.kind, url=self.base_url + route)
            if err is None:
                stats["replies"] += 1
                return value, attempt, faults  # type: ignore[return-value]
            faults[err.kind] += 1
            stats[err.kind] += 1
            if err.fatal or attempt > self.retries:
                stats["failures"] += 1
                if err.fatal:
                    err.attempts, err.faults = attempt, dict(faults)
                    raise err
                raise BackendError(f"{err.url}: no reply after {attempt} attempt(s); last: {err}", kind=err.kind,
                                   url=err.url, attempts=attempt, faults=dict(faults))
            stats["retries"] += 1
            log.debug("%s (attempt %d of %d), retrying", err, attempt, self.retries + 1)
            await asyncio.sleep(self._pause(attempt, retry_after))

    # ------------------------------------------------------------------ calls
    async def complete_async(self, request: FrameRequest) -> Reply:
        """Answer ``request``; faults of a model lookup this call made are counted in its reply (or error)."""
        t0 = time.perf_counter()
        faults = await self._lookup_model()
        payload = self._payload(request, self.model)  # type: ignore[arg-type]
        try:
            reply, attempts, chat_faults = await self._call("POST", "/chat/completions", payload, self._chat_from,
                                                            self.stats)
        except BackendError as err:
            err.faults = dict(faults + Counter(err.faults))
            raise
        faults.update(chat_faults)
        return Reply(reply.text, time.perf_counter() - t0, attempts, reply.finish_reason, reply.usage, dict(faults))

    def complete(self, request: FrameRequest) -> Reply:
        """:meth:`complete_async` run on the backend's background loop (blocking)."""
        return self._background.run(self.complete_async(request))
