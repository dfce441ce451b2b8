"""The shapes generator: files in every format, determinism, folder safety, the CLI."""

from __future__ import annotations

import json
import tarfile
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from microvlm.cli import build_cli
from microvlm.errors import MicroVLMError
from microvlm_datasets.shapes import generate, layout

COUNTS = {"train": 12, "val": 4, "test": 4}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_manifest_and_files_of_every_format(shapes_dir: Path) -> None:
    manifest = json.loads((shapes_dir / layout.MANIFEST).read_text())
    assert manifest["complete"] is True
    assert manifest["seed"] == 0 and manifest["image_size"] == 64
    for split, n in COUNTS.items():
        counts = manifest["splits"][split]
        assert counts["images"] == n
        assert counts["captions"] == 5 * n
        assert counts["questions"] == 5 * n
        assert n <= counts["refs"] <= 4 * n
        assert len(list(layout.image_dir(shapes_dir, split).glob("*.jpg"))) == n
        for path in (
            layout.captions_file(shapes_dir, split),
            layout.vqa_questions_file(shapes_dir, split),
            layout.vqa_annotations_file(shapes_dir, split),
            layout.refcoco_file(shapes_dir, split),
            layout.llava_file(shapes_dir, split),
        ):
            assert path.is_file(), path
    assert manifest["splits"]["train"]["shards"] == 3  # 12 images, 5 per shard


def test_coco_captions_json_is_coco_shaped(shapes_dir: Path) -> None:
    data = json.loads(layout.captions_file(shapes_dir, "train").read_text())
    assert {"info", "licenses", "images", "annotations"} <= set(data)
    image = data["images"][0]
    assert {"id", "file_name", "width", "height"} <= set(image)
    assert image["file_name"] == f"{image['id']:012d}.jpg"
    per_image = Counter(a["image_id"] for a in data["annotations"])
    assert set(per_image.values()) == {5}
    assert len({a["id"] for a in data["annotations"]}) == len(data["annotations"])
    captions = [a["caption"] for a in data["annotations"] if a["image_id"] == image["id"]]
    assert len(set(captions)) == 5


def test_vqa_files_are_vqav2_shaped_and_consistent(shapes_dir: Path) -> None:
    questions = json.loads(layout.vqa_questions_file(shapes_dir, "val").read_text())
    annotations = json.loads(layout.vqa_annotations_file(shapes_dir, "val").read_text())
    assert questions["data_subtype"] == "val2014"
    assert [q["question_id"] for q in questions["questions"]] == [
        a["question_id"] for a in annotations["annotations"]
    ]
    types = set()
    for ann in annotations["annotations"]:
        assert len(ann["answers"]) == 10
        assert [a["answer_id"] for a in ann["answers"]] == list(range(1, 11))
        assert {a["answer_confidence"] for a in ann["answers"]} <= {"yes", "maybe", "no"}
        answers = Counter(a["answer"] for a in ann["answers"])
        assert ann["multiple_choice_answer"] == answers.most_common(1)[0][0]
        types.add(ann["answer_type"])
    assert types <= {"yes/no", "number", "other"}


def test_count_answers_match_the_number_of_boxes(shapes_dir: Path) -> None:
    """Texts are true of their image: 'How many shapes' agrees with the RefCOCO rows."""
    rows = [json.loads(line) for line in layout.refcoco_file(shapes_dir, "train").read_text().splitlines()]
    shapes_per_image = Counter(r["image_id"] for r in rows)
    questions = json.loads(layout.vqa_questions_file(shapes_dir, "train").read_text())["questions"]
    answers = {
        a["question_id"]: a
        for a in json.loads(layout.vqa_annotations_file(shapes_dir, "train").read_text())["annotations"]
    }
    checked = 0
    for q in questions:
        if q["question"] == "How many shapes are there?":
            assert answers[q["question_id"]]["multiple_choice_answer"] == str(shapes_per_image[q["image_id"]])
            checked += 1
    for r in rows:  # as in jxu124/refcoco: bbox [x1, y1, x2, y2], the COCO box in raw_anns [x, y, w, h]
        x, y, w, h = json.loads(r["raw_anns"])["bbox"]
        assert x >= 0 and y >= 0 and x + w <= 64 and y + h <= 64 and w > 0 and h > 0
        assert r["bbox"] == pytest.approx([x, y, x + w, y + h], abs=0.006)
        assert json.loads(r["raw_image_info"])["id"] == r["image_id"]
    assert checked > 0


def test_shards_are_img2dataset_shaped(shapes_dir: Path) -> None:
    folder = layout.shard_dir(shapes_dir, "train")
    assert sorted(p.name for p in folder.glob("*.tar")) == ["00000.tar", "00001.tar", "00002.tar"]
    with tarfile.open(folder / "00001.tar") as tar:
        names = tar.getnames()
        # img2dataset's keys: 5 digits of shard id + ceil(log10(5 per shard)) = 1 digit of index
        meta = json.loads(tar.extractfile("000010.json").read())
    assert names[:3] == ["000010.jpg", "000010.json", "000010.txt"]
    assert {"url", "caption", "key", "status", "width", "height"} <= set(meta)
    assert meta["key"] == "000010" and meta["status"] == "success"
    stats = json.loads((folder / "00002_stats.json").read_text())
    assert stats["count"] == stats["successes"] == 2  # 12 = 5 + 5 + 2


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    generate(tmp_path / "a", 4, 2, 2, image_size=48, seed=3)
    generate(tmp_path / "b", 4, 2, 2, image_size=48, seed=3)
    generate(tmp_path / "c", 4, 2, 2, image_size=48, seed=4)
    a, b, c = (_files(tmp_path / x) for x in "abc")
    assert a == b
    assert a.keys() == c.keys()
    assert a[f"coco/train2017/{1:012d}.jpg"] != c[f"coco/train2017/{1:012d}.jpg"]


def test_an_image_does_not_depend_on_other_split_sizes(tmp_path: Path) -> None:
    generate(tmp_path / "a", 3, 1, 0, image_size=48)
    generate(tmp_path / "b", 3, 5, 2, image_size=48)
    name = f"coco/train2017/{2:012d}.jpg"
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert not (tmp_path / "a" / "coco" / "test2017").exists()  # an empty split writes nothing


def test_regenerating_replaces_an_earlier_set(tmp_path: Path) -> None:
    generate(tmp_path, 6, 1, 1, image_size=32)
    generate(tmp_path, 2, 1, 1, image_size=32)
    assert len(list(layout.image_dir(tmp_path, "train").glob("*.jpg"))) == 2


def test_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "coco").mkdir()
    (tmp_path / "coco" / "precious.jpg").write_bytes(b"x")
    with pytest.raises(MicroVLMError, match="not empty"):
        generate(tmp_path, 1, 0, 0)
    assert (tmp_path / "coco" / "precious.jpg").exists()


@pytest.mark.parametrize(
    ("args", "match"),
    [((0, 0, 0), "every split is empty"), ((1, 0, 0, 16), "image_size"), ((-1, 0, 0), "n_train")],
)
def test_bad_arguments_are_refused(tmp_path: Path, args: tuple, match: str) -> None:
    with pytest.raises(MicroVLMError, match=match):
        generate(tmp_path, *args)


def test_cli_writes_a_set_and_reports_throughput(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        build_cli(),
        [
            "datasets",
            "shapes",
            "--out",
            str(out),
            "--n-train",
            "3",
            "--n-val",
            "1",
            "--n-test",
            "1",
            "--image-size",
            "32",
            "--seed",
            "7",
            "--samples-per-shard",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "images/min" in result.output and "wrote 5 images" in result.output
    manifest = json.loads((out / layout.MANIFEST).read_text())
    assert manifest["seed"] == 7 and manifest["splits"]["train"]["shards"] == 2


def test_cli_reports_a_refused_folder_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "other.txt").write_text("mine")
    result = CliRunner().invoke(build_cli(), ["datasets", "shapes", "--out", str(tmp_path), "--n-train", "1"])
    assert result.exit_code != 0
    assert "not empty" in result.output and "Traceback" not in result.output


def test_cli_datasets_group_lists_shapes() -> None:
    result = CliRunner().invoke(build_cli(), ["datasets", "--help"])
    assert result.exit_code == 0 and "shapes" in result.output
