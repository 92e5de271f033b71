"""The ``openai`` backend: any OpenAI-compatible chat-completions server (vLLM serving Qwen2.5-VL).

* One persistent keep-alive client per backend (:mod:`r1track.httpclient`: connection pooling on
  asyncio streams, cheap with hundreds of connections), shared by every tracker that uses the backend;
  an async client for :meth:`OpenAIBackend.complete_async`, so one process keeps hundreds of requests
  in flight, and a sync one for :meth:`OpenAIBackend.complete`. Both are created on first use, never at
  import or construction (PyTracking spawns worker processes).
* Timeouts (connect / read), retries with exponential backoff and jitter on connection errors,
  timeouts, HTTP 5xx, 408 and 429 (``Retry-After`` honoured) and unreadable 200 bodies; after the last attempt a
  :class:`~r1track.backends.BackendError` naming the URL. Other 4xx answers (unknown model, too many
  images, bad key) are fatal at once: every frame would fail the same way.
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
import threading
import time
from collections import Counter
from typing import Any, Mapping
from urllib.parse import urlsplit

from PIL import Image

from ..crop import encode_jpeg
from ..httpclient import AsyncHTTPClient, RequestTimeout, Response, SyncHTTPClient, TransportError

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


class OpenAIBackend(Backend):
    """Client of an OpenAI-compatible server (see the module docstring).

    ``base_url``: e.g. ``http://127.0.0.1:8000/v1``. ``model``: the served model name (vLLM
    ``--served-model-name``); None asks the server (``GET /v1/models``, first entry).
    ``api_key``: bearer token (vLLM ``--api-key``). ``timeout_s``: read timeout per attempt;
    ``connect_timeout_s``: connect timeout. ``retries``: extra attempts after the first;
    ``backoff_s`` / ``backoff_max_s``: first and largest pause between attempts (doubling, with
    jitter). ``max_connections``: connection pool size (requests beyond it queue in the client).
    ``jpeg_quality``: quality of the JPEGs sent (95, as OpenCV encodes by default).
    ``extra_body``: extra top-level request fields (e.g. ``{"top_k": 20}``).

    ``stats`` counts ``requests``, ``attempts``, ``retries``, ``replies``, ``failures`` (gave up)
    and each fault by kind (``timeout``, ``connection``, ``http-500``, ``http-429``,
    ``bad-response``, ``client-error``), whether or not a retry then succeeded.
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
        backoff_max_s: float = 10.0,
        max_connections: int = 1024,
        jpeg_quality: int = 95,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        self.base_url = normalize_base_url(base_url or os.environ.get(ENV_BASE_URL) or os.environ.get("OPENAI_BASE_URL")
                                           or DEFAULT_BASE_URL)
        self.url = self.base_url + "/chat/completions"
        self._path = urlsplit(self.base_url).path.rstrip("/")
        self.model = model or os.environ.get(ENV_MODEL) or None
        self._api_key = api_key or os.environ.get(ENV_API_KEY) or os.environ.get("OPENAI_API_KEY") or None
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
        self.jpeg_quality = int(jpeg_quality)
        self.extra_body = dict(extra_body or {})
        self.stats: Counter[str] = Counter()
        self._client: SyncHTTPClient | None = None
        self._aclient: AsyncHTTPClient | None = None
        self._aclient_loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._rng = random.Random()

    def __repr__(self) -> str:  # never the key
        return f"OpenAIBackend(base_url={self.base_url!r}, model={self.model!r}, api_key={'set' if self._api_key else 'unset'})"

    # ------------------------------------------------------------------ clients
    def _client_kwargs(self) -> dict[str, Any]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return dict(headers=headers, connect_timeout_s=self.connect_timeout_s, read_timeout_s=self.timeout_s)

    @property
    def client(self) -> SyncHTTPClient:
        """The persistent sync client (created on first use)."""
        with self._lock:
            if self._client is None:
                self._client = SyncHTTPClient(self.base_url, **self._client_kwargs())
            return self._client

    def _async_client(self) -> AsyncHTTPClient:
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aclient_loop is not loop:
            # an async client belongs to one event loop; a new loop (a new asyncio.run) gets a new client
            self._aclient = AsyncHTTPClient(self.base_url, max_connections=self.max_connections, **self._client_kwargs())
            self._aclient_loop = loop
        return self._aclient

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
        self._aclient = None  # an async client can only be closed inside its loop: use aclose()

    async def aclose(self) -> None:
        if self._aclient is not None and self._aclient_loop is asyncio.get_running_loop():
            await self._aclient.aclose()
        self._aclient = None
        self.close()

    # ------------------------------------------------------------------ model name
    def _models_from(self, resp: Response) -> str:
        if resp.status != 200:
            raise BackendError(f"{self.base_url}/models: HTTP {resp.status}: {resp.text[:200]}", kind="client-error",
                               url=self.base_url + "/models", fatal=True)
        try:
            return str(resp.json()["data"][0]["id"])
        except Exception:
            raise BackendError(f"{self.base_url}/models lists no model; pass the served model name", kind="bad-response",
                               url=self.base_url + "/models", fatal=True) from None

    def resolve_model(self) -> str:
        """The model name, asking the server once when none was given."""
        if self.model is None:
            try:
                self.model = self._models_from(self.client.request("GET", self._path + "/models"))
            except TransportError as exc:
                raise BackendError(f"{self.base_url}/models: {type(exc).__name__}: {exc}", kind="connection",
                                   url=self.base_url + "/models", fatal=True) from None
        return self.model

    def model_listing(self) -> dict:
        """The server's ``GET /v1/models`` answer as JSON (vLLM lists each served name as ``id`` and the path
        or hub name it loaded as ``root``); :class:`BackendError` (fatal) when it cannot be had."""
        try:
            resp = self.client.request("GET", self._path + "/models")
        except TransportError as exc:
            raise BackendError(f"{self.base_url}/models: {type(exc).__name__}: {exc}", kind="connection",
                               url=self.base_url + "/models", fatal=True) from None
        self._models_from(resp)  # raises on an error status or an empty listing
        return resp.json()

    async def resolve_model_async(self) -> str:
        if self.model is None:
            try:
                self.model = self._models_from(await self._async_client().request("GET", self._path + "/models"))
            except TransportError as exc:
                raise BackendError(f"{self.base_url}/models: {type(exc).__name__}: {exc}", kind="connection",
                                   url=self.base_url + "/models", fatal=True) from None
        return self.model

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
    def _outcome(self, resp: Response) -> tuple[Reply | None, BackendError | None, float | None]:
        """(reply, None, _) on success; (None, error, retry_after) otherwise (error.fatal: stop)."""
        code = resp.status
        if code == 200:
            try:
                data = resp.json()
                choice = data["choices"][0]
                text = choice["message"].get("content") or ""
                if not isinstance(text, str):
                    raise TypeError("content is not a string")
            except Exception as exc:
                return None, BackendError(f"{self.url}: unreadable reply ({type(exc).__name__}): {resp.text[:200]!r}",
                                          kind="bad-response", url=self.url), None
            return Reply(text, finish_reason=choice.get("finish_reason"), usage=data.get("usage")), None, None
        detail = resp.text[:300].strip()
        if code in _RETRY_STATUS or code >= 500:
            kind = "http-429" if code == 429 else f"http-{code}"
            retry_after = None
            if code in (429, 503):
                try:
                    retry_after = float(resp.headers.get("retry-after", ""))
                except ValueError:
                    retry_after = None
            return None, BackendError(f"{self.url}: HTTP {code}: {detail}", kind=kind, url=self.url), retry_after
        return None, BackendError(f"{self.url}: HTTP {code} (request rejected; not retried): {detail}",
                                  kind="client-error", url=self.url, fatal=True), None

    def _transport_error(self, exc: TransportError) -> BackendError:
        kind = "timeout" if isinstance(exc, RequestTimeout) else "connection"
        return BackendError(f"{self.url}: {type(exc).__name__}: {exc or 'no detail'}", kind=kind, url=self.url)

    def _pause(self, attempt: int, retry_after: float | None) -> float:
        base = min(self.backoff_max_s, self.backoff_s * (2 ** (attempt - 1)))
        pause = base * (0.5 + 0.5 * self._rng.random())
        if retry_after is not None and retry_after >= 0:
            pause = max(pause, min(retry_after, self.backoff_max_s))
        return pause

    def _give_up(self, err: BackendError, attempts: int) -> BackendError:
        self.stats["failures"] += 1
        if err.fatal:
            err.attempts = attempts
            return err
        return BackendError(f"{self.url}: no reply after {attempts} attempt(s); last: {err}", kind=err.kind,
                            url=self.url, attempts=attempts)

    def _record(self, err: BackendError, attempt: int) -> bool:
        """Count the fault; True when another attempt should follow."""
        self.stats[err.kind] += 1
        retry = not err.fatal and attempt <= self.retries
        if retry:
            self.stats["retries"] += 1
            log.debug("%s (attempt %d of %d), retrying", err, attempt, self.retries + 1)
        return retry

    # ------------------------------------------------------------------ calls
    def complete(self, request: FrameRequest) -> Reply:
        model = self.resolve_model()
        payload = self._payload(request, model)
        client = self.client
        self.stats["requests"] += 1
        t0 = time.perf_counter()
        attempt = 0
        while True:
            attempt += 1
            self.stats["attempts"] += 1
            retry_after = None
            try:
                reply, err, retry_after = self._outcome(client.request("POST", self._path + "/chat/completions", payload))
            except TransportError as exc:
                reply, err = None, self._transport_error(exc)
            if reply is not None:
                self.stats["replies"] += 1
                return Reply(reply.text, time.perf_counter() - t0, attempt, reply.finish_reason, reply.usage)
            assert err is not None
            if not self._record(err, attempt):
                raise self._give_up(err, attempt)
            time.sleep(self._pause(attempt, retry_after))

    async def complete_async(self, request: FrameRequest) -> Reply:
        model = await self.resolve_model_async()
        payload = self._payload(request, model)
        client = self._async_client()
        self.stats["requests"] += 1
        t0 = time.perf_counter()
        attempt = 0
        while True:
            attempt += 1
            self.stats["attempts"] += 1
            retry_after = None
            try:
                reply, err, retry_after = self._outcome(await client.request("POST", self._path + "/chat/completions", payload))
            except TransportError as exc:
                reply, err = None, self._transport_error(exc)
            if reply is not None:
                self.stats["replies"] += 1
                return Reply(reply.text, time.perf_counter() - t0, attempt, reply.finish_reason, reply.usage)
            assert err is not None
            if not self._record(err, attempt):
                raise self._give_up(err, attempt)
            await asyncio.sleep(self._pause(attempt, retry_after))
