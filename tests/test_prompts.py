import pytest

from r1track.prompts import (
    PROMPTS,
    THINK_WRAPPER,
    get_prompt,
    render_answer,
    render_chat_content,
    render_grounding_prompt,
    render_task,
    render_text,
)

# Texts as given in the R1-Track README / the foundation issue, typed here independently.
V0 = (
    "Please identify the target specified by the bounding box [241,66,329,154] in the first image and locate it "
    "in the second image. \n Return the coordinates in [x_min,y_min,x_max,y_max] format."
)
V1 = (
    "Given two images, you need to:\n1. Analyze and Identify the target object marked by bounding box "
    "[241,66,329,154] in <image_1>;\n2. Re-locate this target in <image_2>;\n3. Return [x_min, y_min, x_max, "
    "y_max] coordinates of the target in <image_2>."
)
THINK = (
    "You FIRST think about the reasoning process as an internal monologue and then provide the final answer. \n "
    "The reasoning process MUST BE enclosed within <think> </think> tags. The final answer MUST BE put in "
    "<answer> </answer> tags."
)
BOX = (241, 66, 329, 154)


def test_reference_texts_verbatim():
    assert render_task("r1track-v0", [BOX]) == V0
    assert render_task("r1track-v1", [BOX]) == V1
    assert THINK_WRAPPER == THINK


@pytest.mark.parametrize("version", sorted(PROMPTS))
@pytest.mark.parametrize("think", [False, True])
def test_placeholder_text_has_one_image_marker_per_image_first(version, think):
    p = get_prompt(version)
    boxes = [BOX] * p.n_boxes
    text = render_text(version, think=think, boxes_xyxy_model=boxes)
    assert text.count("<image>") == p.n_images
    assert text.startswith("<image>" * p.n_images)
    body = text[len("<image>") * p.n_images :]
    task = render_task(version, boxes)
    if think:
        assert body.startswith(THINK) and body.endswith(task)
        assert body.index(THINK) < body.index(task)
    else:
        assert body == task


@pytest.mark.parametrize("version", sorted(PROMPTS))
def test_chat_content_images_in_order_then_text(version):
    p = get_prompt(version)
    urls = [f"data:image/jpeg;base64,IMG{i}" for i in range(p.n_images)]
    content = render_chat_content(version, think=True, boxes_xyxy_model=[BOX] * p.n_boxes, image_urls=urls)
    assert [c["type"] for c in content] == ["image_url"] * p.n_images + ["text"]
    assert [c["image_url"]["url"] for c in content[:-1]] == urls
    assert "<image>" not in content[-1]["text"]
    assert content[-1]["text"] == render_text(version, think=True, boxes_xyxy_model=[BOX] * p.n_boxes).replace("<image>", "")


def test_three_image_prompt_mentions_both_boxes():
    text = render_task("r1track-mem-v1", [(1, 2, 3, 4), (5, 6, 7, 8)])
    assert "[1,2,3,4]" in text and "[5,6,7,8]" in text and "<image_3>" in text


def test_answer_rounds_to_integers():
    assert render_answer((10.4, 20.5, 30.6, 40.0)) == "[10,20,31,40]"
    assert render_answer((0, 0, 336, 336)) == "[0,0,336,336]"


def test_wrong_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="known"):
        get_prompt("nope")
    with pytest.raises(ValueError, match="1 box"):
        render_task("r1track-v1", [BOX, BOX])
    with pytest.raises(ValueError, match="3 images"):
        render_chat_content("r1track-mem-v1", think=False, boxes_xyxy_model=[BOX, BOX], image_urls=["a", "b"])
    with pytest.raises(ValueError, match="non-finite"):
        render_answer((0, 0, float("nan"), 1))


def test_grounding_prompt():
    text = render_grounding_prompt("  red   car ")
    assert "red car" in text and "JSON" in text
    with pytest.raises(ValueError):
        render_grounding_prompt("   ")


@pytest.mark.parametrize("text", ["the red car", "The red car", "a red car", "An  red car", "red car"])
def test_grounding_prompt_says_the_once(text):
    prompt = render_grounding_prompt(text)
    assert prompt.startswith("Locate the red car in this image")



def test_answer_regex_matches_rendered_answers_only():
    import re

    from r1track.prompts import answer_regex

    rx = answer_regex(336)
    assert rx == r"\[\d{1,3},\d{1,3},\d{1,3},\d{1,3}\]"
    assert re.fullmatch(rx, render_answer((0, 7, 335.4, 120)))  # "[0,7,335,120]"
    assert re.fullmatch(rx, "[012,444,444,444]")  # leading zeros happen under constrained decoding
    for bad in ("[1,2,3]", "[1, 2, 3, 4]", "[1000,1,2,3]", "[-1,2,3,4]", "[1.5,2,3,4]"):
        assert not re.fullmatch(rx, bad)
    assert re.fullmatch(answer_regex(1008), "[1000,1,2,3]")
    with pytest.raises(ValueError):
        answer_regex(0)


def test_grounding_content_is_image_then_qwen_prompt():
    from r1track.prompts import render_grounding_content

    parts = render_grounding_content("  red   car ", "data:image/jpeg;base64,AAA")
    assert parts == [
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAA"}},
        {"type": "text", "text": "Locate the red car in this image and output the bbox coordinates in JSON format."},
    ]
    with pytest.raises(ValueError, match="empty"):
        render_grounding_content("  ", "u")


@pytest.mark.parametrize("version", sorted(PROMPTS))
@pytest.mark.parametrize("think", [False, True])
@pytest.mark.parametrize("layout", ["images-first", "instruction-first"])
def test_chat_content_is_the_placeholder_text_with_images(version, think, layout):
    from r1track.prompts import render_chat_content, render_text

    boxes = [(1, 2, 30, 40)] * PROMPTS[version].n_boxes
    urls = [f"u{i}" for i in range(PROMPTS[version].n_images)]
    parts = render_chat_content(version, think=think, boxes_xyxy_model=boxes, image_urls=urls, think_layout=layout)
    rebuilt = "".join(p["text"] if p["type"] == "text" else "<image>" for p in parts)
    assert rebuilt == render_text(version, think=think, boxes_xyxy_model=boxes, think_layout=layout)
    assert [p["image_url"]["url"] for p in parts if p["type"] == "image_url"] == urls


def test_instruction_first_is_the_reference_think_grpo_layout():
    from r1track.prompts import THINK_WRAPPER, render_task, render_text

    boxes = [(1, 2, 30, 40)]
    # R1-Track's fork joined data.system_prompt and the row's "<image> <image>" + task with one space
    want = THINK_WRAPPER + " " + "<image> <image>" + render_task("r1track-v1", boxes)
    assert render_text("r1track-v1", think=True, boxes_xyxy_model=boxes, think_layout="instruction-first") == want
    # no-think text does not depend on the layout; the default layout is unchanged
    assert render_text("r1track-v1", think=False, boxes_xyxy_model=boxes, think_layout="instruction-first") == \
        "<image><image>" + render_task("r1track-v1", boxes)
    assert render_text("r1track-v1", think=True, boxes_xyxy_model=boxes).startswith("<image><image>" + THINK_WRAPPER)
    with pytest.raises(ValueError, match="think layout"):
        render_text("r1track-v1", think=True, boxes_xyxy_model=boxes, think_layout="sideways")


def test_tracker_and_profiles_carry_the_think_layout():
    from r1track.data.profiles import get_profile
    from r1track.tracker import TrackerParams

    assert TrackerParams().think_layout == "images-first"
    with pytest.raises(ValueError, match="think layout"):
        TrackerParams(think_layout="x")
    assert get_profile("r1track-5k").think_layout == "instruction-first"
    assert get_profile("r1track").think_layout == "images-first"
