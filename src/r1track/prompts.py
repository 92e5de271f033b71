"""The one registry of prompt texts, and the renderers every consumer uses.

Image order is always: template, (memory), search. By default the images come first, then the text;
the think wrapper, when used, comes before the task text. Think mode has a second layout,
``instruction-first`` (:class:`ThinkLayout`): R1-Track's think GRPO run
(``EasyR1/examples/qwen2_5_vl_3b_track5k_grpo_w_think.sh`` of Wangbiao2/R1-Track) set the think
instruction as EasyR1's ``data.system_prompt``, which its fork of ``verl/utils/dataset.py`` joined to the
row's prompt (``"<image> <image>"`` + task, written by ``generation_data/gen_huggingface_data.py``) with a
space, so its published think checkpoint saw: instruction, space, image, space, image, task. Boxes in
prompts and answers are ``[x1,y1,x2,y2]`` integers in the model family's answer coordinates
(:mod:`r1track.models`): model-input pixels for Qwen2.5-VL (the crop frame for crops that are multiples of
28), the 0-1000 grid of the model-input image for Qwen3-VL and Qwen3.5. The renderers take boxes already in
those coordinates (``ModelFamily.encode_xyxy``) and only round them; the ``boxes_xyxy_model`` parameters keep
their name for that reason.

Consumers:

* LLaMA-Factory (ShareGPT) and EasyR1/verl: :func:`render_text` -> one ``<image>`` placeholder per
  image, in order, at the start, then the text.
* OpenAI chat API (vLLM): :func:`render_chat_content` -> image parts in order, then one text part.
* Answers (SFT targets, reward ground truth): :func:`render_answer`; the absent answer :data:`ABSENT_ANSWER`
  (:func:`render_target_answer` picks one).

The absent answer
-----------------
Prompt versions with ``absent=True`` (``r1track-vis-v1``) tell the model the target may be occluded or out of
view and ask for :data:`ABSENT_ANSWER`, ``[]``, then. Why ``[]``: it is the empty case of both answer styles
the families already use -- the bare list ``[x1,y1,x2,y2]`` r1track trains, and Qwen's native grounding
answer, a JSON list of ``{"bbox_2d": ...}`` objects, where "no object found" is the empty list -- so it is
valid JSON, two tokens, the same in pixel and 0-1000-grid families (one prompt text serves all three families,
as ``r1track-v1`` does), and it cannot be mistaken for a box by any reader: :func:`r1track.parse.parse_reply`
reads it as ``visible=False``. Words ("absent", "none") would need a second grammar in the structured-output
regex and in the reward's format check; a sentinel box such as ``[0,0,0,0]`` would be a (degenerate) box.
* EasyR1 ``data.format_prompt`` templates: :func:`easyr1_format_prompt` (the text of
  ``plugins/easyr1/format_prompt/*.jinja``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import Enum
from typing import Sequence

__all__ = [
    "IMAGE_PLACEHOLDER",
    "THINK_WRAPPER",
    "THINK_SEPARATOR",
    "ThinkLayout",
    "THINK_LAYOUTS",
    "DEFAULT_THINK_LAYOUT",
    "check_think_layout",
    "PromptVersion",
    "PROMPTS",
    "DEFAULT_VERSION",
    "get_prompt",
    "format_box",
    "render_task",
    "render_text",
    "render_chat_content",
    "render_answer",
    "ABSENT_ANSWER",
    "render_target_answer",
    "render_grounding_prompt",
    "render_grounding_content",
    "answer_regex",
    "box_or_absent_regex",
    "example_boxes",
    "easyr1_format_prompt",
]

IMAGE_PLACEHOLDER = "<image>"

ABSENT_ANSWER = "[]"
"""The answer meaning "the target is not visible in the search image" (see the module docstring)."""

THINK_WRAPPER = (
    "You FIRST think about the reasoning process as an internal monologue and then provide the final answer. \n"
    " The reasoning process MUST BE enclosed within <think> </think> tags. The final answer MUST BE put in "
    "<answer> </answer> tags."
)
"""R1-Track's think instruction, verbatim."""

THINK_SEPARATOR = " \n "
"""Between the think wrapper and the task text (as in R1-Track's published prompt)."""



class ThinkLayout(str, Enum):
    """Where the think instruction goes relative to the images (think mode only; no-think text is the same)."""

    IMAGES_FIRST = "images-first"
    """r1track's layout: the images, then the think instruction, :data:`THINK_SEPARATOR`, the task."""
    INSTRUCTION_FIRST = "instruction-first"
    """R1-Track's think GRPO layout: the instruction, a space, the images separated by spaces, the task."""

    def __str__(self) -> str:
        return self.value


THINK_LAYOUTS = tuple(layout.value for layout in ThinkLayout)
DEFAULT_THINK_LAYOUT = ThinkLayout.IMAGES_FIRST.value


def check_think_layout(layout: str) -> str:
    """``layout`` as a plain string when it is one of :data:`THINK_LAYOUTS`; ValueError listing them otherwise."""
    try:
        return ThinkLayout(str(layout)).value
    except ValueError:
        raise ValueError(f"unknown think layout {layout!r}; known: {', '.join(THINK_LAYOUTS)}") from None


GROUNDING_TEMPLATE = "Locate the {text} in this image and output the bbox coordinates in JSON format."
"""Qwen's native grounding request (Qwen2.5-VL, Qwen3-VL, Qwen3.5); the model answers
``[{"bbox_2d": [x1, y1, x2, y2], "label": ...}]`` in its family's coordinates (model-input pixels for
Qwen2.5-VL, the 0-1000 grid for Qwen3)."""


@dataclass(frozen=True)
class PromptVersion:
    """A named task text. ``template`` holds ``{box0}``, ``{box1}`` ... for the boxes of every image
    but the last (the search image), in image order."""

    name: str
    n_images: int
    template: str
    description: str
    absent: bool = False
    """The text tells the model it may answer :data:`ABSENT_ANSWER`."""

    @property
    def n_boxes(self) -> int:
        return self.n_images - 1


PROMPTS: dict[str, PromptVersion] = {
    p.name: p
    for p in (
        PromptVersion(
            name="r1track-v0",
            n_images=2,
            template=(
                "Please identify the target specified by the bounding box {box0} in the first image and locate it "
                "in the second image. \n Return the coordinates in [x_min,y_min,x_max,y_max] format."
            ),
            description="R1-Track-5k / SFT prompt (reference, verbatim).",
        ),
        PromptVersion(
            name="r1track-v1",
            n_images=2,
            template=(
                "Given two images, you need to:\n"
                "1. Analyze and Identify the target object marked by bounding box {box0} in <image_1>;\n"
                "2. Re-locate this target in <image_2>;\n"
                "3. Return [x_min, y_min, x_max, y_max] coordinates of the target in <image_2>."
            ),
            description="R1-Track-100k prompt (reference, verbatim); used by the published 0503 checkpoints.",
        ),
        PromptVersion(
            name="r1track-mem-v1",
            n_images=3,
            template=(
                "Given three images, you need to:\n"
                "1. Analyze and Identify the target object marked by bounding box {box0} in <image_1>;\n"
                "2. Note how the same target looks in <image_2>, its most recent appearance, at bounding box {box1};\n"
                "3. Re-locate this target in <image_3>;\n"
                "4. Return [x_min, y_min, x_max, y_max] coordinates of the target in <image_3>."
            ),
            description="r1track's own 3-image prompt: template, recent memory frame, search.",
        ),
        PromptVersion(
            name="r1track-vis-v1",
            n_images=2,
            template=(
                "Given two images, you need to:\n"
                "1. Analyze and Identify the target object marked by bounding box {box0} in <image_1>;\n"
                "2. Re-locate this target in <image_2>;\n"
                "3. Return [x_min, y_min, x_max, y_max] coordinates of the target in <image_2>, "
                "or [] if the target is not visible in <image_2> (fully occluded or out of view)."
            ),
            description="r1track's visibility-aware prompt: r1track-v1 plus the absent answer []; for models trained "
                        "with --absent-fraction (every family).",
            absent=True,
        ),
    )
}

DEFAULT_VERSION = "r1track-v1"


def get_prompt(version: str) -> PromptVersion:
    """The registered version; ValueError listing the known ones otherwise."""
    try:
        return PROMPTS[version]
    except KeyError:
        raise ValueError(f"unknown prompt version {version!r}; known: {', '.join(sorted(PROMPTS))}") from None


def format_box(box_xyxy_model: Sequence[float]) -> str:
    """``[x1,y1,x2,y2]`` with each value rounded to the nearest integer (model-frame pixels).
    ValueError on non-finite values or not 4 values."""
    values = list(box_xyxy_model)
    if len(values) != 4:
        raise ValueError(f"a box needs 4 values, got {len(values)}")
    out = []
    for v in values:
        v = float(v)
        if not math.isfinite(v):
            raise ValueError(f"cannot format a non-finite box value: {values!r}")
        out.append(str(int(round(v))))
    return "[" + ",".join(out) + "]"


def render_task(version: str, boxes_xyxy_model: Sequence[Sequence[float]]) -> str:
    """The task text of ``version`` with its boxes filled in (no images, no think wrapper)."""
    p = get_prompt(version)
    if len(boxes_xyxy_model) != p.n_boxes:
        raise ValueError(f"prompt {version!r} takes {p.n_boxes} box(es) (one per image before the search image), got {len(boxes_xyxy_model)}")
    return p.template.format(**{f"box{i}": format_box(b) for i, b in enumerate(boxes_xyxy_model)})


def _text(version: str, think: bool, boxes_xyxy_model: Sequence[Sequence[float]]) -> str:
    task = render_task(version, boxes_xyxy_model)
    return THINK_WRAPPER + THINK_SEPARATOR + task if think else task


def render_text(
    version: str, *, think: bool, boxes_xyxy_model: Sequence[Sequence[float]], placeholder: str = IMAGE_PLACEHOLDER,
    think_layout: str = DEFAULT_THINK_LAYOUT,
) -> str:
    """User text for LLaMA-Factory / EasyR1 / verl: one ``placeholder`` per image, in image order, then
    the (think wrapper and) task text -- or, with ``think`` and ``think_layout="instruction-first"``, the
    think wrapper, a space, the placeholders separated by spaces, then the task text (R1-Track's think
    GRPO layout, see the module docstring)."""
    p = get_prompt(version)
    if think and check_think_layout(think_layout) == ThinkLayout.INSTRUCTION_FIRST:
        return THINK_WRAPPER + " " + " ".join([placeholder] * p.n_images) + render_task(version, boxes_xyxy_model)
    return placeholder * p.n_images + _text(version, think, boxes_xyxy_model)


def render_chat_content(
    version: str, *, think: bool, boxes_xyxy_model: Sequence[Sequence[float]], image_urls: Sequence[str],
    think_layout: str = DEFAULT_THINK_LAYOUT,
) -> list[dict]:
    """OpenAI chat ``content`` list: exactly :func:`render_text` with each ``<image>`` placeholder turned
    into an image part (data or http URL) and the text between them into text parts -- by default the
    images in order, then one text part. Putting the unchanged template first lets vLLM reuse its prefix
    and encoder caches across frames (the instruction-first layout keeps a constant prefix too)."""
    p = get_prompt(version)
    if len(image_urls) != p.n_images:
        raise ValueError(f"prompt {version!r} takes {p.n_images} images, got {len(image_urls)}")
    text = render_text(version, think=think, boxes_xyxy_model=boxes_xyxy_model, think_layout=think_layout)
    segments = text.split(IMAGE_PLACEHOLDER)
    parts: list[dict] = []
    for k, segment in enumerate(segments):
        if segment:
            parts.append({"type": "text", "text": segment})
        if k < len(image_urls):
            parts.append({"type": "image_url", "image_url": {"url": image_urls[k]}})
    return parts


def render_answer(box_xyxy_model: Sequence[float]) -> str:
    """The expected reply for a box: ``[x1,y1,x2,y2]`` integers in the model-input frame."""
    return format_box(box_xyxy_model)


def render_target_answer(box_xyxy_model: Sequence[float] | None) -> str:
    """The expected reply for a search frame: :func:`render_answer` of the box, or :data:`ABSENT_ANSWER` when
    ``box_xyxy_model`` is None (the target is not visible)."""
    return ABSENT_ANSWER if box_xyxy_model is None else render_answer(box_xyxy_model)


def render_grounding_prompt(text: str) -> str:
    """Qwen2.5-VL grounding request for text initialisation (one image, answer with ``bbox_2d``).
    Whitespace is collapsed and a leading article is dropped, since the template already says "the"
    ("the red car" and "a red car" both ask to "Locate the red car"). ValueError when nothing is left."""
    words = str(text).split()
    if len(words) > 1 and words[0].lower() in ("the", "a", "an"):
        words = words[1:]
    if not words:
        raise ValueError("grounding text is empty")
    return GROUNDING_TEMPLATE.format(text=" ".join(words))


def render_grounding_content(text: str, image_url: str) -> list[dict]:
    """OpenAI chat ``content`` for text initialisation: the one image, then Qwen's grounding request
    (:func:`render_grounding_prompt`). The model answers ``[{"bbox_2d": [x1, y1, x2, y2], ...}]`` in
    model-input pixels of that image."""
    return [{"type": "image_url", "image_url": {"url": image_url}}, {"type": "text", "text": render_grounding_prompt(text)}]


def answer_regex(max_side: int, *, absent: bool = False) -> str:
    """Regular expression for structured decoding of an answer (vLLM ``structured_outputs: {"regex": ...}``):
    ``[x1,y1,x2,y2]`` with non-negative integers of at most as many digits as ``max_side`` has (336 ->
    ``\\d{1,3}``), no spaces — the form :func:`render_answer` writes. It cannot force x1 < x2 or values
    inside the image, and decoding may emit leading zeros (``[012,...]``): parse with
    :func:`r1track.parse.parse_reply` and check the box. ``absent=True`` also admits :data:`ABSENT_ANSWER`
    (:func:`box_or_absent_regex`)."""
    if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side <= 0:
        raise ValueError(f"max_side must be a positive integer, got {max_side!r}")
    d = rf"\d{{1,{len(str(max_side))}}}"
    box = rf"\[{d},{d},{d},{d}\]"
    return box_or_absent_regex(box) if absent else box


def box_or_absent_regex(box_regex: str) -> str:
    """``box_regex`` or the absent answer ``[]``: ``(?:\\[\\]|<box_regex>)``."""
    return rf"(?:\[\]|{box_regex})"


def example_boxes(version: str) -> list[tuple[int, int, int, int]]:
    """Plausible boxes for showing a version (a 336-px crop with the target in the middle)."""
    return [(124, 130, 212, 206), (118, 126, 206, 204)][: get_prompt(version).n_boxes]


EASYR1_MAX_IMAGES = 16
"""How many leading ``<image>`` placeholders the think template moves in front of the think instruction."""


def easyr1_format_prompt(think: bool, think_layout: str = DEFAULT_THINK_LAYOUT) -> str:
    """Text of r1track's EasyR1 format-prompt template (``data.format_prompt=<file>.jinja``).

    EasyR1 renders ``jinja2.Template(text.strip()).render(content=problem)``, where ``problem`` is the dataset's
    prompt column as the data builder writes it: :func:`render_text` with ``think=False`` (the ``<image>``
    placeholders first, then the task text). It splits the result on ``<image>`` afterwards, so the template
    decides where the images go.

    * ``think=False``: ``{{ content }}`` -- the text unchanged.
    * ``think=True``: the leading placeholders (up to :data:`EASYR1_MAX_IMAGES`), then :data:`THINK_WRAPPER`
      and :data:`THINK_SEPARATOR`, then the task text -- exactly ``render_text(version, think=True, ...)`` for
      every registered version. Text that already carries the think instruction is left unchanged.
    * ``think=True, think_layout="instruction-first"``: the think instruction, a space, the leading
      placeholders separated by spaces, the task text -- ``render_text(version, think=True,
      think_layout="instruction-first", ...)``, R1-Track's think GRPO layout.
    """
    layout = check_think_layout(think_layout)
    header = (
        "{#- r1track EasyR1 format prompt (%s). Generated by r1track.prompts.easyr1_format_prompt(think=%s);"
        " a test keeps this file identical to it. content = the dataset's problem text, render_text(version,"
        " think=False): <image> placeholders first, then the task. -#}\n"
    )
    if not think:
        return header % ("no-think", "False") + "{{ content }}\n"
    first = layout == ThinkLayout.INSTRUCTION_FIRST
    instruction = THINK_WRAPPER + (" " if first else THINK_SEPARATOR)
    literal = json.dumps(instruction)  # a double-quoted jinja string literal; jinja decodes the \n escapes
    if any(tok in instruction for tok in ("{{", "{%", "{#")):  # pragma: no cover - guards future edits
        raise ValueError("the think instruction contains jinja syntax")
    if first:  # the instruction, a space, the images separated by spaces, the task
        header = header.replace("think=%s", "think=%s, think_layout='instruction-first'")
        joiner, output = "(\" \" if ns.images else \"\") ~ ", "{{ " + literal + " ~ ns.images ~ ns.task }}\n"
        kept = "{%- if content.startswith(" + literal + ") -%}\n"
    else:  # the images, the instruction, the task
        joiner, output = "", "{{ ns.images ~ " + literal + " ~ ns.task }}\n"
        kept = "{%- if ns.task.startswith(" + literal + ") -%}\n"
    return header % ("think, instruction first" if first else "think", "True") + (
        "{%- set ns = namespace(images=\"\", task=content) -%}\n"
        "{%- for _ in range(" + str(EASYR1_MAX_IMAGES) + ") -%}\n"
        "{%- if ns.task.startswith(\"" + IMAGE_PLACEHOLDER + "\") -%}\n"
        "{%- set ns.images = ns.images ~ " + joiner + "\"" + IMAGE_PLACEHOLDER + "\" -%}\n"
        "{%- set ns.task = ns.task[" + str(len(IMAGE_PLACEHOLDER)) + ":] -%}\n"
        "{%- endif -%}\n"
        "{%- endfor -%}\n"
        + kept +
        "{{ content }}\n"
        "{%- else -%}\n"
        + output +
        "{%- endif -%}\n"
    )
