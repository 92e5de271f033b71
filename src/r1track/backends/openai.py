"""The ``openai`` backend: any OpenAI-compatible chat-completions server (vLLM serving a model of any family).

* One persistent keep-alive client per backend and event loop (:mod:`r1track.httpclient`),
  shared by every tracker that uses the backend. :meth:`OpenAIBackend.complete_async` uses the caller's
  loop, so one process keeps hundreds of requests in flight; :meth:`OpenAIBackend.complete` runs the
  very same coroutine in the calling thread, on that thread's private loop (:class:`r1track.callerloop.CallerLoop`:
  no hand-off to another thread per request). There is one retry loop
  (:meth:`OpenAIBackend._call`) for chat requests and the model lookup alike. Clients are created on
  first use, never at import or construction (PyTracking spawns worker processes).
* Timeouts (connect; send + whole response), retries with exponential backoff and jitter, bounded by
  ``backoff_max_s`` (``Retry-After`` honoured up to that bound), on every transport fault (refused,
  reset, timeout, malformed HTTP, oversized body, a response followed by stray bytes on a reused
  connection), HTTP 5xx, 408 and 429, and unreadable 200 bodies; after the last attempt a
  :class:`~r1track.backends.BackendError` naming the URL and carrying every fault met by kind. A refusal
  -- HTTP 401, 403 or a 3xx redirect (not followed) -- is retried the same way (one from a passing proxy
  hiccup must not end a run) and, when every attempt is refused, raised as
  :class:`~r1track.backends.ServerRefused` (fatal; the command line exits with status 3). Other 4xx
  answers (unknown model, too many images) are fatal at once: every frame would fail the same way.
* A 200 answer whose message ``content`` is null, or that has no choice at all, is a reply with no text
  and ``empty_reason`` set (the tracker's ``no-content`` fallback, a reason that points at the server);
  it is not retried. Bytes the server sent after a response on a fresh connection are counted as an
  ``extra-bytes`` fault of the request (its response is used: nothing else was asked on that connection).
* The model name, when not given, comes from the server's model listing (``GET /v1/models``), asked
  through the same retry loop and shared through a :class:`~r1track.backends.model_lookup.ModelLookup`: once
  per server for the whole scope (an ``r1track`` command, a PyTracking process), whichever backend or
  sequence asks first; only a definite answer is fatal (a refusal as above, another 4xx other than 408/429, or a
  list without models). Its faults are counted in ``lookup_stats`` and reported through the lookup's
  ``on_lookup``.
* Every wait is bounded by the request's ``deadline`` (:attr:`~r1track.backends.FrameRequest.deadline`, the
  fault policy's limit, :class:`r1track.faults.FaultGuard`): an attempt in flight is cut off there, no retry
  starts after it, and a pause before a retry ends at it; the error then says the time limit was reached.
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
(``http://127.0.0.1:8000/v1``; the model the server lists first); ``url_source`` says where the URL came
from, so a message about a server that does not answer can say it was the default. The API key is sent as a
bearer token and never logged or shown in ``repr``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import time
import weakref
from collections import Counter
from typing import Any, Callable, Mapping, TypeVar
from urllib.parse import urlsplit

from PIL import Image

from ..callerloop import CallerLoop
from ..crop import encode_jpeg
from ..httpclient import DEFAULT_MAX_BODY_BYTES, AsyncHTTPClient, Response, StrayResponse, TransportError
from ..redact import get_logger, redact, register_secret

from .base import Backend, BackendError, FrameRequest, Reply, RequestImage, ServerRefused
from .model_lookup import ModelLookup

__all__ = [
    "ENV_BASE_URL",
    "ENV_MODEL",
    "ENV_API_KEY",
    "DEFAULT_BASE_URL",
    "URL_SOURCES",
    "OpenAIBackend",
    "cached_data_url",
    "encode_data_url",
    "normalize_base_url",
]

log = get_logger(__name__)

ENV_BASE_URL = "R1TRACK_BASE_URL"
ENV_MODEL = "R1TRACK_MODEL"
ENV_API_KEY = "R1TRACK_API_KEY"
DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
URL_SOURCES = ("given", ENV_BASE_URL, "OPENAI_BASE_URL", "default")
"""Where :attr:`OpenAIBackend.base_url` came from: the argument, one of the two variables, or the default."""

_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_MARKER = "\x00r1track-image\x00"  # stands for a data URL in the dumped body (OpenAIBackend.encode_body)
_MARKER_JSON = json.dumps(_MARKER)[1:-1]
_DETAIL_CHARS = 300  # of an error body, quoted in messages (after redaction)


def _quoted(text: str, limit: int = _DETAIL_CHARS) -> str:
    """At most ``limit`` characters of a server's ``text`` for a message, redacted *before* it is cut, so a key
    that crosses the cut is still recognised and masked, not left half-visible."""
    return redact(text[: 16 * limit])[:limit]
_timeout = getattr(asyncio, "timeout", None)  # Python >= 3.11

T = TypeVar("T")


class TimeLimitReached(TransportError):
    """An attempt cut off at the request's deadline (counted as a ``timeout`` fault)."""

    kind = "timeout"


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


def _close_sync_loops(runner: CallerLoop, clients: dict) -> None:
    """Close the connections of the sync path's loops (the calling threads' and the background one) and the
    loops themselves."""

    async def finish(loop: asyncio.AbstractEventLoop) -> None:
        client = clients.pop(loop, None)
        if client is not None:
            await client.aclose()

    runner.close(finish)


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
    request fields (e.g. ``{"top_k": 20}``). ``lookup``: the :class:`ModelLookup` shared with the scope's
    other backends (None: one of its own).

    ``stats`` counts, for chat requests, ``requests``, ``attempts``, ``retries``, ``replies``,
    ``failures`` (gave up) and each fault by kind (``timeout``, ``connection``, ``malformed``,
    ``too-large``, ``extra-bytes``, ``http-500``, ``http-429``, ``http-401``, ``http-302``, ``bad-response``,
    ``client-error``), whether or not a retry then succeeded; ``lookup_stats`` the same for the model lookup.
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
        lookup: ModelLookup | None = None,
    ) -> None:
        sources = [("given", base_url), (ENV_BASE_URL, os.environ.get(ENV_BASE_URL)),
                   ("OPENAI_BASE_URL", os.environ.get("OPENAI_BASE_URL")), ("default", DEFAULT_BASE_URL)]
        self.url_source, url = next((s, u) for s, u in sources if u)
        self.base_url = normalize_base_url(url)
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
        self.lookup = lookup if lookup is not None else ModelLookup()
        self._sync = CallerLoop(f"r1track-openai-{self.base_url}")
        self._clients: dict[asyncio.AbstractEventLoop, AsyncHTTPClient] = {}
        self._rng = random.Random()
        # a backend dropped or alive at exit without close() still closes the sync path's connections
        weakref.finalize(self, _close_sync_loops, self._sync, self._clients)

    def __repr__(self) -> str:  # never the key
        return f"OpenAIBackend(base_url={self.base_url!r}, model={self.model!r}, api_key={'set' if self._api_key else 'unset'})"

    # ------------------------------------------------------------------ clients
    def _loop_client(self) -> AsyncHTTPClient:
        """The client of the running event loop: the caller's loop on the async
        path, the calling thread's own loop on the sync path (:class:`r1track.callerloop.CallerLoop`). A client belongs to one loop; clients of
        loops that have since closed are dropped."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            for old in [k for k in list(self._clients) if k.is_closed()]:  # other threads may add theirs
                del self._clients[old]
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            client = AsyncHTTPClient(self.base_url, headers=headers, connect_timeout_s=self.connect_timeout_s,
                                     read_timeout_s=self.timeout_s, max_connections=self.max_connections,
                                     max_body_bytes=self.max_body_bytes)
            self._clients[loop] = client
        return client

    def close(self) -> None:
        """Close the sync path's connections and loops (idempotent; a later call starts new ones)."""
        _close_sync_loops(self._sync, self._clients)

    async def aclose(self) -> None:
        """Close the running loop's connections, then the sync path's."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
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
                                      f"{_quoted(resp.text)!r}", kind="bad-response", url=url), None
        if not models or not isinstance(models[0], dict) or "id" not in models[0]:
            return None, BackendError(f"{url} lists no model; pass the served model name", kind="client-error",
                                      url=url, fatal=True), None
        return listing, None, None

    async def fetch_listing(self, deadline: float | None = None) -> tuple[dict, int, Counter[str]]:
        """Ask the server's ``GET /v1/models`` now (no sharing: :class:`ModelLookup` calls this): (listing,
        attempts, faults met by kind); :class:`BackendError` when it cannot be had."""
        return await self._call("GET", "/models", b"", self._listing_from, self.lookup_stats, deadline=deadline)

    def resolve_model(self, deadline: float | None = None) -> str:
        """The model name, from the shared model listing when none was given (blocking)."""
        return self.model if self.model is not None else self._sync.run(self.resolve_model_async(deadline))

    def model_listing(self, deadline: float | None = None) -> dict:
        """The server's ``GET /v1/models`` answer as JSON (vLLM lists each served name as ``id`` and the path
        or hub name it loaded as ``root``), through the shared :class:`ModelLookup` (asked once per server and
        scope); :class:`BackendError` when it cannot be had (fatal for a definite answer). ``deadline``:
        ``time.monotonic()`` seconds by which to give up."""
        return self._sync.run(self.lookup.listing(self, deadline))

    async def resolve_model_async(self, deadline: float | None = None) -> str:
        """The model name, from the shared model listing when none was given (the first model it lists).
        Raises :class:`BackendError` (fatal only for a definite answer)."""
        await self._lookup_model(deadline)
        assert self.model is not None
        return self.model

    async def _lookup_model(self, deadline: float | None) -> None:
        """Learn the model name when unknown (the lookup's counts go to the lookup's ``on_lookup``)."""
        if self.model is not None:
            return
        listing = await self.lookup.listing(self, deadline)
        if self.model is None:
            self.model = str(listing["data"][0]["id"])
            log.info("%s serves model %s", self.base_url, redact(repr(self.model)))  # a server may echo the key there

    # ------------------------------------------------------------------ request body
    def image_url(self, image: RequestImage) -> str:
        """The image's data URL, encoded once per :class:`RequestImage` and quality."""
        return cached_data_url(image, self.jpeg_quality)

    def body(self, request: FrameRequest, model: str) -> dict[str, Any]:
        """The chat-completions request body for ``request``."""
        return self._body(request, model, [self.image_url(i) for i in request.images])

    def _body(self, request: FrameRequest, model: str, image_urls: list[str]) -> dict[str, Any]:
        s = request.sampling
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": "user", "content": request.chat_content(image_urls)}],
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

    def encode_body(self, request: FrameRequest, model: str) -> bytes:
        """``json.dumps(self.body(request, model), separators=(",", ":")).encode()``, byte for byte, without the
        JSON encoder scanning the images' base64 text (tens of kilobytes a frame, most of the body): the body is
        dumped with a marker in place of each data URL and the URLs' bytes (cached per image, so a sequence's
        template is converted once) are joined in. A data URL is ASCII letters, digits and ``+/=:;,``, which
        JSON writes as they are. Should a marker's text appear anywhere else (it cannot in r1track's prompts),
        the plain ``json.dumps`` is used."""
        markers = [f"{_MARKER}{k}{_MARKER}" for k in range(len(request.images))]
        text = json.dumps(self._body(request, model, markers), separators=(",", ":"))
        parts = text.split(_MARKER_JSON)
        if len(parts) != 2 * len(markers) + 1 or any(parts[2 * k + 1] != str(k) for k in range(len(markers))):
            return json.dumps(self.body(request, model), separators=(",", ":")).encode()
        pieces: list[bytes] = []
        for k, image in enumerate(request.images):
            pieces.append(parts[2 * k].encode())
            pieces.append(self._url_bytes(image))
        pieces.append(parts[-1].encode())
        return b"".join(pieces)

    def _url_bytes(self, image: RequestImage) -> bytes:
        key = ("jpeg-data-url-bytes", self.jpeg_quality)
        data = image.cache.get(key)
        if data is None:
            data = self.image_url(image).encode("ascii")
            image.cache[key] = data
        return data

    def prepare(self, request: FrameRequest) -> None:
        """Encode the images (cached) and, when the model name is known, serialise the body."""
        if self.model is not None:
            request.payload = self.encode_body(request, self.model)
        else:
            for image in request.images:
                self.image_url(image)

    def _payload(self, request: FrameRequest, model: str) -> bytes:
        if request.payload is None:
            request.payload = self.encode_body(request, model)
        return request.payload

    # ------------------------------------------------------------------ one attempt
    def _status_error(self, resp: Response, url: str) -> tuple[BackendError, float | None]:
        """The error for a non-200 answer and its Retry-After (delta-seconds, ASCII digits only): retried
        for 5xx, 408, 429; a :class:`ServerRefused` for 401, 403 and 3xx (retried too, fatal once every
        attempt was refused); fatal at once for the other 4xx."""
        code = resp.status
        detail = _quoted(resp.text.strip())
        if code in _RETRY_STATUS or code >= 500:
            retry_after = None
            value = resp.headers.get("retry-after", "").strip()
            if code in (429, 503) and value.isascii() and value.isdigit() and len(value) <= 9:
                retry_after = float(value)
            return BackendError(f"{url}: HTTP {code}: {detail}", kind=f"http-{code}", url=url), retry_after
        if code in (401, 403) or 300 <= code < 400:
            if code == 401:
                why = "authentication refused: check the API key (R1TRACK_API_KEY)"
            elif code == 403:
                why = "permission refused: the API key may not use this server or model"
            else:
                location = _quoted(resp.headers.get("location", ""), 200) or "no Location given"
                why = f"redirected to {location}; r1track does not follow redirects: give the final URL"
            return ServerRefused(f"{url}: HTTP {code}: the server refused the request ({why}): {detail}",
                                 kind=f"http-{code}", url=url), None
        return BackendError(f"{url}: HTTP {code} (request rejected; not retried): {detail}", kind="client-error",
                            url=url, fatal=True), None

    def _chat_from(self, resp: Response) -> tuple[Reply | None, BackendError | None, float | None]:
        """(reply, None, _) on success; (None, error, retry_after) otherwise."""
        if resp.status != 200:
            return None, *self._status_error(resp, self.url)
        try:
            data = resp.json()
            choices = data["choices"]
            if not isinstance(choices, list):
                raise TypeError("choices is not a list")
            if not choices:  # well-formed, but no answer in it (a content filter, a broken gateway)
                return Reply("", usage=data.get("usage"), empty_reason="the server's reply has no choices"), None, None
            choice = choices[0]
            message = choice["message"]
            text = message.get("content") if isinstance(message, dict) else None
            if text is None:  # vLLM: e.g. every token went to a reasoning parser's reasoning_content
                finish = choice.get("finish_reason")
                return Reply("", finish_reason=finish, usage=data.get("usage"),
                             empty_reason=f"the server's reply has null content (finish_reason {finish!r})"), None, None
            if not isinstance(text, str):
                raise TypeError("content is not a string")
        except Exception as exc:
            return None, BackendError(f"{self.url}: unreadable reply ({type(exc).__name__}): "
                                      f"{_quoted(resp.text)!r}", kind="bad-response", url=self.url), None
        return Reply(redact(text), finish_reason=choice.get("finish_reason"), usage=data.get("usage")), None, None

    def _pause(self, attempt: int, retry_after: float | None) -> float:
        base = min(self.backoff_max_s, self.backoff_s * (2 ** (attempt - 1)))
        pause = base * (0.5 + 0.5 * self._rng.random())
        if retry_after is not None and retry_after >= 0:
            pause = max(pause, min(retry_after, self.backoff_max_s))
        return pause

    async def _send(self, client: AsyncHTTPClient, method: str, target: str, payload: bytes,
                    seconds_left: float | None) -> Response:
        """One attempt, cut off after ``seconds_left`` (the deadline) when that comes before its own timeout."""
        if seconds_left is None or seconds_left >= self.timeout_s + self.connect_timeout_s:
            return await client.request(method, target, payload)
        try:
            if _timeout is not None:
                async with _timeout(max(seconds_left, 0.0)):
                    return await client.request(method, target, payload)
            return await asyncio.wait_for(client.request(method, target, payload), max(seconds_left, 0.0))
        except asyncio.TimeoutError:
            raise TimeLimitReached(f"no complete response within the {max(seconds_left, 0.0):.3g} s left of the "
                                   "time limit") from None

    async def _call(
        self, method: str, route: str, payload: bytes,
        read: Callable[[Response], tuple[T | None, BackendError | None, float | None]], stats: Counter[str],
        *, deadline: float | None = None,
    ) -> tuple[T, int, Counter[str]]:
        """The one retry loop: send until ``read`` accepts a response, a fatal error, the retries run out or
        ``deadline`` (``time.monotonic()`` seconds; None: none) passes -- an attempt in flight is cut off then and
        no retry starts after it. Returns (value, attempts, faults met by kind); raises :class:`BackendError`
        carrying the attempts and faults."""
        client = self._loop_client()
        stats["requests"] += 1
        faults: Counter[str] = Counter()
        attempt = 0
        t0 = time.monotonic()
        url = self.base_url + route
        last: BackendError | None = None
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:  # before any attempt (or after a pause cut short by the limit)
                stats["failures"] += 1
                if isinstance(last, ServerRefused):  # every attempt made was refused: still a refusal (exit 3)
                    raise ServerRefused(f"{last} (on all {attempt} attempt(s))", kind=last.kind, url=last.url,
                                        attempts=attempt, faults=dict(faults))
                raise BackendError(f"{url}: no reply after {attempt} attempt(s) in {time.monotonic() - t0:.1f} s: the "
                                   "time limit was reached" + (f"; last: {last}" if last else ""),
                                   kind=last.kind if last else "timeout", url=url, attempts=attempt, faults=dict(faults))
            attempt += 1
            stats["attempts"] += 1
            retry_after = None
            try:
                resp = await self._send(client, method, self._path + route, payload, left)
                if resp.stray_bytes:  # the server sent bytes no request asked for; that connection was dropped
                    faults[StrayResponse.kind] += 1
                    stats[StrayResponse.kind] += 1
                value, err, retry_after = read(resp)
            except TransportError as exc:
                value, err = None, BackendError(f"{url}: {type(exc).__name__}: {exc or 'no detail'}", kind=exc.kind,
                                                url=url)
            if err is None:
                stats["replies"] += 1
                return value, attempt, faults  # type: ignore[return-value]
            last = err
            faults[err.kind] += 1
            stats[err.kind] += 1
            refused = isinstance(err, ServerRefused)  # retried like a fault, fatal once every attempt was refused
            out_of_time = deadline is not None and time.monotonic() >= deadline
            if (err.fatal and not refused) or attempt > self.retries or out_of_time:
                stats["failures"] += 1
                if refused:
                    raise ServerRefused(f"{err} (on all {attempt} attempt(s))", kind=err.kind, url=err.url,
                                        attempts=attempt, faults=dict(faults))
                if err.fatal:
                    err.attempts, err.faults = attempt, dict(faults)
                    raise err
                why = f" in {time.monotonic() - t0:.1f} s: the time limit was reached" if out_of_time else ""
                raise BackendError(f"{err.url}: no reply after {attempt} attempt(s){why}; last: {err}", kind=err.kind,
                                   url=err.url, attempts=attempt, faults=dict(faults))
            stats["retries"] += 1
            log.debug("%s (attempt %d of %d), retrying", err, attempt, self.retries + 1)
            pause = self._pause(attempt, retry_after)
            if deadline is not None:
                pause = min(pause, max(deadline - time.monotonic(), 0.0))
            await asyncio.sleep(pause)

    # ------------------------------------------------------------------ calls
    async def complete_async(self, request: FrameRequest) -> Reply:
        """Answer ``request`` by its ``deadline``. A model lookup this call needed is counted by the lookup
        (``on_lookup``), not in this reply; when it fails, the error says so and carries no attempt of this
        request."""
        t0 = time.perf_counter()
        if self.model is None:
            try:
                await self._lookup_model(request.deadline)
            except ServerRefused as err:  # the key or the URL is wrong: still a refusal (exit status 3)
                raise ServerRefused(f"model lookup failed: {err}", kind=err.kind, url=err.url, attempts=0) from None
            except BackendError as err:
                raise BackendError(f"model lookup failed: {err}", kind=err.kind, url=err.url, attempts=0,
                                   fatal=err.fatal) from None
        payload = self._payload(request, self.model)  # type: ignore[arg-type]
        reply, attempts, faults = await self._call("POST", "/chat/completions", payload, self._chat_from, self.stats,
                                                   deadline=request.deadline)
        return Reply(reply.text, time.perf_counter() - t0, attempts, reply.finish_reason, reply.usage, dict(faults),
                     reply.empty_reason)

    def complete(self, request: FrameRequest) -> Reply:
        """:meth:`complete_async` run to completion in the calling thread (blocking; see
        :class:`r1track.callerloop.CallerLoop`)."""
        return self._sync.run(self.complete_async(request))
