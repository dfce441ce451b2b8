"""Text fields of the wrong type or empty (``42``, ``null``, ``["a", "list"]``, ``""``) are bad
records: left out while loading and counted by reason, never trained on as ``str()`` of them.

Each builder reads rows of its dataset's published format (from ``test_datasets_formats_*.py``)
with one text field replaced; training then sees the count through ``Source.skipped`` and
``run.max_bad_fraction`` stops a run with too many.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import microvlm
from microvlm.data import Example, Segment
from microvlm.data.sources import build_sources
from microvlm.errors import MicroVLMError
from microvlm.recipes.config import ComponentSpec, DataConfig
from microvlm.train.data import BadDataMonitor

Build = Callable[..., Any]

BAD = [42, None, ["a", "list"], {"raw": "x"}, True, 1.5]
EMPTY = ["", "   ", "\n"]
REASON = "caption is not a string"


def _reasons(builder: Any) -> dict[str, int]:
    len(builder)
    return dict(builder.skipped)


def _strings_only(samples: list[Any]) -> None:
    for s in samples:
        assert isinstance(s.question, str) and isinstance(s.expression, str)
        for text in (*s.captions, *s.answers, *s.choices, s.question or "-", s.expression or "-"):
            assert isinstance(text, str) and text.strip(), text
            assert text not in ("42", "None", "['a', 'list']", "True", "1.5"), text


@pytest.fixture
def coco_root(tmp_path: Path, write_jpeg) -> Path:
    root = tmp_path / "coco"
    (root / "val2017").mkdir(parents=True)
    return root


@pytest.mark.parametrize("value", BAD + EMPTY)
def test_coco_caption_of_the_wrong_type_or_empty_is_left_out_and_counted(
    coco_root: Path, build: Build, write_json, formats: Any, value: Any
) -> None:
    data = copy.deepcopy(formats.captions.COCO_2017)
    data["annotations"][1]["caption"] = value  # the second caption of image 397133
    write_json(coco_root / "annotations" / "captions_val2017.json", data)
    builder = build("coco_caption", root=coco_root, split="val")
    samples = list(builder)
    first = samples[0]
    assert first.captions == (
        "A man is in a kitchen making pizzas.",
        "A baker is working in the kitchen rolling dough.",
    )
    reason = "caption is empty" if isinstance(value, str) else REASON
    assert builder.skipped == {reason: 1}
    (where,) = builder.skipped_examples[reason]
    assert "captions_val2017.json: annotations[1]" in where
    _strings_only(samples)


def test_an_image_whose_every_caption_is_bad_is_left_out(
    coco_root: Path, build: Build, write_json, formats: Any
) -> None:
    data = copy.deepcopy(formats.captions.COCO_2017)
    data["annotations"][2]["caption"] = None  # the only caption of image 37777
    write_json(coco_root / "annotations" / "captions_val2017.json", data)
    builder = build("coco_caption", root=coco_root, split="val")
    assert [s.id for s in builder] == ["397133"]
    assert builder.skipped == {REASON: 1}


def test_karpathy_sentence_of_the_wrong_type_is_left_out(
    coco_root: Path, build: Build, write_json, write_jpeg, formats: Any
) -> None:
    data = copy.deepcopy(formats.captions.KARPATHY_COCO)
    data["images"][0]["sentences"][1]["raw"] = ["a", "list"]
    write_json(coco_root / "dataset_coco.json", data)
    write_jpeg(coco_root / "val2014" / "COCO_val2014_000000391895.jpg")
    builder = build("coco_caption", root=coco_root, split="test", format="karpathy")
    (sample,) = list(builder)
    assert sample.captions == ("A man with a red helmet on a small moped on a dirt road.",)
    assert builder.skipped == {REASON: 1}
    assert "dataset_coco.json: images[0].sentences[1].raw" in builder.skipped_examples[REASON][0]


def test_flickr30k_kaggle_empty_comment_is_left_out(tmp_path: Path, build: Build, formats: Any) -> None:
    folder = tmp_path / "flickr30k_images"
    (folder / "flickr30k_images").mkdir(parents=True)
    (folder / "results.csv").write_text(
        formats.captions.KAGGLE_CSV + "10002456.jpg| 1|  \n", encoding="utf-8"
    )
    builder = build("flickr30k", root=tmp_path, format="kaggle_csv", split="all")
    samples = {s.id: s for s in builder}
    assert len(samples["10002456"].captions) == 1
    assert builder.skipped == {"caption is empty": 1}
    assert "results.csv: line 6" in builder.skipped_examples["caption is empty"][0]


@pytest.fixture
def coco_2014(tmp_path: Path, write_jpeg) -> Path:
    root = tmp_path / "coco"
    write_jpeg(root / "train2014" / "COCO_train2014_000000458752.jpg")
    return root


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("question", 42, "question is not a string"),
        ("question", "", "question is empty"),
        ("answer", None, "answer is not a string"),
        ("answer", " ", "answer is empty"),
    ],
)
def test_vqav2_question_or_answer_of_the_wrong_type_leaves_the_question_out(
    tmp_path: Path,
    coco_2014: Path,
    build: Build,
    write_json,
    formats: Any,
    field: str,
    value: Any,
    reason: str,
) -> None:
    questions = copy.deepcopy(formats.vqa.VQA_QUESTIONS)
    annotations = copy.deepcopy(formats.vqa.VQA_ANNOTATIONS)
    if field == "question":
        questions["questions"][0]["question"] = value  # question 458752000
    else:
        annotations["annotations"][1]["answers"][4]["answer"] = value  # an answer of 458752000
    write_json(tmp_path / "vqa" / "v2_OpenEnded_mscoco_train2014_questions.json", questions)
    write_json(tmp_path / "vqa" / "v2_mscoco_train2014_annotations.json", annotations)
    builder = build("vqav2", root=tmp_path / "vqa", split="train", image_root=coco_2014)
    samples = list(builder)
    assert [s.id for s in samples] == ["458752002"]
    assert builder.skipped == {reason: 1}
    _strings_only(samples)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"question": None}, "question is not a string"),
        ({"choices": ["toothpick", 7, "popsicle stick", "cigarette"]}, "choice is not a string"),
        ({"direct_answers": ["cigarette", ""]}, "answer is empty"),
        ({"direct_answers": "cigarette"}, "answers is not a list"),
    ],
)
def test_aokvqa_bad_text_fields_leave_the_question_out(
    tmp_path: Path, build: Build, write_json, formats: Any, change: dict, reason: str
) -> None:
    rows = [
        copy.deepcopy(formats.vqa.AOKVQA_VAL[0]),
        {**formats.vqa.AOKVQA_VAL[0], "question_id": "x", **change},
    ]
    write_json(tmp_path / "aokvqa_v1p0_val.json", rows)
    (tmp_path / "coco" / "val2017").mkdir(parents=True)
    builder = build("aokvqa", root=tmp_path, split="val", image_root=tmp_path / "coco")
    assert [s.id for s in builder] == ["22jbM6gDxdaMaunuzgrsBB"]
    assert builder.skipped == {reason: 1}


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [("question", ["a", "list"], "question is not a string"), ("answer", 3, "answer is not a string")],
)
def test_gqa_bad_text_fields_leave_the_question_out(
    tmp_path: Path, build: Build, write_json, formats: Any, field: str, value: Any, reason: str
) -> None:
    (good,) = formats.vqa.GQA_TESTDEV.values()
    write_json(tmp_path / "testdev_balanced_questions.json", {"1": good, "2": {**good, field: value}})
    (tmp_path / "images").mkdir()
    builder = build("gqa", root=tmp_path, split="test")
    assert [s.id for s in builder] == ["1"]
    assert builder.skipped == {reason: 1}


def test_ocrvqa_bad_question_leaves_that_question_out(
    tmp_path: Path, build: Build, write_json, formats: Any
) -> None:
    book = copy.deepcopy(formats.vqa.OCRVQA["1930601716"])
    book["questions"][1] = None
    book["answers"][3] = ""
    write_json(tmp_path / "dataset.json", {"1930601716": book})
    (tmp_path / "images").mkdir()
    builder = build("ocrvqa", root=tmp_path, split="train")
    assert [s.id for s in builder] == ["1930601716_0", "1930601716_2", "1930601716_4"]
    assert builder.skipped == {"question is not a string": 1, "answer is empty": 1}


@pytest.mark.parametrize(
    ("sentence", "reason"),
    [
        ({"sent": 42, "sent_id": 1}, "expression is not a string"),
        ({"sent": " ", "sent_id": 1}, "expression is empty"),
    ],
)
def test_refcoco_bad_sentence_leaves_that_expression_out(
    tmp_path: Path, build: Build, write_jpeg, formats: Any, sentence: dict, reason: str
) -> None:
    write_jpeg(tmp_path / "coco" / "train2014" / "COCO_train2014_000000581857.jpg")
    row = {**formats.ref_web.REF_ROW, "sentences": [formats.ref_web.SENTENCES[0], sentence]}
    (tmp_path / "train.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    builder = build("refcoco", root=tmp_path, split="train", image_root=tmp_path / "coco")
    assert [s.expression for s in builder] == ["the lady with the blue shirt"]
    assert builder.skipped == {reason: 1}
    assert "train.jsonl: row 1.sentences[1]" in builder.skipped_examples[reason][0]


@pytest.mark.parametrize(
    ("value", "reason"), [(None, "conversation turn is not a string"), ("", "conversation turn is empty")]
)
def test_llava_bad_turn_leaves_the_conversation_out(
    tmp_path: Path, build: Build, write_json, formats: Any, value: Any, reason: str
) -> None:
    rows = copy.deepcopy(formats.ref_web.LLAVA[:2])
    rows[0]["conversations"][3]["value"] = value
    write_json(tmp_path / "llava_instruct_150k.json", rows)
    builder = build("llava_instruct", root=tmp_path, image_root=tmp_path)
    assert [s.id for s in builder] == ["000000052846"]
    assert builder.skipped == {reason: 1}
    assert "[0].conversations[3]" in builder.skipped_examples[reason][0]


def test_llava_user_turn_of_only_the_image_placeholder_is_kept(
    tmp_path: Path, build: Build, write_json, formats: Any
) -> None:
    rows = copy.deepcopy(formats.ref_web.LLAVA[:1])
    rows[0]["conversations"][0]["value"] = "<image>"
    write_json(tmp_path / "llava_instruct_150k.json", rows)
    builder = build("llava_instruct", root=tmp_path, image_root=tmp_path)
    assert len(builder) == 1 and not builder.skipped


def test_web_shard_with_an_empty_caption_is_left_out(
    tmp_path: Path, build: Build, formats: Any, jpeg_bytes
) -> None:
    web = formats.ref_web
    samples = [
        web._web_sample("000000000", "a dog", jpeg_bytes()),
        web._web_sample("000000001", " ", jpeg_bytes()),
    ]
    web.write_shard(tmp_path / "00000.tar", samples)
    builder = build("webdataset", root=tmp_path)
    assert [s.id for s in builder] == ["000000000"]
    assert builder.skipped == {"caption is empty": 1}


# -------------------------------------------------------------------------------------
# Training counts them with the bad images
# -------------------------------------------------------------------------------------


class Caption:
    def example(self, sample: Any, rng: Any, tokenizer: Any = None) -> Example:
        return Example((Segment(rng.choice(sample.captions), target=True),))

    def training_samples(self, samples: Any) -> Any:  # the Task contract: train on them as built
        return samples


class Plugins:
    """The real dataset plugins, a stand-in task (this package does not depend on the tasks)."""

    def __init__(self) -> None:
        self.real = microvlm.load_plugins()

    def build(self, kind: str, name: str, config: Any) -> Any:
        return self.real.build(kind, name, config) if kind == "dataset" else Caption()


def _coco_entry(root: Path, n: int, bad: int) -> DataConfig:
    """COCO 2017 captions of ``n`` images, one caption each; the first ``bad`` are ``42``."""
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 8, "height": 6} for i in range(n)]
    annotations = [{"image_id": i, "id": i, "caption": 42 if i < bad else f"photo {i}"} for i in range(n)]
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "val2017").mkdir(exist_ok=True)
    (root / "annotations" / "captions_val2017.json").write_text(
        json.dumps({"images": images, "annotations": annotations}), encoding="utf-8"
    )
    config = microvlm.load_plugins().get("dataset", "coco_caption").config_cls(root=str(root), split="val")
    return DataConfig(ComponentSpec("coco_caption", config), ComponentSpec("caption", None))


def test_bad_captions_count_against_max_bad_fraction(tmp_path: Path) -> None:
    (source,) = build_sources([_coco_entry(tmp_path, 20, 2)], Plugins(), train=True)
    assert len(source.samples) == 18 and source.skipped == {REASON: 2}
    assert all(s.captions[0].startswith("photo") for s in source.samples)
    BadDataMonitor([source], max_fraction=0.2)  # 2 of 20 captions + 18 images: under the limit
    with pytest.raises(MicroVLMError) as info:
        BadDataMonitor([source], max_fraction=0.01)
    message = str(info.value)
    assert message.startswith(
        "coco_caption/caption: 2 of 38 records could not be read (caption is not a string 2)"
    )
    assert "captions_val2017.json: annotations[0]" in message and "run.max_bad_fraction = 0.01" in message


def test_the_limit_counts_captions_not_images(tmp_path: Path) -> None:
    """COCO has about five captions per image: 5 bad of 100 captions (and 20 images) is about 4 %,
    not 5 of 25 images (20 %): skips and reads are counted in the same unit, annotation records."""
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 8, "height": 6} for i in range(20)]
    annotations = [
        {"image_id": i // 5, "id": i, "caption": 42 if i % 20 == 0 else f"photo {i}"} for i in range(100)
    ]
    (tmp_path / "annotations").mkdir()
    (tmp_path / "val2017").mkdir()
    (tmp_path / "annotations" / "captions_val2017.json").write_text(
        json.dumps({"images": images, "annotations": annotations}), encoding="utf-8"
    )
    config = (
        microvlm.load_plugins().get("dataset", "coco_caption").config_cls(root=str(tmp_path), split="val")
    )
    entry = DataConfig(ComponentSpec("coco_caption", config), ComponentSpec("caption", None))
    (source,) = build_sources([entry], Plugins(), train=True)
    assert len(source.samples) == 20 and source.skipped == {REASON: 5} and source.records == 120
    BadDataMonitor([source], max_fraction=0.05)  # 5 of 120 records: under the limit
    with pytest.raises(MicroVLMError, match="5 of 120 records could not be read"):
        BadDataMonitor([source], max_fraction=0.04)


def test_evaluation_reads_the_same_records(tmp_path: Path) -> None:
    (train,) = build_sources([_coco_entry(tmp_path, 6, 1)], Plugins(), train=True)
    (evaluation,) = build_sources([_coco_entry(tmp_path, 6, 1)], Plugins())
    assert [s.id for s in train.samples] == [s.id for s in evaluation.samples] == ["1", "2", "3", "4", "5"]


def test_a_shard_with_only_bad_captions_has_no_samples(tmp_path: Path, formats: Any, jpeg_bytes) -> None:
    web = formats.ref_web
    web.write_shard(tmp_path / "00000.tar", [web._web_sample("000000000", "", jpeg_bytes())])
    config = microvlm.load_plugins().get("dataset", "webdataset").config_cls(root=str(tmp_path))
    entry = DataConfig(ComponentSpec("webdataset", config), ComponentSpec("caption", None))
    with pytest.raises(MicroVLMError, match=r"yielded no samples \(caption is empty 1 left out"):
        build_sources([entry], Plugins())
