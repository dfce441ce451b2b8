"""The shapes set read back through the real builders (coco_caption, vqav2, refcoco, llava_instruct,
webdataset) and through the ``shapes`` view."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from microvlm.data import Sample
from microvlm_datasets.shapes import layout

Build = Callable[..., Any]


def _manifest(shapes_dir: Path) -> dict[str, Any]:
    return json.loads((shapes_dir / layout.MANIFEST).read_text())


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_coco_caption_reads_every_split(shapes_dir: Path, build: Build, split: str) -> None:
    builder = build("coco_caption", root=shapes_dir / "coco", split=split)
    samples = list(builder)
    assert len(builder) == len(samples) == _manifest(shapes_dir)["splits"][split]["images"]
    sample = samples[0]
    assert isinstance(sample, Sample) and sample.dataset == "coco_caption"
    assert len(sample.captions) == 5 and all(sample.captions)
    assert sample.image.size == (64, 64)
    assert sample.image.open().size == (64, 64)
    assert builder[len(builder) - 1].id == samples[-1].id


def test_vqav2_reads_questions_answers_and_finds_images_by_id(shapes_dir: Path, build: Build) -> None:
    builder = build("vqav2", root=shapes_dir / "vqa", split="val", image_root=shapes_dir / "coco")
    samples = list(builder)
    assert len(samples) == 5 * 4
    assert {s.answer_type for s in samples} <= {"yes/no", "number", "other"}
    for s in samples:
        assert s.question.endswith("?") and len(s.answers) == 10
        assert Path(s.image.path).is_file()  # COCO 2017 folder found by image id
        assert Path(s.image.path).parent.name == "val2017"


def test_vqav2_test_split_reads_test2015_files(shapes_dir: Path, build: Build) -> None:
    builder = build("vqav2", root=shapes_dir / "vqa", split="test", image_root=shapes_dir / "coco")
    assert builder.subset == "test2015"
    assert all(len(s.answers) == 10 and Path(s.image.path).is_file() for s in builder)


def test_refcoco_reads_boxes_inside_the_image(shapes_dir: Path, build: Build) -> None:
    builder = build("refcoco", root=shapes_dir / "refcoco", split="train", image_root=shapes_dir / "coco")
    samples = list(builder)
    assert len(samples) == _manifest(shapes_dir)["splits"]["train"]["expressions"]
    for s in samples:
        assert s.expression and s.box is not None
        assert 0 <= s.box.x1 < s.box.x2 <= 64 and 0 <= s.box.y1 < s.box.y2 <= 64
        assert s.image.size == (64, 64) and Path(s.image.path).is_file()


def test_refcoco_val_reads_the_validation_file(shapes_dir: Path, build: Build) -> None:
    builder = build("refcoco", root=shapes_dir / "refcoco", split="val", image_root=shapes_dir / "coco")
    assert builder.jsonl.name == "validation.jsonl"
    assert {s.meta["split"] for s in builder} == {"val"}


def test_llava_instruct_reads_multi_turn_conversations(shapes_dir: Path, build: Build) -> None:
    builder = build("llava_instruct", root=shapes_dir / "llava", image_root=shapes_dir / "coco" / "train2017")
    samples = list(builder)
    assert len(samples) == 12
    for s in samples:
        roles = [t.role for t in s.conversation]
        assert roles[:2] == ["user", "assistant"] and len(roles) >= 4 and len(roles) % 2 == 0
        assert all("<image>" not in t.text and t.text for t in s.conversation)
        assert Path(s.image.path).is_file()


def test_webdataset_reads_all_shards_in_order(shapes_dir: Path, build: Build) -> None:
    builder = build("webdataset", root=shapes_dir / "shards", split="train")
    assert [Path(s).name for s in builder.shards] == ["00000.tar", "00001.tar", "00002.tar"]
    samples = list(builder)
    assert len(builder) == len(samples) == 12
    assert samples[5].id == "000010"  # img2dataset keys: shard 1, sample 0
    first = samples[0]
    assert first.image.data == b"" and first.image.path.endswith("00000.tar")  # a reference, not the bytes
    assert first.image.member == "000000.jpg" and first.image.length > 0
    assert first.image.read_bytes()[:2] == b"\xff\xd8" and first.image.open().size == (64, 64)
    coco = build("coco_caption", root=shapes_dir / "coco", split="train")
    assert first.captions[0] == coco[0].captions[0]  # the shard caption is the image's first COCO caption
    assert first.meta["url"].endswith(Path(coco[0].image.path).name)


@pytest.mark.parametrize(
    ("view", "kind"),
    [
        ("caption", "captions"),
        ("vqa", "question"),
        ("grounding", "expression"),
        ("instruct", "conversation"),
        ("webdataset", "captions"),
    ],
)
def test_shapes_view_reads_each_format(shapes_dir: Path, build: Build, view: str, kind: str) -> None:
    builder = build("shapes", root=shapes_dir, split="val", view=view)
    samples = list(builder)
    assert samples and all(s.dataset == "shapes" and getattr(s, kind) for s in samples)
    assert samples[0].image.open().size == (64, 64)
