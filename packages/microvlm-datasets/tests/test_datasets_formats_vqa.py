"""VQA builders on fixtures in each dataset's real format: VQAv2, OK-VQA, A-OKVQA, GQA, OCR-VQA."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from microvlm.errors import MicroVLMError

Build = Callable[..., Any]


def _answers(*values: str, raw: bool = False) -> list[dict[str, Any]]:
    out = []
    for i, v in enumerate(values):
        answer = {"answer": v, "answer_confidence": "yes" if i % 3 else "maybe", "answer_id": i + 1}
        if raw:
            answer["raw_answer"] = v.capitalize()
        out.append(answer)
    return out


VQA_QUESTIONS = {
    "info": {"description": "This is v2.0 of the VQA dataset."},
    "task_type": "Open-Ended",
    "data_type": "mscoco",
    "license": {
        "url": "http://creativecommons.org/licenses/by/4.0/",
        "name": "Creative Commons Attribution 4.0 International License",
    },
    "data_subtype": "train2014",
    "questions": [
        {
            "image_id": 458752,
            "question": "What is this photo taken looking through?",
            "question_id": 458752000,
        },
        {
            "image_id": 458752,
            "question": "Is this man a professional baseball player?",
            "question_id": 458752002,
        },
    ],
}
VQA_ANNOTATIONS = {
    "info": {},
    "license": {},
    "data_subtype": "train2014",
    "data_type": "mscoco",
    "annotations": [
        {
            "question_type": "is this",
            "multiple_choice_answer": "yes",
            "answers": _answers(*["yes"] * 9, "no"),
            "image_id": 458752,
            "answer_type": "yes/no",
            "question_id": 458752002,
        },
        {
            "question_type": "what is this",
            "multiple_choice_answer": "net",
            "answers": _answers("net", "net", "net", "netting", "net", "net", "mesh", "net", "net", "net"),
            "image_id": 458752,
            "answer_type": "other",
            "question_id": 458752000,
        },
    ],
}


@pytest.fixture
def coco_2014(tmp_path: Path, write_jpeg) -> Path:
    root = tmp_path / "coco"
    write_jpeg(root / "train2014" / "COCO_train2014_000000458752.jpg")
    write_jpeg(root / "val2014" / "COCO_val2014_000000262148.jpg")
    write_jpeg(root / "test2015" / "COCO_test2015_000000262144.jpg")
    return root


def test_vqav2_joins_questions_and_annotations(
    tmp_path: Path, coco_2014: Path, build: Build, write_json
) -> None:
    root = tmp_path / "vqa"
    write_json(root / "v2_OpenEnded_mscoco_train2014_questions.json", VQA_QUESTIONS)
    write_json(root / "v2_mscoco_train2014_annotations.json", VQA_ANNOTATIONS)
    builder = build("vqav2", root=root, split="train", image_root=coco_2014)
    first, second = list(builder)
    assert len(builder) == 2
    assert first.id == "458752000" and first.question == "What is this photo taken looking through?"
    assert first.answers == ("net", "net", "net", "netting", "net", "net", "mesh", "net", "net", "net")
    assert first.answer_type == "other" and first.meta["question_type"] == "what is this"
    assert first.meta["multiple_choice_answer"] == "net"
    assert first.image.path == str(coco_2014 / "train2014" / "COCO_train2014_000000458752.jpg")
    assert second.answer_type == "yes/no" and second.answers.count("yes") == 9


def test_vqav2_test_dev_has_questions_only(tmp_path: Path, coco_2014: Path, build: Build, write_json) -> None:
    root = tmp_path / "vqa"
    questions = {
        **VQA_QUESTIONS,
        "data_subtype": "test-dev2015",
        "questions": [
            {
                "image_id": 262144,
                "question": "Is the ball flying towards the batter?",
                "question_id": 262144000,
            }
        ],
    }
    write_json(root / "v2_OpenEnded_mscoco_test-dev2015_questions.json", questions)
    (sample,) = list(build("vqav2", root=root, split="test", subset="test-dev2015", image_root=coco_2014))
    assert sample.answers == () and sample.answer_type == ""
    assert sample.image.path == str(coco_2014 / "test2015" / "COCO_test2015_000000262144.jpg")


def test_vqav2_question_without_annotation_is_an_error(
    tmp_path: Path, coco_2014: Path, build: Build, write_json
) -> None:
    root = tmp_path / "vqa"
    write_json(root / "v2_OpenEnded_mscoco_train2014_questions.json", VQA_QUESTIONS)
    write_json(
        root / "v2_mscoco_train2014_annotations.json",
        {**VQA_ANNOTATIONS, "annotations": VQA_ANNOTATIONS["annotations"][:1]},
    )
    with pytest.raises(MicroVLMError, match="no annotation for question_id 458752000"):
        len(build("vqav2", root=root, split="train", image_root=coco_2014))


def test_okvqa_file_names_and_no_test_split(
    tmp_path: Path, coco_2014: Path, build: Build, write_json
) -> None:
    root = tmp_path / "okvqa"
    write_json(
        root / "OpenEnded_mscoco_val2014_questions.json",
        {
            "license": {},
            "data_subtype": "val2014",
            "task_type": "Open-Ended",
            "data_type": "mscoco",
            "info": {},
            "questions": [
                {"image_id": 262148, "question": "What sport can you use this for?", "question_id": 2621485}
            ],
        },
    )
    write_json(
        root / "mscoco_val2014_annotations.json",
        {
            "license": {},
            "data_subtype": "val2014",
            "info": {},
            "data_type": "mscoco",
            "annotations": [
                {
                    "image_id": 262148,
                    "answer_type": "other",
                    "question_type": "eight",
                    "question_id": 2621485,
                    "confidence": 3,
                    "answers": _answers(*["race"] * 5, *["motocross"] * 5, raw=True),
                }
            ],
        },
    )
    (sample,) = list(build("okvqa", root=root, split="val", image_root=coco_2014))
    assert sample.dataset == "okvqa" and sample.answers.count("race") == 5
    assert sample.image.path == str(coco_2014 / "val2014" / "COCO_val2014_000000262148.jpg")
    with pytest.raises(MicroVLMError, match='split = "val"'):
        build("okvqa", root=root, split="test", image_root=coco_2014)


AOKVQA_VAL = [
    {
        "split": "val",
        "image_id": 461751,
        "question_id": "22jbM6gDxdaMaunuzgrsBB",
        "question": "What is in the motorcyclist's mouth?",
        "choices": ["toothpick", "food", "popsicle stick", "cigarette"],
        "correct_choice_idx": 3,
        "direct_answers": ["cigarette"] * 9 + ["cigar"],
        "difficult_direct_answer": False,
        "rationales": [
            "He's smoking while riding.",
            "The motorcyclist has a lit cigarette in his mouth.",
            "The man is smoking a cigarette.",
        ],
    },
]
AOKVQA_TEST = [
    {
        "split": "test",
        "image_id": 477,
        "question_id": "2jbkrfeV2vXTjSYB5Gf6a7",
        "question": "What kind of place is this?",
        "choices": ["church", "office", "park", "school"],
        "difficult_direct_answer": False,
    },
]


def test_aokvqa_choices_answers_rationales(tmp_path: Path, build: Build, write_json, write_jpeg) -> None:
    root, coco = tmp_path / "aokvqa", tmp_path / "coco"
    write_json(root / "aokvqa_v1p0_val.json", AOKVQA_VAL)
    write_json(root / "aokvqa_v1p0_test.json", AOKVQA_TEST)
    write_jpeg(coco / "val2017" / "000000461751.jpg")
    (coco / "test2017").mkdir()
    (sample,) = list(build("aokvqa", root=root, split="val", image_root=coco))
    assert sample.id == "22jbM6gDxdaMaunuzgrsBB" and sample.choices[3] == "cigarette"
    assert len(sample.answers) == 10 and sample.meta["correct_choice"] == "cigarette"
    assert len(sample.meta["rationales"]) == 3
    assert sample.image.path == str(coco / "val2017" / "000000461751.jpg")
    (test,) = list(build("aokvqa", root=root, split="test", image_root=coco))
    assert test.answers == () and "correct_choice_idx" not in test.meta and len(test.choices) == 4


def test_aokvqa_bad_choice_index(tmp_path: Path, build: Build, write_json) -> None:
    write_json(tmp_path / "aokvqa_v1p0_val.json", [{**AOKVQA_VAL[0], "correct_choice_idx": 7}])
    (tmp_path / "coco" / "val2017").mkdir(parents=True)
    with pytest.raises(MicroVLMError, match="correct_choice_idx 7"):
        len(build("aokvqa", root=tmp_path, split="val", image_root=tmp_path / "coco"))


GQA_TESTDEV = {
    "201307251": {
        "semantic": [{"operation": "select", "dependencies": [], "argument": "weather"}],
        "entailed": ["201307252"],
        "equivalent": ["201307251"],
        "question": "Is it overcast?",
        "imageId": "n161313",
        "isBalanced": True,
        "groups": {"global": None, "local": "06-weather_overcast"},
        "answer": "no",
        "semanticStr": "select: weather ->verify weather: overcast",
        "annotations": {"answer": {}, "question": {}, "fullAnswer": {}},
        "types": {"detailed": "weatherVerify", "semantic": "global", "structural": "verify"},
        "fullAnswer": "No, it is clear.",
    },
}


def test_gqa_test_reads_testdev_from_the_zip_folder(tmp_path: Path, build: Build, write_json) -> None:
    write_json(tmp_path / "questions1.2" / "testdev_balanced_questions.json", GQA_TESTDEV)
    (tmp_path / "images").mkdir()
    (sample,) = list(build("gqa", root=tmp_path, split="test"))
    assert sample.id == "201307251" and sample.question == "Is it overcast?"
    assert sample.answers == ("no",) and sample.meta["full_answer"] == "No, it is clear."
    assert sample.image.path == str(tmp_path / "images" / "n161313.jpg")


OCRVQA = {
    "1930601716": {
        "imageURL": "http://ecx.images-amazon.com/images/I/51K6oKh3SmL.jpg",
        "questions": [
            "Who wrote this book?",
            "What is the title of this book?",
            "What type of book is this?",
            "Is this a comedy book?",
            "Is this a sci-fi book?",
        ],
        "answers": ["Irwin Chusid", "Songs in the Key of Z", "Humor & Entertainment", "Yes", "No"],
        "title": "Songs in the Key of Z",
        "authorName": "Irwin Chusid",
        "genre": "Humor & Entertainment",
        "split": 1,
    },
    "0060959916": {
        "imageURL": "http://ecx.images-amazon.com/images/I/41XAKYCQ5ML.gif",
        "questions": ["Who is the author of this book?"],
        "answers": ["Bill Bryson"],
        "title": "A Walk in the Woods",
        "authorName": "Bill Bryson",
        "genre": "Travel",
        "split": 3,
    },
}


def test_ocrvqa_one_sample_per_question_by_split_code(tmp_path: Path, build: Build, write_json) -> None:
    write_json(tmp_path / "dataset.json", OCRVQA)
    (tmp_path / "images").mkdir()
    train = list(build("ocrvqa", root=tmp_path, split="train"))
    assert [s.id for s in train] == [f"1930601716_{i}" for i in range(5)]
    assert train[3].question == "Is this a comedy book?" and train[3].answers == ("Yes",)
    assert train[0].image.path == str(tmp_path / "images" / "1930601716.jpg")
    (test,) = list(build("ocrvqa", root=tmp_path, split="test"))
    assert test.image.path.endswith("0060959916.gif") and test.meta["genre"] == "Travel"
    assert list(build("ocrvqa", root=tmp_path, split="val")) == []


def test_ocrvqa_mismatched_questions_and_answers(tmp_path: Path, build: Build, write_json) -> None:
    write_json(tmp_path / "dataset.json", {"1": {**OCRVQA["1930601716"], "answers": ["only one"]}})
    (tmp_path / "images").mkdir()
    with pytest.raises(MicroVLMError, match="5 questions but 1 answers"):
        len(build("ocrvqa", root=tmp_path, split="train"))


def test_image_layout_can_be_forced(
    tmp_path: Path, coco_2014: Path, build: Build, write_json, write_jpeg
) -> None:
    root = tmp_path / "vqa"
    write_json(root / "v2_OpenEnded_mscoco_train2014_questions.json", VQA_QUESTIONS)
    write_json(root / "v2_mscoco_train2014_annotations.json", VQA_ANNOTATIONS)
    write_jpeg(coco_2014 / "val2017" / "000000458752.jpg")  # COCO 2017 puts this train2014 image in val2017
    forced = build("vqav2", root=root, split="train", image_root=coco_2014, image_layout="coco2017")
    assert forced[0].image.path == str(coco_2014 / "val2017" / "000000458752.jpg")
    only_2017 = tmp_path / "coco2017"
    write_jpeg(only_2017 / "val2017" / "000000458752.jpg")
    with pytest.raises(MicroVLMError, match="train2014"):
        build("vqav2", root=root, split="train", image_root=only_2017, image_layout="coco2014")
