"""Secret redaction: the one place that keeps API keys out of messages, logs and output files.

:func:`redact` replaces, with ``***``:

* every secret registered with :func:`register_secret` (the API key an
  :class:`~r1track.backends.openai.OpenAIBackend` was given, from an argument or the environment);
* anything shaped like a bearer token (``Bearer <token>``, any case) or an OpenAI-style key
  (``sk-`` followed by 8 or more key characters), whether or not it was registered — a server or proxy
  may echo request headers in an error body.

Backends pass every error message and reply text they produce through :func:`redact`
(:class:`~r1track.backends.BackendError` does it in its constructor), so what reaches a log line, a
replay log, ``run.json`` or ``frames.jsonl`` is already clean. Text without a secret is returned
unchanged (the same object), so redacting replies never changes a box.
"""

from __future__ import annotations

import re
import threading

__all__ = ["MASK", "register_secret", "redact"]

MASK = "***"

_PATTERN = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+|\bsk-[A-Za-z0-9_\-]{8,}")
_SECRETS: set[str] = set()
_LOCK = threading.Lock()
_MIN_SECRET_LEN = 4  # shorter strings would mask ordinary words


def register_secret(secret: str | None) -> None:
    """Remember ``secret`` (an API key) so :func:`redact` masks it everywhere in this process.
    None, empty and very short strings (< 4 characters) are ignored."""
    if secret and len(secret) >= _MIN_SECRET_LEN:
        with _LOCK:
            _SECRETS.add(secret)


def _mask(match: re.Match) -> str:
    return (match.group(1) + MASK) if match.group(1) else MASK


def redact(text: str) -> str:
    """``text`` with registered secrets, ``Bearer …`` tokens and ``sk-…`` keys replaced by ``***``.
    Never raises; a non-string is converted with ``str`` first."""
    if not isinstance(text, str):
        text = str(text)
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, MASK)
    if "sk-" in text or "bearer" in text.lower():
        text = _PATTERN.sub(_mask, text)
    return text
