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

Every log line too: r1track's modules get their loggers from :func:`get_logger`, which puts
:class:`RedactingFilter` on them, so a record's message, its arguments (a model name a server listed, an
error text) and its traceback are redacted before any handler -- the user's, pytest's, PyTracking's --
sees them. The filter formats a record only when it is emitted (a level that is off costs nothing).
"""

from __future__ import annotations

import logging
import re
import threading

__all__ = ["MASK", "register_secret", "redact", "RedactingFilter", "get_logger"]

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


class RedactingFilter(logging.Filter):
    """Redacts a log record in place (message with its arguments, traceback, stack); never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: let the handler report it as usual
            return True
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactingFilter()


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with :class:`RedactingFilter` on it (once): how every r1track module
    gets its logger."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(_FILTER)
    return logger
