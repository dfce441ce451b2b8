"""A malformed annotation file fails with the file name and the position of the error."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from microvlm.errors import MicroVLMError

Build = Callable[..., Any]


@pytest.fixture
def coco(tmp_path: Path, write_jpeg) -> Path:
    write_jpeg(tmp_path / "coco" / "train2014" / "COCO_train2014_000000000009.jpg")
    write_jpeg(tmp_path / "coco" / "val2014" / "COCO_val2014_000000000009.jpg")
    return tmp_path / "coco"


def test_json_syntax_error_names_file_line_and_column(tmp_path: Path, coco: Path, build: Build) -> None:
    (tmp_path / "v2_OpenEnded_mscoco_val2014_questions.json").write_text(
        '{"questions": [\n  {"image_id": 9,,}]}'
    )
    (tmp_path / "v2_mscoco_val2014_annotations.json").write_text('{"annotations": []}')
    with pytest.raises(MicroVLMError, match=r"val2014_questions\.json: invalid JSON at line 2, column 18"):
        len(build("vqav2", root=tmp_path, split="val", image_root=coco))


def test_a_field_of_the_wrong_type_names_the_record(
    tmp_path: Path, coco: Path, build: Build, write_json
) -> None:
    questions = {"questions": [{"image_id": 9, "question": "q?", "question_id": 1}]}
    questions["questions"].append({"image_id": "nine", "question": "q?", "question_id": 2})
    answers = [{"question_id": q, "answers": [{"answer": "a"}]} for q in (1, 2)]
    write_json(tmp_path / "v2_OpenEnded_mscoco_val2014_questions.json", questions)
    write_json(tmp_path / "v2_mscoco_val2014_annotations.json", {"annotations": answers})
    with pytest.raises(MicroVLMError, match=r"questions\[1\]\.image_id: expected an integer, got 'nine'"):
        len(build("vqav2", root=tmp_path, split="val", image_root=coco))


def test_a_box_coordinate_that_is_not_a_number_names_the_row(
    tmp_path: Path, coco: Path, build: Build
) -> None:
    row = {
        "ref_id": 1,
        "image_id": 9,
        "bbox": [1, 2, "3", 4],
        "sentences": [{"sent": "the dog", "sent_id": 0}],
    }
    (tmp_path / "train.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(
        MicroVLMError, match=r"train\.jsonl: row 1\.bbox\[2\]: expected a number, got str '3'"
    ):
        len(build("refcoco", root=tmp_path, split="train", image_root=coco))


def test_an_unexpected_structure_still_names_the_dataset_and_folder(
    tmp_path: Path, build: Build, write_json, write_jpeg
) -> None:
    write_jpeg(tmp_path / "val2017" / "000000000009.jpg")
    annotations = {"images": [{"id": 9, "file_name": "000000000009.jpg"}], "annotations": []}
    annotations["annotations"].append({"image_id": [9], "id": 1, "caption": "a dog"})  # a list as a key
    write_json(tmp_path / "annotations" / "captions_val2017.json", annotations)
    with pytest.raises(MicroVLMError, match=r"coco_caption: cannot read the annotations under .*TypeError"):
        len(build("coco_caption", root=tmp_path, split="val"))


def test_the_safety_net_names_the_annotation_file(tmp_path: Path, build: Build, write_json) -> None:
    (tmp_path / "val2017").mkdir()
    annotations = {"images": [], "annotations": [{"image_id": {"id": 9}, "id": 1, "caption": "a dog"}]}
    write_json(tmp_path / "annotations" / "captions_val2017.json", annotations)
    with pytest.raises(MicroVLMError, match=r"\(.*annotations/captions_val2017\.json\): TypeError"):
        len(build("coco_caption", root=tmp_path, split="val"))


def test_json_nested_too_deeply_names_the_file(tmp_path: Path, coco: Path, build: Build) -> None:
    (tmp_path / "v2_OpenEnded_mscoco_val2014_questions.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "v2_mscoco_val2014_annotations.json").write_text('{"annotations": []}')
    with pytest.raises(MicroVLMError, match=r"val2014_questions\.json: JSON nested too deeply"):
        len(build("vqav2", root=tmp_path, split="val", image_root=coco))


def test_a_json_line_that_is_not_utf8_names_the_file_and_line(
    tmp_path: Path, coco: Path, build: Build
) -> None:
    (tmp_path / "train.jsonl").write_bytes(b'{"ref_id": 1}\n{"ref_id": "\xff\xfe"}\n')
    with pytest.raises(MicroVLMError, match=r"train\.jsonl: line 2: not UTF-8 text"):
        len(build("refcoco", root=tmp_path, split="train", image_root=coco))


def test_a_csv_that_is_not_utf8_names_the_file(tmp_path: Path, build: Build) -> None:
    (tmp_path / "flickr30k_images").mkdir()
    (tmp_path / "results.csv").write_bytes("image_name| comment_number| comment\n".encode("utf-16"))
    with pytest.raises(MicroVLMError, match=r"results\.csv: not UTF-8 text"):
        len(build("flickr30k", root=tmp_path, format="kaggle_csv", split="all"))


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_a_box_coordinate_that_is_not_finite_names_the_row(
    tmp_path: Path, coco: Path, build: Build, value: str
) -> None:
    row = '"ref_id": 1, "image_id": 9, "bbox": [1, 2, VALUE, 4], "sentences": [{"sent": "a dog"}]'
    line = "{" + row.replace("VALUE", value) + "}\n"
    (tmp_path / "train.jsonl").write_text(line)
    with pytest.raises(MicroVLMError, match=r"train\.jsonl: row 1\.bbox\[2\]: expected a finite number"):
        len(build("refcoco", root=tmp_path, split="train", image_root=coco))
