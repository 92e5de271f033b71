"""Read a model reply into one box in the model-input frame. Never raises.

Accepted forms (searched in this order, inside the last ``<answer>...</answer>`` block when there is
one, else after the last ``</think>``, else in the whole reply; markdown code fences are unwrapped):

1. JSON: ``[x1,y1,x2,y2]`` (ints or floats, any spacing), ``[[x1,y1,x2,y2]]``,
   Qwen's native ``[{"bbox_2d": [...], "label": "..."}]`` (first item with a ``bbox_2d``) and
   ``{"bbox_2d": [...]}``.
2. Text: a ``"bbox_2d": [...]`` fragment, the last ``[a,b,c,d]`` group (leading zeros such as
   ``[012,444,...]`` from regex-constrained decoding are read as decimal), or the last
   ``(x1,y1),(x2,y2)`` pair.

Swapped corners are put in order and flagged. NaN, infinite or overflowing values, booleans and
anything else yield no box and a reason.

The absent answer :data:`r1track.prompts.ABSENT_ANSWER` (``[]``: an empty JSON list, optionally fenced or
inside ``<answer>``) is not a failure: it reads as ``visible=False`` with reason ``"absent"`` and no box.
Only the whole answer being ``[]`` counts (an empty list inside other text is just text).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from .boxes import BoxXYXY, normalize_xyxy

__all__ = ["ParsedReply", "parse_reply", "strict_think_format", "is_bare_box_json", "is_bare_absent_json", "ABSENT_REASON"]

ABSENT_REASON = "absent"
"""``ParsedReply.reason`` of the absent answer."""

_NUM = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_LIST_RE = re.compile(r"\[\s*(" + _NUM + r")\s*,\s*(" + _NUM + r")\s*,\s*(" + _NUM + r")\s*,\s*(" + _NUM + r")\s*\]")
_BBOX2D_RE = re.compile(r"[\"']bbox_2d[\"']\s*:\s*" + _LIST_RE.pattern)
_POINTS_RE = re.compile(
    r"\(\s*(" + _NUM + r")\s*,\s*(" + _NUM + r")\s*\)\s*,?\s*(?:to\s*)?\(\s*(" + _NUM + r")\s*,\s*(" + _NUM + r")\s*\)"
)
# A complete block holds no other "<answer>": with "<answer> tags</think><answer>[..]</answer>" the block is the
# second one (a plain non-greedy match would start at the first tag and swallow "</think><answer>").
_ANSWER_RE = re.compile(r"<answer>((?:(?!<answer>).)*?)</answer>", re.DOTALL)
_EMPTY_LIST_RE = re.compile(r"\[\s*\]")
_FENCE_RE = re.compile(r"```[ \t]*[A-Za-z0-9_+-]*[ \t]*\n?(.*?)```", re.DOTALL)
# R1-Track's strict think format: one <think> block, then free text, then one <answer> block, nothing after.
_STRICT_THINK_RE = re.compile(
    r"<think>(?:(?!<think>|</think>).)*</think>(?:(?!<think>|</think>|<answer>|</answer>).)*"
    r"<answer>(?:(?!<answer>|</answer>).)*</answer>",
    re.DOTALL,
)


@dataclass(frozen=True)
class ParsedReply:
    """Outcome of :func:`parse_reply`.

    ``box_xyxy_model``: the box in model-input pixels, corners ordered, or None.
    ``reason``: ``"ok"`` or why there is no box. ``swapped``: the corners came inverted.
    ``source``: which form matched (``json-list``, ``bbox_2d``, ``list``, ``points``).
    ``answer_tag``: a complete ``<answer>...</answer>`` block was present.
    ``think_format_ok``: the whole reply is exactly ``<think>...</think>...<answer>...</answer>``.
    ``answer_text``: the text inside the last complete ``<answer>...</answer>`` block (None when there is
    none), so callers can apply their own check to exactly what the answer says.
    ``visible``: False when the reply is the absent answer ``[]`` (the model says the target is not in the
    image; ``box_xyxy_model`` is then None and ``reason`` is :data:`ABSENT_REASON`), True otherwise.
    """

    box_xyxy_model: BoxXYXY | None
    reason: str
    swapped: bool = False
    source: str = ""
    answer_tag: bool = False
    think_format_ok: bool = False
    answer_text: str | None = None
    visible: bool = True

    @property
    def ok(self) -> bool:
        """A box was read (False both for failures and for the absent answer: see ``visible``)."""
        return self.box_xyxy_model is not None

    @property
    def absent(self) -> bool:
        """The reply is the absent answer."""
        return not self.visible


def strict_think_format(reply: str) -> bool:
    """True when ``reply`` is exactly ``<think>..</think>..<answer>..</answer>`` (R1-Track's gate:
    no nested or repeated tags, nothing before ``<think>`` or after ``</answer>``)."""
    try:
        return isinstance(reply, str) and _STRICT_THINK_RE.fullmatch(reply) is not None
    except Exception:  # pragma: no cover - regex engine errors on exotic input
        return False


def is_bare_box_json(text: object) -> bool:
    """True when ``text`` is exactly one JSON array of four finite numbers (JSON whitespace -- space, tab,
    CR, LF -- allowed around it), e.g. ``"[12,40,130,99]"`` or ``" [1.5, 2, 3, 4]\n"``.

    This is what R1-Track's reward accepted (``json.loads`` of the whole text), minus the values it
    mishandled: booleans, ``NaN``/``Infinity``, and arrays longer than four (it silently used the first
    four). Not-JSON spellings the parser still reads (leading zeros ``[012,...]``, ``1.``, ``+3``, a code
    fence, ``[[...]]``, ``bbox_2d``) are not bare. Corner order is not checked here. Never raises."""
    if not isinstance(text, str):
        return False
    try:
        values = json.loads(text, parse_constant=_reject_constant)
    except Exception:  # invalid JSON, NaN/Infinity, recursion depth, huge integers ...
        return False
    if not isinstance(values, list) or len(values) != 4:
        return False
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
        try:
            if not math.isfinite(v):
                return False
        except OverflowError:  # an int too large for a float
            return False
    return True


def is_bare_absent_json(text: object) -> bool:
    """True when ``text`` is exactly the JSON empty list ``[]`` (JSON whitespace allowed around and inside
    it): the absent answer's exact form, what the reward's format term asks for. Never raises."""
    if not isinstance(text, str):
        return False
    try:
        value = json.loads(text)
    except Exception:
        return False
    return isinstance(value, list) and not value


class _NoBox(Exception):
    pass


class _Absent(Exception):
    pass


def _to_box(values: object) -> tuple[float, float, float, float]:
    if not isinstance(values, (list, tuple)) or len(values) != 4:
        raise _NoBox("not 4 values")
    out = []
    for v in values:
        if isinstance(v, bool):
            raise _NoBox("boolean coordinate")
        if isinstance(v, str):
            v = v.strip()
            if not re.fullmatch(_NUM, v):
                raise _NoBox("non-numeric coordinate")
        try:
            f = float(v)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            raise _NoBox("non-numeric coordinate") from None
        if not math.isfinite(f):
            raise _NoBox("non-finite coordinate")
        out.append(f)
    return out[0], out[1], out[2], out[3]


def _from_json(obj: object) -> tuple[tuple[float, float, float, float], str] | None:
    """Box from a decoded JSON value, or None if the value has no box shape."""
    if isinstance(obj, list):
        if len(obj) == 4 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in obj):
            return _to_box(obj), "json-list"
        if len(obj) == 1 and isinstance(obj[0], list):
            return _from_json(obj[0])
        for item in obj:
            if isinstance(item, dict) and "bbox_2d" in item:
                return _to_box(item["bbox_2d"]), "bbox_2d"
        return None
    if isinstance(obj, dict) and "bbox_2d" in obj:
        return _to_box(obj["bbox_2d"]), "bbox_2d"
    return None


def _reject_constant(name: str) -> float:
    raise _NoBox("non-finite coordinate")


def _search(candidate: str) -> tuple[tuple[float, float, float, float], str]:
    text = candidate.strip()
    fences = _FENCE_RE.findall(text)
    if fences:
        text = fences[-1].strip()
    if text[:1] == "[" and _EMPTY_LIST_RE.fullmatch(text):
        raise _Absent()
    if text[:1] in ("[", "{"):
        try:
            found = _from_json(json.loads(text, parse_constant=_reject_constant))
        except _NoBox:
            raise
        except Exception:  # invalid JSON, recursion depth, ... -> try the text forms
            found = None
        if found is not None:
            return found
    for regex, source in ((_BBOX2D_RE, "bbox_2d"), (_LIST_RE, "list"), (_POINTS_RE, "points")):
        last = None
        for last in regex.finditer(text):
            pass
        if last is not None:
            return _to_box(list(last.groups())), source
    raise _NoBox("no box found")


def parse_reply(reply: object) -> ParsedReply:
    """Parse ``reply`` (any object; only strings can succeed) into a box in the model-input frame.
    Never raises."""
    if not isinstance(reply, str):
        return ParsedReply(None, "reply is not a string")
    try:
        think_ok = strict_think_format(reply)
        if not reply.strip():
            return ParsedReply(None, "empty reply", think_format_ok=think_ok)
        answers = _ANSWER_RE.findall(reply)
        answer_tag = bool(answers)
        answer_text = answers[-1] if answers else None
        if answers:
            candidate = answers[-1]
        elif "<answer>" in reply:
            candidate = reply.rsplit("<answer>", 1)[1]
        elif "</think>" in reply:
            candidate = reply.rsplit("</think>", 1)[1]
        else:
            candidate = reply
        try:
            raw, source = _search(candidate)
        except _NoBox as exc:
            return ParsedReply(
                None, str(exc), answer_tag=answer_tag, think_format_ok=think_ok, answer_text=answer_text
            )
        except _Absent:
            return ParsedReply(
                None, ABSENT_REASON, source="absent", answer_tag=answer_tag, think_format_ok=think_ok,
                answer_text=answer_text, visible=False,
            )
        box, swapped = normalize_xyxy(raw)
        return ParsedReply(box, "ok", swapped, source, answer_tag, think_ok, answer_text)
    except Exception as exc:  # last line of defence: the reward runs inside Ray actors
        return ParsedReply(None, f"parser error: {type(exc).__name__}")
