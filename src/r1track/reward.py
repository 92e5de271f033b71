"""The GRPO box reward: one scorer behind every trainer adapter (:mod:`r1track.integrations.easyr1`,
:mod:`r1track.integrations.verl`), speaking no trainer's vocabulary.

In: a reply (decoded model output), the ground-truth box (``"[x1,y1,x2,y2]"`` JSON string as the data
builder writes it, or a list/array of 4 numbers; xyxy in the model family's coordinates, the same as the
reply's: model-input pixels for Qwen2.5-VL, the 0-1000 grid for Qwen3-VL / Qwen3.5 -- IoU and GIoU do not change
under the grid's uniform scaling of a square crop, see docs/model_families.md), the reply's length in tokens
(think mode), and :class:`RewardOptions` (typed: ``think: bool``, a :class:`Shaping`, weights). Out: a dict with
exactly the keys :data:`SCORE_KEYS`, every value a finite float, for every input -- trainers score inside Ray
actors, where one exception ends a multi-GPU run, and log the mean of every key, so a missing key or a NaN
breaks the metrics. Data never raises; bad *options* raise ``ValueError`` naming the option (reading a
trainer's string-typed config into options is the adapters' job).

The score is built from small named terms -- :func:`overlap_term` (the shaping), :func:`format_term`,
:func:`length_term` -- and :func:`failed_gate` (which gate, if any, fails), combined by :func:`score_reply`.

Keys
----
``overall``   the reward (EasyR1 writes it at the last response token; verl calls it ``score``).
``accuracy``  the shaping's overlap term for the box that was read (``failure_score`` when none was read).
``format``    1.0 when the reply has the exact expected form, else 0.0 -- no-think: the whole reply is one
              bare JSON box ``[x1,y1,x2,y2]`` (:func:`r1track.parse.is_bare_box_json`) with ordered corners;
              think: R1-Track's strict ``<think>..</think>..<answer>..</answer>`` form
              (``ParsedReply.think_format_ok``) with a bare JSON box with ordered corners inside ``<answer>``.
``giou``      GIoU of the box read by :func:`r1track.parse.parse_reply` against the ground truth, in [-1, 1];
              -1.0 when no box was read (the worst value).
``iou``       IoU of that box, in [0, 1]; 0.0 when no box was read (so its mean is the rollouts' average overlap).
``length``    think mode: the over-length term ``(start - L) / (max_length - start)`` when L > start, else 0.0;
              always 0.0 in no-think mode or when the token count is unknown.
``parsed``    1.0 when the parser read an answer -- a box (in any form it knows) or the absent answer ``[]`` --,
              else 0.0.

The metric keys describe the reply whatever the gates say: a reply whose box is good but whose format is
wrong shows ``iou`` high, ``format`` 0 and ``overall`` = ``failure_score``.

Gates and the total
-------------------
``overall = failure_score`` (default -1.0) when any gate fails:

1. the ground truth is unreadable or has zero area (logged as a warning: that is a data bug);
2. no box could be read from the reply;
3. ``strict`` (the default) and ``format`` is 0;
4. think mode, the token count is known, and it is below ``min_length`` (default 128).

Gate names (:class:`Gate`): ``ground-truth``, ``visibility``, ``no-box``, ``format``, ``too-short``.

Visibility (absent targets)
---------------------------
A ground truth that is the absent answer ``[]`` (:data:`r1track.prompts.ABSENT_ANSWER`, what the data builder
writes for a search frame whose target is absent or fully covered; an empty list or array reads the same) means
"the target is not visible". :func:`visibility_term` compares it with the reply:

===================  ===========================  ==============================================================
ground truth          reply                        overall
===================  ===========================  ==============================================================
box                   box                          today's score (shaping + format + length), unchanged
box                   ``[]`` (absent)              ``failure_score`` (gate ``visibility``)
``[]``                ``[]``                       ``absent_reward`` (default 1.0) + format + length terms
``[]``                box                          ``failure_score`` (gate ``visibility``)
either                nothing readable             ``failure_score`` (gate ``no-box``)
===================  ===========================  ==============================================================

then the usual gates apply to the absent answer too: ``strict`` wants exactly ``[]`` (no-think: the whole
reply; think: inside the strict ``<think>..</think>..<answer>..</answer>`` form), think mode's minimum length
holds. A correct absent answer reports ``accuracy`` = ``absent_reward`` and ``giou`` = ``iou`` = 1.0 (the
answer agrees with the ground truth exactly), so ``iou`` stays the rollouts' average agreement; every other
visibility mismatch reports ``giou`` -1 and ``iou`` 0. A reply ``[]`` against a visible target scored -1
before this rule as well (no box), so the defaults change nothing for data without absent samples.

Otherwise ``overall = accuracy + format_weight * format + length_weight * length``, with defaults
``format_weight`` 0.05 in think mode and 0.0 in no-think mode, ``length_weight`` 0.1,
``length_penalty_start`` 448 and ``max_length`` 512 -- R1-Track's numbers.

Shapings (the ``accuracy`` term; the gates are the same for all three)
---------------------------------------------------------------------
``r1track`` -- R1-Track's, exactly: ``g`` = GIoU; ``0 < g < 0.4`` -> 0; ``0.75 < g < 0.95`` -> ``g + 0.2``;
    ``g >= 0.95`` -> ``g + 0.5``; otherwise ``g`` (so ``g <= 0`` and ``0.4 <= g <= 0.75`` pass unchanged). Range
    [-1, 1.5]. It has a **dead zone**: every box with ``0 < GIoU < 0.4`` scores the same 0, so between poor
    overlaps -- a box that grazes the target and one that half covers it -- GRPO sees no difference and learns
    nothing; only ``GIoU <= 0`` (no overlap: the distance term still pulls the box closer) and ``GIoU >= 0.4``
    are graded. It also jumps by +0.2 just above 0.75 and by +0.3 more at 0.95 (bonuses for precise boxes).
``giou`` -- continuous GIoU in [-1, 1]: a signal everywhere, including between non-overlapping boxes.
``iou`` -- plain IoU in [0, 1]: no signal at all among boxes that miss the target.

Against R1-Track's reward code (``EasyR1/verl/utils/reward_score/track.py`` and ``track_not_think.py``)
---------------------------------------------------------------------------------------------------
With the defaults (``strict=True``) the ``r1track`` shaping gives the same ``overall`` wherever the reference
computes a finite, meaningful value: a bare JSON box (no-think: the whole reply; think: the ``<answer>``
content after the strict tag check, with its 128-token minimum, the 448..512-token penalty and +0.05 for the
format), any position and size, degenerate (zero-area) predictions included; everything the reference rejects
(any extra text around the box in no-think mode -- it ran ``json.loads`` on the whole reply --, JSON-invalid
spellings such as ``[012,...]``, nested or repeated tags, a short think reply) gets -1 here as well.
Deliberate differences, where the reference is ill-defined or exploitable:

* swapped corners: the reference computes GIoU of negative-area boxes, which is exactly +1 (reward 1.5) for a
  box given as ``[x2,y2,x1,y1]`` -- a reward hack; here a swapped box fails the format gate (-1);
* ``NaN``/``Infinity`` (valid to Python's ``json``) made the reference return NaN; here they are not a box (-1);
* integer literals beyond float range (``[0,0,10,1e400]`` is a float and so NaN/inf above, but ``[0,0,10,10**400]``
  written out in digits stays a Python int): the reference's GIoU is exact integer arithmetic there and gives 0.0;
  here such a value is not a box (-1), and overlaps are computed without overflow;
* think mode, JSON inside ``<answer>`` that is not one box (``null``, ``[]``, ``[[x1,y1,x2,y2]]``, Qwen's native
  ``[{"bbox_2d": [...]}]``): the reference's GIoU raised, its handler scored the overlap -1 but still added the
  format bonus and the length term (-0.95 for a 200-token reply, down to about -1.03 near 512 tokens); here the
  reply fails the format gate and scores -1 (no-think mode: -1 in both);
* an absent ground truth ``[]`` (the reference never had one: its sampler ignores GOT-10k's and LaSOT's
  visibility labels): scored by the visibility rule above;
* arrays longer than four (the reference silently used the first four) and booleans as coordinates: not a box;
* a zero-area ground truth (the reference divided by zero when the prediction was the same point or line):
  the ground truth is invalid, -1 for every reply;
* the reference's ``format``/``giou`` metrics read 0.0 for every rejected reply; here ``format``, ``giou``,
  ``iou`` and ``parsed`` always describe the reply, and the key set is the same in both modes;
* unknown token count (verl does not pass one): the think-mode length gate and penalty are skipped.

``strict=False`` opts into lenient reading: anything :func:`r1track.parse.parse_reply` reads (code fences,
``bbox_2d`` objects, text around the box, tags without the strict form, swapped corners -- normalised) is
scored, and the form only counts through ``format_weight``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any, Iterable

import numpy as np

from .redact import get_logger
from .boxes import BoxXYXY, area_xyxy, giou_xyxy, iou_xyxy, is_finite_box, normalize_xyxy
from .parse import ParsedReply, is_bare_absent_json, is_bare_box_json, parse_reply

__all__ = [
    "Shaping",
    "Gate",
    "SCORE_KEYS",
    "RewardOptions",
    "shape_r1track",
    "read_ground_truth",
    "ground_truth_absent",
    "visibility_term",
    "token_count",
    "overlap_term",
    "format_term",
    "length_term",
    "failed_gate",
    "score_reply",
    "score_replies",
    "failure_scores",
]


class Shaping(str, Enum):
    """The overlap term's shape (see the module docstring)."""

    R1TRACK = "r1track"
    GIOU = "giou"
    IOU = "iou"

    __str__ = str.__str__
    __format__ = str.__format__


class Gate(str, Enum):
    """Why a reply got ``failure_score``."""

    GROUND_TRUTH = "ground-truth"
    VISIBILITY = "visibility"  # a box for an absent target, or the absent answer for a visible one
    NO_BOX = "no-box"
    FORMAT = "format"
    TOO_SHORT = "too-short"

    __str__ = str.__str__
    __format__ = str.__format__


SCORE_KEYS = ("overall", "accuracy", "format", "giou", "iou", "length", "parsed")
"""The keys of every score dict, in this order."""

_BOUND = 1e12  # |value| cap applied after the formulas: keeps sums finite whatever the (finite) weights

logger = get_logger(__name__)
_warned: dict[str, int] = {}
_MAX_WARNINGS = 5


def _warn(kind: str, message: str) -> None:
    n = _warned.get(kind, 0)
    if n < _MAX_WARNINGS:
        _warned[kind] = n + 1
        suffix = " (further such warnings suppressed)" if n + 1 == _MAX_WARNINGS else ""
        logger.warning("r1track reward: %s%s", message, suffix)


def _number(name: str, value: Any, *, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"reward option {name} must be a number, got {value!r}")
    f = float(value)
    if not math.isfinite(f):
        raise ValueError(f"reward option {name} must be finite, got {value!r}")
    if minimum is not None and f < minimum:
        raise ValueError(f"reward option {name} must be >= {minimum}, got {value!r}")
    return f


@dataclass(frozen=True)
class RewardOptions:
    """How replies are scored (see the module docstring for every term). ``None`` fields take the mode's
    default: ``format_weight`` 0.05 (think) / 0.0 (no-think); ``min_length`` 128 (think) / 0 (no-think).
    Lengths are in tokens. Types are checked, not coerced: ``think`` and ``strict`` are bools, ``shaping``
    a :class:`Shaping` (or its value), the rest numbers; anything else raises ``ValueError`` naming the
    option."""

    think: bool = False
    shaping: Shaping = Shaping.R1TRACK
    strict: bool = True
    format_weight: float | None = None
    length_weight: float = 0.1
    min_length: float | None = None
    length_penalty_start: float = 448.0
    max_length: float = 512.0
    failure_score: float = -1.0
    absent_reward: float = 1.0
    """The overlap term of a correct absent answer (ground truth ``[]``, reply ``[]``)."""

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for name in ("think", "strict"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"reward option {name} must be true or false, got {getattr(self, name)!r}")
        try:
            put("shaping", Shaping(self.shaping))
        except ValueError:
            raise ValueError(
                f"reward option shaping must be one of {', '.join(s.value for s in Shaping)}, got {self.shaping!r}"
            ) from None
        think = self.think
        put("format_weight", _number("format_weight", (0.05 if think else 0.0) if self.format_weight is None else self.format_weight))
        put("length_weight", _number("length_weight", self.length_weight))
        put("min_length", _number("min_length", (128.0 if think else 0.0) if self.min_length is None else self.min_length, minimum=0.0))
        put("length_penalty_start", _number("length_penalty_start", self.length_penalty_start, minimum=0.0))
        put("max_length", _number("max_length", self.max_length))
        if self.max_length <= self.length_penalty_start:
            raise ValueError(
                f"reward option max_length ({self.max_length:g}) must be greater than length_penalty_start "
                f"({self.length_penalty_start:g})"
            )
        put("failure_score", _number("failure_score", self.failure_score))
        put("absent_reward", _number("absent_reward", self.absent_reward))


def shape_r1track(giou: float) -> float:
    """R1-Track's GIoU shaping: (0, 0.4) -> 0, (0.75, 0.95) -> +0.2, >= 0.95 -> +0.5, otherwise unchanged.
    A NaN input gives -1.0 (never produced by :func:`r1track.boxes.giou_xyxy`)."""
    g = float(giou)
    if math.isnan(g):
        return -1.0
    if 0.0 < g < 0.4:
        return 0.0
    if 0.75 < g < 0.95:
        return g + 0.2
    if g >= 0.95:
        return g + 0.5
    return g


def read_ground_truth(ground_truth: object) -> BoxXYXY | None:
    """The ground-truth box (xyxy, model-input pixels, corners ordered) or None when it is unreadable,
    non-finite or has zero area. Accepts what the data builders write -- a JSON string ``"[x1,y1,x2,y2]"``
    (any form :func:`r1track.parse.parse_reply` reads), UTF-8 bytes of one -- or a list/tuple/array of 4
    numbers. Never raises."""
    try:
        if isinstance(ground_truth, bytes):
            ground_truth = ground_truth.decode("utf-8", errors="replace")
        if isinstance(ground_truth, str):
            parsed = parse_reply(ground_truth)
            box = parsed.box_xyxy_model
        elif isinstance(ground_truth, (list, tuple, np.ndarray)):
            values = np.asarray(ground_truth, dtype=np.float64).reshape(-1)
            if values.shape != (4,) or not is_finite_box(values):
                return None
            box, _ = normalize_xyxy(values.tolist())
        else:
            return None
        if box is None or area_xyxy(box) <= 0.0:
            return None
        return box
    except Exception:  # a malformed array, an exotic object: not a box
        return None


def ground_truth_absent(ground_truth: object) -> bool:
    """True when the ground truth says the target is not visible: the absent answer ``"[]"`` (string or UTF-8
    bytes, JSON whitespace allowed) or an empty list, tuple or array. Never raises."""
    try:
        if isinstance(ground_truth, bytes):
            ground_truth = ground_truth.decode("utf-8", errors="replace")
        if isinstance(ground_truth, str):
            return is_bare_absent_json(ground_truth)
        if isinstance(ground_truth, (list, tuple, np.ndarray)):
            return np.size(ground_truth) == 0
    except Exception:
        pass
    return False


def token_count(response_length: object) -> float | None:
    """A finite, non-negative token count, or None when missing or not a number."""
    if response_length is None or isinstance(response_length, (bool, str, bytes)):
        return None
    try:
        n = float(response_length)  # ints, floats, numpy and torch scalars
    except Exception:
        return None
    return n if math.isfinite(n) and n >= 0.0 else None


def _bounded(x: float) -> float:
    if math.isnan(x):
        return 0.0
    return min(_BOUND, max(-_BOUND, x))


def failure_scores(options: RewardOptions) -> dict[str, float]:
    """The score dict of a reply that could not be scored at all."""
    return {
        "overall": options.failure_score,
        "accuracy": options.failure_score,
        "format": 0.0,
        "giou": -1.0,
        "iou": 0.0,
        "length": 0.0,
        "parsed": 0.0,
    }


def overlap_term(box: BoxXYXY, gt: BoxXYXY, shaping: Shaping) -> tuple[float, float, float]:
    """(accuracy, giou, iou) of a read box against the ground truth: the shaping applied to the overlap."""
    giou = giou_xyxy(box, gt)
    iou = iou_xyxy(box, gt)
    if shaping is Shaping.R1TRACK:
        return shape_r1track(giou), giou, iou
    return (giou if shaping is Shaping.GIOU else iou), giou, iou


def format_term(reply: object, parsed: ParsedReply, think: bool) -> float:
    """1.0 when the reply has the exact expected form (see the module docstring) -- a bare JSON box with
    ordered corners, or exactly the absent answer ``[]`` -- else 0.0."""
    answer = parsed.answer_text if think else reply
    if think and not parsed.think_format_ok:
        return 0.0
    if parsed.absent:
        return 1.0 if is_bare_absent_json(answer) else 0.0
    well_formed = is_bare_box_json(answer)
    return 1.0 if well_formed and parsed.box_xyxy_model is not None and not parsed.swapped else 0.0


def visibility_term(gt_absent: bool, parsed: ParsedReply, options: RewardOptions) -> tuple[float, float, float] | None:
    """(accuracy, giou, iou) of a reply where visibility decides the score, or None when it does not (a
    visible target and a box: the overlap term scores it). A correct absent answer gets
    ``(absent_reward, 1, 1)``; a box for an absent target, the absent answer for a visible one, or nothing
    readable for an absent target get ``(failure_score, -1, 0)``."""
    if gt_absent and parsed.absent:
        return options.absent_reward, 1.0, 1.0
    if gt_absent or parsed.absent:
        return options.failure_score, -1.0, 0.0
    return None


def length_term(n_tokens: float | None, options: RewardOptions) -> float:
    """The over-length term ``(start - L) / (max_length - start)`` when L > start, else 0.0 (and 0.0 when
    the count is unknown)."""
    if n_tokens is None or n_tokens <= options.length_penalty_start:
        return 0.0
    return (options.length_penalty_start - n_tokens) / (options.max_length - options.length_penalty_start)


def failed_gate(
    gt: BoxXYXY | None, box: BoxXYXY | None, fmt: float, n_tokens: float | None, options: RewardOptions,
    *, gt_absent: bool = False, reply_absent: bool = False,
) -> Gate | None:
    """The first gate the reply fails, or None. ``gt_absent``: the ground truth is the absent answer (then
    ``gt`` is None); ``reply_absent``: the reply is the absent answer (then ``box`` is None)."""
    if gt is None and not gt_absent:
        return Gate.GROUND_TRUTH
    if (gt_absent and box is not None) or (not gt_absent and reply_absent):
        return Gate.VISIBILITY
    if box is None and not reply_absent:
        return Gate.NO_BOX
    if options.strict and fmt == 0.0:
        return Gate.FORMAT
    if n_tokens is not None and n_tokens < options.min_length:
        return Gate.TOO_SHORT
    return None


def _score(reply: object, ground_truth: object, response_length: object, options: RewardOptions) -> dict[str, float]:
    gt_absent = ground_truth_absent(ground_truth)
    gt = None if gt_absent else read_ground_truth(ground_truth)
    parsed = parse_reply(reply)
    box = parsed.box_xyxy_model
    fmt = format_term(reply, parsed, options.think)
    n_tokens = token_count(response_length) if options.think else None
    length = length_term(n_tokens, options)
    by_visibility = visibility_term(gt_absent, parsed, options)
    if by_visibility is not None:
        accuracy, giou, iou = by_visibility
    elif box is not None and gt is not None:
        accuracy, giou, iou = overlap_term(box, gt, options.shaping)
    else:
        accuracy, giou, iou = options.failure_score, -1.0, 0.0
    gate = failed_gate(gt, box, fmt, n_tokens, options, gt_absent=gt_absent, reply_absent=parsed.absent)
    if gate is Gate.GROUND_TRUTH:
        _warn("ground-truth", f"unreadable or zero-area ground truth {str(ground_truth)[:80]!r}: scored as a failure")
    overall = (
        options.failure_score
        if gate is not None
        else accuracy + options.format_weight * fmt + options.length_weight * _bounded(length)
    )
    return {
        "overall": _bounded(overall),
        "accuracy": _bounded(accuracy),
        "format": fmt,
        "giou": giou,
        "iou": iou,
        "length": _bounded(length),
        "parsed": 1.0 if box is not None or parsed.absent else 0.0,
    }


def score_reply(
    reply: object,
    ground_truth: object,
    response_length: object = None,
    options: RewardOptions | None = None,
    **fields: Any,
) -> dict[str, float]:
    """Score one reply. ``ground_truth``: xyxy box in the reply's coordinates (JSON string or 4 numbers).
    ``response_length``: the reply's length in tokens (think mode; None = unknown). Pass
    :class:`RewardOptions` or its fields as keywords (not both). Returns a dict with exactly
    :data:`SCORE_KEYS`, all finite floats. Never raises on data; raises ``ValueError`` on bad options."""
    if options is None:
        options = RewardOptions(**fields)
    elif fields:
        raise ValueError("pass either RewardOptions or their fields as keywords, not both")
    try:
        scores = _score(reply, ground_truth, response_length, options)
        if all(isinstance(v, float) and math.isfinite(v) for v in scores.values()):
            return scores
        _warn("non-finite", f"non-finite score {scores!r} replaced by the failure score")
    except Exception as exc:  # pragma: no cover - last line of defence inside a Ray actor
        _warn("error", f"{type(exc).__name__}: {exc} while scoring; scored as a failure")
    return failure_scores(options)


def score_replies(
    items: Iterable[tuple[object, object, object]], options: RewardOptions
) -> list[dict[str, float]]:
    """Score ``(reply, ground_truth, response_length)`` triples; same order and length."""
    return [score_reply(reply, gt, n, options) for reply, gt, n in items]
