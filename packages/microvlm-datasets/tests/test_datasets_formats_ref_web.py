"""RefCOCO (HF rows), LLaVA conversations and img2dataset web shards on fixtures in their real formats."""

from __future__ import annotations

import io
import json
import logging
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from microvlm.errors import MicroVLMError

Build = Callable[..., Any]

SENTENCES = [
    {
        "tokens": ["the", "lady", "with", "the", "blue", "shirt"],
        "raw": "THE LADY WITH THE BLUE SHIRT",
        "sent_id": 0,
        "sent": "the lady with the blue shirt",
    },
    {
        "tokens": ["lady", "w", "back", "to", "us"],
        "raw": "lady w back to us",
        "sent_id": 1,
        "sent": "lady w back to us",
    },
]
IMAGE_INFO = {
    "license": 1,
    "file_name": "COCO_train2014_000000581857.jpg",
    "coco_url": "",
    "height": 640,
    "width": 427,
    "date_captured": "2013-11-14 11:10:07",
    "flickr_url": "",
    "id": 581857,
}
# One row of jxu124/refcoco as the hub holds it (the columns of its dataset card,
# https://huggingface.co/datasets/jxu124/refcoco/blob/main/README.md): ref 0 of RefCOCO (unc),
# person 1719310 of COCO image 581857. ``raw_anns`` is the COCO annotation, whose ``bbox`` is
# [x, y, w, h]; the top-level ``bbox`` is the same box as [x1, y1, x2, y2].
RAW_ANN = {
    "segmentation": [[103.93, 299.99, 238.15, 299.99, 238.15, 477.41]],
    "area": 15225.4,
    "iscrowd": 0,
    "image_id": 581857,
    "bbox": [103.93, 299.99, 134.22, 177.42],
    "category_id": 1,
    "id": 1719310,
}
REF_ROW = {
    "sent_ids": [0, 1],
    "file_name": "COCO_train2014_000000581857_16.jpg",
    "ann_id": 1719310,
    "ref_id": 0,
    "image_id": 581857,
    "split": "train",
    "sentences": SENTENCES,
    "category_id": 1,
    "raw_anns": json.dumps(RAW_ANN),
    "raw_image_info": json.dumps(IMAGE_INFO),
    "raw_sentences": json.dumps(SENTENCES),
    "image_path": "coco/train2014/COCO_train2014_000000581857.jpg",
    "bbox": [103.93, 299.99, 238.15, 477.41],
    "captions": ["the lady with the blue shirt", "lady w back to us"],
    "global_image_id": "coco.581857",
}


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def coco(tmp_path: Path, write_jpeg) -> Path:
    write_jpeg(tmp_path / "coco" / "train2014" / "COCO_train2014_000000581857.jpg")
    return tmp_path / "coco"


@pytest.mark.parametrize("name", ["refcoco", "refcoco_plus", "refcocog"])
def test_refcoco_family_reads_hub_rows(tmp_path: Path, coco: Path, build: Build, name: str) -> None:
    _jsonl(tmp_path / name / "train.jsonl", [REF_ROW])
    builder = build(name, root=tmp_path / name, split="train", image_root=coco)
    first, second = list(builder)
    assert len(builder) == 2  # one sample per sentence
    assert first.dataset == name and first.id == "0_0"
    assert first.expression == "the lady with the blue shirt" and second.expression == "lady w back to us"
    assert (first.box.x1, first.box.y1) == (103.93, 299.99)
    assert first.box.x2 == pytest.approx(238.15) and first.box.y2 == pytest.approx(477.41)
    assert first.image.size == (427, 640)
    assert first.image.path == str(coco / "train2014" / "COCO_train2014_000000581857.jpg")
    assert first.meta["ann_id"] == 1719310 and first.meta["category_id"] == 1


def test_refcoco_bbox_is_the_corners_of_the_coco_box_in_raw_anns(
    tmp_path: Path, coco: Path, build: Build
) -> None:
    """jxu124's ``bbox`` is [x1, y1, x2, y2]: the sample's box is raw_anns' [x, y, w, h] box,
    and a file that holds [x, y, w, h] in ``bbox`` is refused, naming the row and both boxes."""
    x, y, w, h = json.loads(REF_ROW["raw_anns"])["bbox"]
    assert REF_ROW["bbox"] == pytest.approx([x, y, x + w, y + h])  # the fixture is shaped like the hub's
    (sample, _) = list(build("refcoco", root=_write(tmp_path, [REF_ROW]), split="train", image_root=coco))
    box = sample.box
    assert (box.x1, box.y1, box.x2 - box.x1, box.y2 - box.y1) == pytest.approx((x, y, w, h))

    near_right_edge = {  # a box read as [x, y, w, h] would end at x = 1108 in a 427-wide image
        **REF_ROW,
        "raw_anns": json.dumps({**RAW_ANN, "bbox": [300.0, 10.0, 120.0, 50.0]}),
        "bbox": [300.0, 10.0, 420.0, 60.0],
    }
    (sample, _) = list(
        build("refcoco", root=_write(tmp_path, [near_right_edge]), split="train", image_root=coco)
    )
    assert (sample.box.x1, sample.box.y1, sample.box.x2, sample.box.y2) == (300.0, 10.0, 420.0, 60.0)

    xywh = {**REF_ROW, "bbox": RAW_ANN["bbox"]}  # what our shapes writer used to write
    with pytest.raises(MicroVLMError, match=r"train.jsonl: row 2.bbox: .*raw_anns.bbox") as caught:
        len(build("refcoco", root=_write(tmp_path, [REF_ROW, xywh]), split="train", image_root=coco))
    assert "[x1, y1, x2, y2]" in str(caught.value)


def _write(tmp_path: Path, rows: list[dict]) -> Path:
    _jsonl(tmp_path / "refcoco" / "train.jsonl", rows)
    return tmp_path / "refcoco"


def test_refcoco_older_hub_revision_with_json_strings(tmp_path: Path, coco: Path, build: Build) -> None:
    """An older revision stored sentences as a JSON string and had no raw_image_info."""
    row = {k: v for k, v in REF_ROW.items() if k not in ("raw_image_info", "sentences")}
    row["sentences"] = json.dumps(SENTENCES)
    _jsonl(tmp_path / "refcoco" / "validation.jsonl", [{**row, "split": "val"}])
    samples = list(build("refcoco", root=tmp_path / "refcoco", split="val", image_root=coco))
    assert [s.expression for s in samples] == ["the lady with the blue shirt", "lady w back to us"]
    assert samples[0].image.size is None


def test_refcoco_bad_box_names_the_row(tmp_path: Path, coco: Path, build: Build) -> None:
    _jsonl(tmp_path / "testA.jsonl", [REF_ROW, {**REF_ROW, "bbox": [1, 2, 3]}])
    with pytest.raises(MicroVLMError, match=r"testA.jsonl: row 2.bbox"):
        len(build("refcoco", root=tmp_path, split="testA", image_root=coco))


@pytest.mark.parametrize(
    "name", ["train-00000-of-00001-94431d5f4bd5b93f.parquet", "val-00000-of-00004.parquet"]
)
def test_refcoco_parquet_without_pyarrow_says_what_to_do(
    tmp_path: Path, coco: Path, build: Build, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """jxu124's and lmms-lab's files, with pyarrow missing (a None in sys.modules fails the import)."""
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / name).write_bytes(b"PAR1")
    split = name.split("-", maxsplit=1)[0]
    with pytest.raises(
        MicroVLMError, match=rf"{name} is a parquet file.*pip install \"microvlm-datasets\[parquet\]\""
    ):
        build("refcoco", root=tmp_path, split=split, image_root=coco)


LLAVA = [
    {
        "id": "000000033471",
        "image": "000000033471.jpg",
        "conversations": [
            {"from": "human", "value": "<image>\nWhat are the colors of the bus in the image?"},
            {"from": "gpt", "value": "The bus in the image is white and red."},
            {"from": "human", "value": "What feature can be seen on the back of the bus?"},
            {"from": "gpt", "value": "The back of the bus features an advertisement."},
        ],
    },
    {
        "id": "000000052846",
        "image": "000000052846.jpg",
        "conversations": [
            {"from": "human", "value": "Where is the cat positioned in the image?\n<image>"},
            {
                "from": "gpt",
                "value": "The cat is positioned on top of the back of the couch in the living room.",
            },
        ],
    },
    {
        "id": "i6IyJda_0",
        "conversations": [  # text-only record of the v1.5 mix: no image
            {"from": "human", "value": "How to tell if a customer segment is well segmented?"},
            {"from": "gpt", "value": "Check that it is homogeneous, distinct and actionable."},
        ],
    },
]


def test_llava_conversations(
    tmp_path: Path, build: Build, write_json, caplog: pytest.LogCaptureFixture
) -> None:
    write_json(tmp_path / "llava" / "llava_instruct_150k.json", LLAVA)
    images = tmp_path / "coco" / "train2017"
    images.mkdir(parents=True)
    with caplog.at_level(logging.INFO):
        builder = build("llava_instruct", root=tmp_path / "llava", image_root=images)
        first, second = list(builder)
    assert "skipped 1 records without an image" in caplog.text
    assert first.id == "000000033471" and first.image.path == str(images / "000000033471.jpg")
    assert [t.role for t in first.conversation] == ["user", "assistant", "user", "assistant"]
    assert first.conversation[0].text == "What are the colors of the bus in the image?"
    assert second.conversation[0].text == "Where is the cat positioned in the image?"


def test_llava_unknown_speaker(tmp_path: Path, build: Build, write_json) -> None:
    bad = [
        {
            **LLAVA[0],
            "conversations": [{"from": "robot", "value": "<image>\nhi"}, {"from": "gpt", "value": "hello"}],
        }
    ]
    write_json(tmp_path / "llava_instruct_150k.json", bad)
    with pytest.raises(MicroVLMError, match=r"\[0\].conversations\[0\]: unknown speaker 'robot'"):
        len(build("llava_instruct", root=tmp_path, image_root=tmp_path))


# -------------------------------------------------------------------------------------
# Web shards
# -------------------------------------------------------------------------------------


def write_shard(path: Path, samples: list[dict[str, bytes]], stats: dict | None = None) -> Path:
    """A tar in img2dataset's layout: members ``{key}.{ext}``, consecutive per sample."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for sample in samples:
            key = sample["__key__"].decode()
            for ext, data in sample.items():
                if ext != "__key__":
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    if stats is not None:
        path.with_name(path.name.split(".")[0] + "_stats.json").write_text(json.dumps(stats))
    return path


def _web_sample(key: str, caption: str, jpeg: bytes, ext: str = "jpg") -> dict[str, bytes]:
    meta = {
        "url": f"http://example.com/{key}.jpg",
        "caption": caption,
        "key": key,
        "status": "success",
        "error_message": None,
        "width": 8,
        "height": 6,
        "original_width": 640,
        "original_height": 480,
        "exif": None,
    }
    return {
        "__key__": key.encode(),
        ext: jpeg,
        "txt": caption.encode(),
        "json": json.dumps(meta, indent=4).encode(),
    }


@pytest.fixture
def web_root(tmp_path: Path, jpeg_bytes) -> Path:
    root = tmp_path / "cc3m"
    write_shard(
        root / "00000.tar",
        [
            _web_sample("000000000", "a dog on a beach", jpeg_bytes()),
            _web_sample("000000001", "a red bus", jpeg_bytes(), ext="png"),
        ],
    )
    write_shard(
        root / "00001.tar",
        [_web_sample("000010000", "two cats", jpeg_bytes())],
        stats={"count": 3, "successes": 1, "failed_to_download": 2, "failed_to_resize": 0},
    )
    return root


def test_webdataset_reads_img2dataset_shards(web_root: Path, build: Build) -> None:
    builder = build("webdataset", root=web_root)
    samples = list(builder)
    assert [s.id for s in samples] == ["000000000", "000000001", "000010000"]
    assert len(builder) == 3 and builder.expected_count() is None  # shard 0 has no _stats.json
    assert samples[0].captions == ("a dog on a beach",) and samples[0].image.size == (8, 6)
    assert samples[0].meta["url"] == "http://example.com/000000000.jpg"
    assert samples[1].image.open().size == (8, 6)  # the .png member
    assert samples[2].meta["shard"].endswith("00001.tar")


def test_webdataset_brace_pattern_and_missing_shards(web_root: Path, build: Build) -> None:
    assert [s.id for s in build("webdataset", root=web_root, shards="{00001..00001}.tar")] == ["000010000"]
    with pytest.raises(MicroVLMError, match=r"00002.tar"):
        build("webdataset", root=web_root, shards="{00000..00002}.tar")


def test_webdataset_truncated_and_non_tar_shards_are_logged(
    tmp_path: Path, build: Build, jpeg_bytes, caplog: pytest.LogCaptureFixture
) -> None:
    big = jpeg_bytes((64, 64))
    shard = write_shard(
        tmp_path / "00000.tar", [_web_sample(f"00000000{i}", f"caption {i}", big) for i in range(3)]
    )
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])  # cut inside the second or third sample
    (tmp_path / "00001.tar").write_bytes(b"<html>404 not found</html>")
    builder = build("webdataset", root=tmp_path)
    with caplog.at_level(logging.WARNING):
        samples = list(builder)
    assert 1 <= len(samples) < 3 and samples[0].id == "000000000"
    assert [Path(s).name for s, _ in builder.bad_shards] == ["00000.tar", "00001.tar"]
    assert "damaged" in caplog.text


def test_webdataset_bad_member_json_keeps_the_sample(tmp_path: Path, build: Build, jpeg_bytes) -> None:
    sample = {**_web_sample("000000000", "a cat", jpeg_bytes()), "json": b"{not json"}
    write_shard(tmp_path / "00000.tar", [sample])
    (only,) = list(build("webdataset", root=tmp_path))
    assert only.captions == ("a cat",) and "url" not in only.meta


@pytest.mark.parametrize("name", ["cc3m", "laion_coco", "sbu"])
def test_presets_default_to_their_folder(
    tmp_path: Path, build: Build, jpeg_bytes, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    write_shard(tmp_path / "data" / name / "00000.tar", [_web_sample("000000000", "a caption", jpeg_bytes())])
    monkeypatch.chdir(tmp_path)
    (sample,) = list(build(name))
    assert sample.dataset == name and sample.captions == ("a caption",)
