"""Caption builders on fixtures written in each dataset's real format: COCO 2017, Karpathy's
COCO and Flickr30k splits, Kaggle's Flickr30k ``results.csv``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from microvlm.errors import MicroVLMError

Build = Callable[..., Any]

COCO_2017 = {
    "info": {"description": "COCO 2017 Dataset", "version": "1.0", "year": 2017},
    "licenses": [
        {
            "url": "http://creativecommons.org/licenses/by-nc-sa/2.0/",
            "id": 1,
            "name": "Attribution-NonCommercial-ShareAlike License",
        }
    ],
    "images": [
        {
            "license": 4,
            "file_name": "000000397133.jpg",
            "coco_url": "http://images.cocodataset.org/val2017/000000397133.jpg",
            "height": 427,
            "width": 640,
            "date_captured": "2013-11-14 17:02:52",
            "flickr_url": "",
            "id": 397133,
        },
        {
            "license": 1,
            "file_name": "000000037777.jpg",
            "coco_url": "",
            "height": 230,
            "width": 352,
            "date_captured": "2013-11-14 20:55:31",
            "flickr_url": "",
            "id": 37777,
        },
        {
            "license": 1,
            "file_name": "000000000139.jpg",
            "coco_url": "",
            "height": 426,
            "width": 640,
            "date_captured": "",
            "flickr_url": "",
            "id": 139,
        },
    ],
    "annotations": [
        {"image_id": 397133, "id": 370509, "caption": "A man is in a kitchen making pizzas."},
        {
            "image_id": 397133,
            "id": 370584,
            "caption": "Man in apron standing on front of oven with pans and bakeware",
        },
        {
            "image_id": 37777,
            "id": 6001,
            "caption": "The dining table near the kitchen has a bowl of fruit on it.",
        },
        {"image_id": 397133, "id": 372252, "caption": " A baker is working in the kitchen rolling dough."},
    ],
}

KARPATHY_COCO = {
    "images": [
        {
            "filepath": "val2014",
            "sentids": [770337, 771687],
            "filename": "COCO_val2014_000000391895.jpg",
            "imgid": 0,
            "split": "test",
            "cocoid": 391895,
            "sentences": [
                {
                    "tokens": ["a", "man", "with", "a", "red", "helmet"],
                    "raw": "A man with a red helmet on a small moped on a dirt road. ",
                    "imgid": 0,
                    "sentid": 770337,
                },
                {
                    "tokens": ["man", "riding", "a", "motor", "bike"],
                    "raw": "Man riding a motor bike on a dirt road on the countryside.",
                    "imgid": 0,
                    "sentid": 771687,
                },
            ],
        },
        {
            "filepath": "train2014",
            "sentids": [1],
            "filename": "COCO_train2014_000000000009.jpg",
            "imgid": 1,
            "split": "train",
            "cocoid": 9,
            "sentences": [
                {
                    "tokens": ["closeup", "of", "bins"],
                    "raw": "Closeup of bins of food that include broccoli and bread.",
                    "imgid": 1,
                    "sentid": 1,
                }
            ],
        },
        {
            "filepath": "val2014",
            "sentids": [2],
            "filename": "COCO_val2014_000000522418.jpg",
            "imgid": 2,
            "split": "restval",
            "cocoid": 522418,
            "sentences": [
                {
                    "tokens": ["a", "woman"],
                    "raw": "A woman wearing a net on her head cutting a cake.",
                    "imgid": 2,
                    "sentid": 2,
                }
            ],
        },
    ],
    "dataset": "coco",
}

KARPATHY_FLICKR = {
    "images": [
        {
            "sentids": [0, 1],
            "imgid": 0,
            "split": "train",
            "filename": "1000092795.jpg",
            "sentences": [
                {
                    "tokens": ["two", "young", "guys"],
                    "raw": "Two young guys with shaggy hair look at their hands while hanging out in the yard.",
                    "imgid": 0,
                    "sentid": 0,
                },
                {
                    "tokens": ["two", "young", "white", "males"],
                    "raw": "Two young, White males are outside near many bushes.",
                    "imgid": 0,
                    "sentid": 1,
                },
            ],
        },
        {
            "sentids": [5],
            "imgid": 1,
            "split": "test",
            "filename": "10002456.jpg",
            "sentences": [
                {
                    "tokens": ["several", "men"],
                    "raw": "Several men in hard hats are operating a giant pulley system.",
                    "imgid": 1,
                    "sentid": 5,
                }
            ],
        },
    ],
    "dataset": "flickr30k",
}

# As in hsankesara/flickr-image-dataset's results.csv: a space after each '|', and one row
# written without its second '|' and with three spaces after the comment number.
KAGGLE_CSV = """image_name| comment_number| comment
1000092795.jpg| 0| Two young guys with shaggy hair look at their hands while hanging out in the yard .
1000092795.jpg| 1| Two young , White males are outside near many bushes .
10002456.jpg| 0| Several men in hard hats are operating a giant pulley system .
2199200615.jpg| 4   A dog runs across the grass .
"""


@pytest.fixture
def coco_root(tmp_path: Path, write_json, write_jpeg) -> Path:
    root = tmp_path / "coco"
    write_json(root / "annotations" / "captions_val2017.json", COCO_2017)
    write_json(root / "annotations" / "dataset_coco.json", KARPATHY_COCO)
    for image in COCO_2017["images"]:
        write_jpeg(root / "val2017" / image["file_name"])
    return root


def test_coco_2017_captions_grouped_per_image(coco_root: Path, build: Build) -> None:
    builder = build("coco_caption", root=coco_root, split="val")
    samples = list(builder)
    assert len(builder) == 2  # image 139 has no captions
    first = samples[0]
    assert first.id == "397133" and first.dataset == "coco_caption"
    assert first.captions == (
        "A man is in a kitchen making pizzas.",
        "Man in apron standing on front of oven with pans and bakeware",
        "A baker is working in the kitchen rolling dough.",
    )
    assert first.image.path == str(coco_root / "val2017" / "000000397133.jpg")
    assert first.image.size == (640, 427)
    assert first.meta["image_id"] == 397133
    assert first.image.open().size == (8, 6)


def test_coco_2017_test_split_points_to_karpathy(coco_root: Path, build: Build) -> None:
    with pytest.raises(MicroVLMError, match="karpathy"):
        build("coco_caption", root=coco_root, split="test")


@pytest.mark.parametrize(("restval", "expected"), [(True, {"9", "522418"}), (False, {"9"})])
def test_karpathy_coco_train_with_and_without_restval(
    coco_root: Path, build: Build, write_jpeg, restval: bool, expected: set
) -> None:
    write_jpeg(coco_root / "train2014" / "COCO_train2014_000000000009.jpg")
    write_jpeg(coco_root / "val2014" / "COCO_val2014_000000522418.jpg")
    builder = build("coco_caption", root=coco_root, split="train", format="karpathy", restval=restval)
    assert {s.id for s in builder} == expected


def test_karpathy_coco_on_2014_images(coco_root: Path, build: Build, write_jpeg) -> None:
    write_jpeg(coco_root / "val2014" / "COCO_val2014_000000391895.jpg")
    (sample,) = list(build("coco_caption", root=coco_root, split="test", format="karpathy"))
    assert sample.captions == (
        "A man with a red helmet on a small moped on a dirt road.",
        "Man riding a motor bike on a dirt road on the countryside.",
    )
    assert sample.image.path == str(coco_root / "val2014" / "COCO_val2014_000000391895.jpg")
    assert Path(sample.image.path).is_file()


def test_karpathy_coco_on_2017_images_found_by_id(coco_root: Path, build: Build, write_jpeg) -> None:
    """Only COCO 2017 on disk: the 2014 name is found by id in train2017/ or val2017/."""
    write_jpeg(coco_root / "train2017" / "000000391895.jpg")
    (sample,) = list(build("coco_caption", root=coco_root, split="test", format="karpathy"))
    assert sample.image.path == str(coco_root / "train2017" / "000000391895.jpg")


def test_flickr30k_karpathy(tmp_path: Path, build: Build, write_json) -> None:
    root = tmp_path / "flickr30k"
    write_json(root / "dataset_flickr30k.json", KARPATHY_FLICKR)
    (root / "flickr30k-images").mkdir()
    (sample,) = list(build("flickr30k", root=root, split="train"))
    assert sample.id == "1000092795" and len(sample.captions) == 2
    assert sample.image.path == str(root / "flickr30k-images" / "1000092795.jpg")
    assert [s.id for s in build("flickr30k", root=root, split="test")] == ["10002456"]


def test_flickr30k_kaggle_csv_including_its_broken_row(tmp_path: Path, build: Build) -> None:
    folder = tmp_path / "flickr30k" / "flickr30k_images"
    (folder / "flickr30k_images").mkdir(parents=True)
    (folder / "results.csv").write_text(KAGGLE_CSV, encoding="utf-8")
    samples = {
        s.id: s for s in build("flickr30k", root=tmp_path / "flickr30k", format="kaggle_csv", split="all")
    }
    assert set(samples) == {"1000092795", "10002456", "2199200615"}
    assert samples["1000092795"].captions[1] == "Two young , White males are outside near many bushes ."
    assert samples["2199200615"].captions == ("A dog runs across the grass .",)
    assert samples["10002456"].image.path == str(folder / "flickr30k_images" / "10002456.jpg")


def test_flickr30k_kaggle_csv_has_no_train_split(tmp_path: Path, build: Build) -> None:
    (tmp_path / "results.csv").write_text(KAGGLE_CSV, encoding="utf-8")
    with pytest.raises(MicroVLMError, match='split = "all"'):
        build("flickr30k", root=tmp_path, format="kaggle_csv", split="train")
