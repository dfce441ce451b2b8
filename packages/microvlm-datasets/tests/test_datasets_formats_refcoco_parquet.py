"""RefCOCO from the hub's parquet files: jxu124's rows, and lmms-lab's form with the image inside.

The lmms-lab files are written with the columns and types of the dataset cards
(https://huggingface.co/datasets/lmms-lab/RefCOCO/blob/main/README.md, RefCOCOplus, RefCOCOg):
``question_id`` string, ``image`` a Hugging Face Image (struct ``bytes``, ``path``), ``question``
string, ``answer`` list of strings, ``segmentation`` and ``bbox`` float32 lists (``bbox`` COCO
``[x, y, w, h]``, as lmms-eval's ``refcoco/utils_rec.py`` reads it), ``iscrowd`` int8,
``file_name`` string; shards ``data/{split}-0000N-of-0000M.parquet``. The values are those of
RefCOCO ref 0 (COCO annotation 1719310), as in ``test_datasets_formats_ref_web.py``.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from microvlm.errors import MicroVLMError

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

Build = Callable[..., Any]

LMMS_SCHEMA = pa.schema(
    [
        ("question_id", pa.string()),
        ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ("question", pa.string()),
        ("answer", pa.list_(pa.string())),
        ("segmentation", pa.list_(pa.float32())),
        ("bbox", pa.list_(pa.float32())),
        ("iscrowd", pa.int8()),
        ("file_name", pa.string()),
    ],
    # what `datasets` writes into the files it pushes: the features, so the Image column decodes
    metadata={
        "huggingface": json.dumps(
            {
                "info": {
                    "features": {
                        "question_id": {"dtype": "string", "_type": "Value"},
                        "image": {"_type": "Image"},
                        "question": {"dtype": "string", "_type": "Value"},
                        "answer": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "Sequence"},
                        "segmentation": {
                            "feature": {"dtype": "float32", "_type": "Value"},
                            "_type": "Sequence",
                        },
                        "bbox": {"feature": {"dtype": "float32", "_type": "Value"}, "_type": "Sequence"},
                        "iscrowd": {"dtype": "int8", "_type": "Value"},
                        "file_name": {"dtype": "string", "_type": "Value"},
                    }
                }
            }
        )
    },
)


def lmms_row(jpeg: bytes, question_id: str, answers: list[str], bbox: list[float]) -> dict[str, Any]:
    return {
        "question_id": question_id,
        "image": {"bytes": jpeg, "path": None},
        "question": "Please provide the bounding box coordinate of the region this sentence describes.",
        "answer": answers,
        "segmentation": [103.93, 299.99, 238.15, 299.99, 238.15, 477.41],
        "bbox": bbox,
        "iscrowd": 0,
        "file_name": "COCO_train2014_000000581857.jpg",
    }


def write_lmms(root: Path, split: str, shards: list[list[dict[str, Any]]]) -> Path:
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    for n, rows in enumerate(shards):
        table = pa.Table.from_pylist(rows, schema=LMMS_SCHEMA)
        pq.write_table(table, data / f"{split}-{n:05d}-of-{len(shards):05d}.parquet", row_group_size=1)
    return root


@pytest.mark.parametrize("split", ["val", "test", "testA", "testB"])
def test_lmms_lab_refcoco_splits_read_with_images_from_the_rows(
    tmp_path: Path, build: Build, jpeg_bytes, split: str
) -> None:
    red, blue = jpeg_bytes((427, 640), (200, 30, 30)), jpeg_bytes((40, 30), (30, 30, 200))
    root = write_lmms(
        tmp_path / "RefCOCO",
        split,
        [
            [
                lmms_row(
                    red,
                    "0",
                    ["the lady with the blue shirt", "lady w back to us"],
                    [103.93, 299.99, 134.22, 177.42],
                )
            ],
            [lmms_row(blue, "1", ["blue square"], [1.0, 2.0, 10.0, 20.0])],  # a second shard
        ],
    )
    builder = build("refcoco", root=root, split=split)  # no image_root: the images are in the rows
    first, second, third = list(builder)
    assert [s.id for s in (first, second, third)] == ["0_0", "0_1", "1_0"]  # one sample per answer
    assert first.expression == "the lady with the blue shirt" and second.expression == "lady w back to us"
    box = first.box  # COCO [x, y, w, h] -> corners (float32 in the file)
    assert (box.x1, box.y1, box.x2, box.y2) == pytest.approx((103.93, 299.99, 238.15, 477.41), abs=1e-4)
    assert (third.box.x1, third.box.y1, third.box.x2, third.box.y2) == (1.0, 2.0, 11.0, 22.0)
    assert first.image.open().size == (427, 640) and third.image.open().size == (40, 30)
    assert first.meta["question_id"] == "0" and first.meta["image_id"] == 581857
    assert builder[2].image.read_bytes() == blue  # by index too, out of file order
    worker = pickle.loads(pickle.dumps(builder))  # as a DataLoader worker gets it
    assert worker[0].image.read_bytes() == red


def test_lmms_lab_refcocog_val_next_to_nothing_else(tmp_path: Path, build: Build, jpeg_bytes) -> None:
    root = write_lmms(tmp_path, "val", [[lmms_row(jpeg_bytes(), "7", ["a man"], [0, 0, 4, 3])]])
    (sample,) = list(build("refcocog", root=root, split="val"))
    assert sample.dataset == "refcocog" and sample.expression == "a man"


def test_lmms_lab_row_without_image_bytes_names_the_row(tmp_path: Path, build: Build, jpeg_bytes) -> None:
    rows = [lmms_row(jpeg_bytes(), "0", ["a"], [0, 0, 4, 3]), lmms_row(b"", "1", ["b"], [0, 0, 4, 3])]
    rows[1]["image"] = {"bytes": None, "path": "COCO_train2014_000000581857.jpg"}
    builder = build("refcoco", root=write_lmms(tmp_path, "testB", [rows]), split="testB")
    assert builder[0].image.read_bytes()
    with pytest.raises(MicroVLMError, match=r"testB-00000-of-00001.parquet: row 2.image: no image bytes"):
        builder[1]


def test_lmms_lab_bad_box_names_the_file_and_row(tmp_path: Path, build: Build, jpeg_bytes) -> None:
    rows = [
        lmms_row(jpeg_bytes(), "0", ["a"], [0, 0, 4, 3]),
        lmms_row(jpeg_bytes(), "1", ["b"], [0, 0, -4, 3]),
    ]
    with pytest.raises(MicroVLMError, match=r"testA-00000-of-00001.parquet: row 2.bbox: width and height"):
        len(build("refcoco", root=write_lmms(tmp_path, "testA", [rows]), split="testA"))


def test_jxu124_parquet_rows_are_read_as_corners(
    tmp_path: Path, build: Build, formats: Any, write_jpeg
) -> None:
    """The jxu124 hub files: ``validation`` for val, ``bbox`` [x1, y1, x2, y2]."""
    coco = tmp_path / "coco"
    write_jpeg(coco / "train2014" / "COCO_train2014_000000581857.jpg")
    (tmp_path / "refcoco" / "data").mkdir(parents=True)
    row = {**formats.ref_web.REF_ROW, "split": "val"}
    path = tmp_path / "refcoco" / "data" / "validation-00000-of-00001-1a2b3c4d5e6f7a8b.parquet"
    pq.write_table(pa.Table.from_pylist([row]), path)
    first, second = list(build("refcoco", root=tmp_path / "refcoco", split="val", image_root=coco))
    assert (first.box.x1, first.box.y1, first.box.x2, first.box.y2) == (103.93, 299.99, 238.15, 477.41)
    assert first.image.path.endswith("COCO_train2014_000000581857.jpg") and second.id == "0_1"


def test_parquet_of_another_dataset_says_which_columns_are_expected(tmp_path: Path, build: Build) -> None:
    (tmp_path / "data").mkdir()
    pq.write_table(
        pa.Table.from_pylist([{"caption": "a dog"}]), tmp_path / "data" / "testA-00000-of-00001.parquet"
    )
    with pytest.raises(
        MicroVLMError, match=r"testA-00000-of-00001.parquet: columns \['caption'\] are neither"
    ):
        build("refcoco", root=tmp_path, split="testA", image_root=tmp_path)


def test_a_split_that_is_not_there_names_every_file_looked_for(
    tmp_path: Path, build: Build, jpeg_bytes
) -> None:
    root = write_lmms(tmp_path, "val", [[lmms_row(jpeg_bytes(), "0", ["a"], [0, 0, 4, 3])]])
    with pytest.raises(MicroVLMError, match=r"train.jsonl.*data/train-\*.parquet"):
        build("refcoco", root=root, split="train")
