"""Box text format, the lenient parser, IoU metrics and the grounding task."""

from __future__ import annotations

import random

import pytest

from microvlm.data import Box, ImageRef, Sample
from microvlm.errors import MicroVLMError
from microvlm_tasks.boxes import COORD_MAX, format_box, image_size, parse_box, to_pixels
from microvlm_tasks.config import GroundingConfig
from microvlm_tasks.grounding import GroundingTask
from microvlm_tasks.metrics.grounding import box_iou, grounding_scores

SIZE = (200, 100)  # (width, height)
BOX = Box(50, 25, 150, 75)  # the middle half of a 200 x 100 image


def test_format_box_normalises_to_0_999() -> None:
    # x: 50/200*999 = 249.75 -> 250, 150/200*999 = 749.25 -> 749; y: 25/100*999 -> 250, 75/100*999 -> 749
    assert format_box(BOX, SIZE) == "[250,250,749,749]"
    assert format_box(Box(0, 0, 200, 100), SIZE) == "[0,0,999,999]"
    assert format_box(Box(-3, 0, 250, 100), SIZE) == "[0,0,999,999]"  # clamped
    with pytest.raises(ValueError, match="positive"):
        format_box(BOX, (0, 10))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[250,250,749,749]", (250, 250, 749, 749)),
        ("  [ 250 , 250 ,749,  749 ] ", (250, 250, 749, 749)),  # extra spaces
        ("250,250,749,749", (250, 250, 749, 749)),  # missing brackets
        ("(250, 250, 749, 749)", (250, 250, 749, 749)),  # parentheses
        ("The box is 250 250 749 749.", (250, 250, 749, 749)),  # words around, spaces between
        ("[749,749,250,250]", (250, 250, 749, 749)),  # swapped corners
        ("[749,250,250,749]", (250, 250, 749, 749)),  # swapped x only
        ("[250.4, 250, 749.6, 749]", (250.4, 250, 749.6, 749)),  # floats kept
        ("[0.25, 0.25, 0.75, 0.75]", (249.75, 249.75, 749.25, 749.25)),  # fractions of the image
        ("[-5, 10, 1200, 500]", (0, 10, 999, 500)),  # clamped to 0..999
        ("x1=250, y1=250, x2=749, y2=749", (250, 250, 749, 749)),  # digits inside names ignored
        ("box 1: [10,20,30,40]", (10, 20, 30, 40)),  # a bracketed group of four wins
        ("(10, 20), (30, 40)", (10, 20, 30, 40)),  # two corner pairs
        ("[10,20,30,40][50,60,70,80]", (10, 20, 30, 40)),  # the first box
        ("[0,0,1,1]", (0, 0, 1, 1)),  # integers are never fractions
    ],
)
def test_parse_box_is_lenient(text: str, expected: tuple[float, ...]) -> None:
    assert parse_box(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "no box here", "[1,2,3]", "left of the dog", "[a,b,c,d]"])
def test_parse_box_unparseable_is_none(text: str) -> None:
    assert parse_box(text) is None


# Answers as chat-tuned VLMs write them (LLaVA, Shikra, Qwen-VL, MiniGPT-v2 styles) in the
# 0..999 grid: the box is often not on the first line, or comes with words and other boxes.
REAL_OUTPUTS = [
    ("Sure!\n[100,200,300,400]", (100, 200, 300, 400)),  # the case
    ("Sure! Here is the bounding box:\n\n[100, 200, 300, 400]", (100, 200, 300, 400)),
    ("The red square is located at [100, 200, 300, 400].", (100, 200, 300, 400)),
    ("[0.100, 0.200, 0.300, 0.400]", (99.9, 199.8, 299.7, 399.6)),  # Shikra / LLaVA fractions
    ("<ref>the dog</ref><box>(100,200),(300,400)</box>", (100, 200, 300, 400)),  # Qwen-VL
    ("<p>the dog</p>{<100><200><300><400>}", (100, 200, 300, 400)),  # MiniGPT-v2 style
    ("There are 2 dogs.\n100, 200, 300, 400", (100, 200, 300, 400)),  # first line with four
    ("x1: 100\ny1: 200\nx2: 300\ny2: 400", (100, 200, 300, 400)),  # one coordinate a line
    ("[100,200,300,400]\nLocate: the cat. Box: [1,2,3,4]", (100, 200, 300, 400)),  # ran on
    ("Two match: [100,200,300,400] and [500,600,700,800].", (100, 200, 300, 400)),  # the first
    ("Step 1: look.\nStep 2: [100,200,300,400]", (100, 200, 300, 400)),  # brackets beat loose
]


@pytest.mark.parametrize(("text", "expected"), REAL_OUTPUTS)
def test_parse_box_reads_the_first_box_anywhere(text: str, expected: tuple[float, ...]) -> None:
    assert parse_box(text) == pytest.approx(expected)


@pytest.mark.parametrize(("text", "expected"), REAL_OUTPUTS)
def test_grounding_task_reads_the_whole_generation(text: str, expected: tuple[float, ...]) -> None:
    task = GroundingTask(GroundingConfig())
    box = task.predicted_box(text, _sample(image=ImageRef(path="img.jpg", size=(999, 999))))
    assert box is not None, text
    assert (box.x1, box.y1, box.x2, box.y2) == pytest.approx(expected)


def test_round_trip_within_one_quantum() -> None:
    back = to_pixels(parse_box(format_box(BOX, SIZE)), SIZE)
    for got, want, extent in zip(
        (back.x1, back.y1, back.x2, back.y2), (50, 25, 150, 75), (200, 100, 200, 100), strict=True
    ):
        assert abs(got - want) <= extent / COORD_MAX


def test_box_iou_hand_computed() -> None:
    a, b = Box(0, 0, 10, 10), Box(5, 5, 15, 15)
    # intersection 5 x 5 = 25; union 100 + 100 - 25 = 175
    assert box_iou(a, b) == pytest.approx(25 / 175)
    assert box_iou(a, a) == pytest.approx(1.0)
    assert box_iou(a, Box(20, 20, 30, 30)) == 0.0
    assert box_iou(Box(1, 1, 1, 1), Box(1, 1, 1, 1)) == 0.0  # empty union


def test_grounding_scores_hand_computed() -> None:
    target = Box(0, 0, 10, 10)
    preds = [Box(0, 0, 10, 10), Box(5, 5, 15, 15), None, Box(0, 0, 10, 5)]  # IoU 1, 1/7, miss, 0.5
    scores = grounding_scores(preds, [target] * 4)
    assert scores["acc@0.5"] == pytest.approx(2 / 4)  # IoU >= 0.5 counts
    assert scores["miou"] == pytest.approx((1 + 1 / 7 + 0 + 0.5) / 4)
    assert scores["miou_parsed"] == pytest.approx((1 + 1 / 7 + 0.5) / 3)
    assert scores["unparseable"] == 1.0
    assert scores["unparseable_rate"] == pytest.approx(0.25)
    assert scores["count"] == 4.0
    assert grounding_scores(preds, [target] * 4, threshold=0.75)["acc@0.75"] == pytest.approx(1 / 4)
    with pytest.raises(ValueError, match="4 predictions for 1"):
        grounding_scores(preds, [target])


def _sample(**kw) -> Sample:
    fields = {
        "id": "r1",
        "image": ImageRef(path="img.jpg", size=SIZE),
        "expression": "the red square",
        "box": BOX,
    }
    return Sample(**{**fields, **kw})


class _Tok:
    eos_token = "</s>"


def test_grounding_example_prompt_and_references() -> None:
    task = GroundingTask(GroundingConfig())
    example = task.example(_sample(), random.Random(0), _Tok())
    assert example.prompt == "Locate: the red square. Box:"
    assert example.target == " [250,250,749,749]</s>"
    assert [s.target for s in example.segments] == [False, True]
    assert task.eval_prompt(_sample()) == "Locate: the red square. Box:"
    assert task.references(_sample()) == ["[250,250,749,749]"]
    assert task.example(_sample(), random.Random(0)).target == " [250,250,749,749]"  # no tokenizer, no eos


def test_grounding_score_and_rows() -> None:
    task = GroundingTask(GroundingConfig())
    samples = [_sample(id="a"), _sample(id="b"), _sample(id="c")]
    preds = [" [250,250,749,749]", "box (0, 0, 499, 999)\nmore text", "somewhere on the left"]
    scores = task.score(preds, samples)
    # a: the same box (IoU ~1). b: pixels (0,0)-(99.9,100) vs (50,25)-(150,75): inter 49.9 x 50,
    # union 99.9*100 + 100*50 - 49.9*50 -> IoU ~0.25, a miss. c: unparseable.
    assert scores["acc@0.5"] == pytest.approx(1 / 3)
    assert scores["unparseable"] == 1.0
    b_iou = (49.9 * 50) / (99.9 * 100 + 100 * 50 - 49.9 * 50)
    assert scores["miou"] == pytest.approx((1 + b_iou) / 3, abs=1e-3)
    rows = task.per_sample(preds, samples)
    assert [r["parsed"] for r in rows] == [True, True, False]
    assert rows[2]["box"] is None and rows[2]["iou"] == 0.0
    assert rows[0]["iou"] == pytest.approx(1.0, abs=1e-2)
    assert rows[1]["prediction"] == "box (0, 0, 499, 999)\nmore text"  # all of it, stripped


def test_size_read_from_the_image_when_absent(tmp_path) -> None:
    from PIL import Image

    path = tmp_path / "wide.png"
    Image.new("RGB", SIZE, "white").save(path)
    sample = _sample(image=ImageRef(path=str(path)))
    assert image_size(sample.image) == SIZE
    assert GroundingTask(GroundingConfig()).references(sample) == ["[250,250,749,749]"]


def test_unreadable_image_without_size_fails_clearly(tmp_path) -> None:
    bad = tmp_path / "not_an_image.jpg"
    bad.write_text("hello")
    with pytest.raises(MicroVLMError, match=r"not_an_image\.jpg"):
        GroundingTask(GroundingConfig()).references(_sample(image=ImageRef(path=str(bad))))


def test_samples_without_expression_or_box_fail_clearly() -> None:
    task = GroundingTask(GroundingConfig())
    with pytest.raises(MicroVLMError, match="no referring expression"):
        task.eval_prompt(_sample(expression=""))
    with pytest.raises(MicroVLMError, match="no box"):
        task.example(_sample(box=None), random.Random(0))


def test_config_templates_are_checked() -> None:
    with pytest.raises(ValueError, match=r"must contain \{expression\}"):
        GroundingConfig(prompt="Find it.")
    with pytest.raises(ValueError, match="unknown placeholder"):
        GroundingConfig(eval_prompt="{expression} {question}")
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        GroundingConfig(iou_threshold=0.0)
