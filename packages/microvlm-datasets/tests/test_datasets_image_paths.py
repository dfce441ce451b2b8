"""An image path from an annotation file (``../``, an absolute path) that leaves the dataset's
image folder is a bad record: refused before anything is opened, and counted. Links the user
put in the folder are followed."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

Build = Callable[..., Any]
REASON = "image path leaves the dataset root"


@pytest.fixture
def secret(tmp_path: Path, write_jpeg) -> Path:
    """An image outside every dataset folder: what a hostile annotation points at."""
    return write_jpeg(tmp_path / "private" / "secret.jpg")


def _escapes(secret: Path, depth: int) -> list[str]:
    """``file_name`` values that reach ``secret`` from a folder ``depth`` below its parent's parent."""
    return ["../" * depth + "private/secret.jpg", str(secret), "./" + "../" * depth + "private/secret.jpg"]


@pytest.mark.parametrize("way", range(3))
def test_coco_file_name_out_of_the_image_folder_is_refused(
    tmp_path: Path, secret: Path, build: Build, write_json, write_jpeg, formats: Any, way: int
) -> None:
    root = tmp_path / "coco"
    data = copy.deepcopy(formats.captions.COCO_2017)
    data["images"][1]["file_name"] = _escapes(secret, 2)[way]  # val2017/ -> coco/ -> tmp_path
    write_json(root / "annotations" / "captions_val2017.json", data)
    write_jpeg(root / "val2017" / "000000397133.jpg")
    builder = build("coco_caption", root=root, split="val")
    assert [s.id for s in builder] == ["397133"]
    assert builder.skipped == {REASON: 1}
    assert "captions_val2017.json: images[1].file_name" in builder.skipped_examples[REASON][0]


def test_links_in_the_users_folder_are_followed(
    tmp_path: Path, secret: Path, build: Build, write_json, formats: Any
) -> None:
    """The folder layout is the user's own (a link to another disk is common); only the
    annotation's text is untrusted, and it stays inside the folder."""
    root = tmp_path / "coco"
    (root / "val2017").mkdir(parents=True)
    os.symlink(secret, root / "val2017" / "000000037777.jpg")  # a file link
    os.symlink(secret.parent, root / "val2017" / "elsewhere")  # a folder link
    data = copy.deepcopy(formats.captions.COCO_2017)
    data["images"][2]["file_name"] = "elsewhere/secret.jpg"
    data["annotations"].append({"image_id": 139, "id": 1, "caption": "A kitchen."})
    write_json(root / "annotations" / "captions_val2017.json", data)
    builder = build("coco_caption", root=root, split="val")
    assert [s.id for s in builder] == ["397133", "37777", "139"] and not builder.skipped


def test_a_linked_image_root_and_links_inside_it_are_fine(
    tmp_path: Path, build: Build, write_json, write_jpeg, formats: Any
) -> None:
    """The folder itself may be a link (images on another disk)."""
    real = tmp_path / "disk" / "coco"
    write_jpeg(real / "val2017" / "000000397133.jpg")
    os.symlink(real / "val2017" / "000000397133.jpg", real / "val2017" / "000000037777.jpg")
    os.symlink(real, tmp_path / "coco")
    write_json(tmp_path / "coco" / "annotations" / "captions_val2017.json", formats.captions.COCO_2017)
    builder = build("coco_caption", root=tmp_path / "coco", split="val")
    samples = list(builder)
    assert [s.id for s in samples] == ["397133", "37777"] and not builder.skipped
    assert samples[1].image.open().size == (8, 6)
    (tmp_path / "other").mkdir()  # the split's own folder a link, as when train2017/ is on another disk
    write_json(tmp_path / "other" / "annotations" / "captions_val2017.json", formats.captions.COCO_2017)
    os.symlink(real / "val2017", tmp_path / "other" / "val2017")
    builder = build("coco_caption", root=tmp_path / "other", split="val")
    assert len(builder) == 2 and not builder.skipped


def test_karpathy_filepath_out_of_the_image_root_is_refused(
    tmp_path: Path, secret: Path, build: Build, write_json, write_jpeg, formats: Any
) -> None:
    root = tmp_path / "coco"
    data = copy.deepcopy(formats.captions.KARPATHY_COCO)
    data["images"][0]["filepath"] = "../../private"
    write_json(root / "dataset_coco.json", data)
    write_jpeg(root / "val2014" / "COCO_val2014_000000391895.jpg")
    builder = build("coco_caption", root=root, split="test", format="karpathy")
    assert list(builder) == [] and builder.skipped == {REASON: 1}


@pytest.mark.parametrize("way", range(2))
def test_flickr30k_filename_out_of_the_image_folder_is_refused(
    tmp_path: Path, secret: Path, build: Build, write_json, formats: Any, way: int
) -> None:
    root = tmp_path / "flickr30k"
    data = copy.deepcopy(formats.captions.KARPATHY_FLICKR)
    data["images"][0]["filename"] = _escapes(secret, 2)[way]
    write_json(root / "dataset_flickr30k.json", data)
    (root / "flickr30k-images").mkdir()
    builder = build("flickr30k", root=root, split="train")
    assert list(builder) == [] and builder.skipped == {REASON: 1}


def test_flickr30k_kaggle_image_name_out_of_the_image_folder_is_refused(
    tmp_path: Path, secret: Path, build: Build, formats: Any
) -> None:
    folder = tmp_path / "flickr30k_images"
    (folder / "flickr30k_images").mkdir(parents=True)
    csv = formats.captions.KAGGLE_CSV + f"{secret}| 0| A secret .\n"
    (folder / "results.csv").write_text(csv, encoding="utf-8")
    builder = build("flickr30k", root=tmp_path, format="kaggle_csv", split="all")
    assert len(builder) == 3 and builder.skipped == {REASON: 1}


def test_gqa_image_id_out_of_the_image_folder_is_refused(
    tmp_path: Path, secret: Path, build: Build, write_json, formats: Any
) -> None:
    (good,) = formats.vqa.GQA_TESTDEV.values()
    bad = {**good, "imageId": "../private/secret"}
    write_json(tmp_path / "testdev_balanced_questions.json", {"1": good, "2": bad})
    (tmp_path / "images").mkdir()
    builder = build("gqa", root=tmp_path, split="test")
    assert [s.id for s in builder] == ["1"] and builder.skipped == {REASON: 1}


def test_ocrvqa_book_id_out_of_the_image_folder_is_refused(
    tmp_path: Path, secret: Path, build: Build, write_json, formats: Any
) -> None:
    book = formats.vqa.OCRVQA["1930601716"]
    write_json(tmp_path / "dataset.json", {"1930601716": book, "../private/secret": book})
    (tmp_path / "images").mkdir()
    builder = build("ocrvqa", root=tmp_path, split="train")
    assert len(builder) == 5 and builder.skipped == {REASON: 5}  # each of the book's questions


@pytest.mark.parametrize("way", range(3))
def test_llava_image_out_of_the_image_root_is_refused(
    tmp_path: Path, secret: Path, build: Build, write_json, formats: Any, way: int
) -> None:
    rows = copy.deepcopy(formats.ref_web.LLAVA[:2])
    rows[0]["image"] = _escapes(secret, 2)[way]
    write_json(tmp_path / "llava" / "llava_instruct_150k.json", rows)
    images = tmp_path / "coco" / "train2017"
    images.mkdir(parents=True)
    builder = build("llava_instruct", root=tmp_path / "llava", image_root=images)
    assert [s.id for s in builder] == ["000000052846"] and builder.skipped == {REASON: 1}
    assert "llava_instruct_150k.json: [0].image" in builder.skipped_examples[REASON][0]


@pytest.mark.parametrize(
    ("value", "reason"), [(["a.jpg"], "image path is not a string"), (7, "image path is not a string")]
)
def test_llava_image_of_the_wrong_type_is_a_bad_record(
    tmp_path: Path, build: Build, write_json, formats: Any, value: Any, reason: str
) -> None:
    rows = copy.deepcopy(formats.ref_web.LLAVA[:2])
    rows[0]["image"] = value
    write_json(tmp_path / "llava_instruct_150k.json", rows)
    builder = build("llava_instruct", root=tmp_path, image_root=tmp_path)
    assert [s.id for s in builder] == ["000000052846"] and builder.skipped == {reason: 1}
