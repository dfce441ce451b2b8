"""``microvlm datasets status``: a shapes folder and a data root of conventional folders."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from microvlm.cli import build_cli
from microvlm_datasets.shapes import layout


def _counts(shapes_dir: Path) -> dict[str, int]:
    manifest = json.loads((shapes_dir / layout.MANIFEST).read_text())
    return {split: n["images"] for split, n in manifest["splits"].items()}


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(build_cli(), ["datasets", "status", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_status_of_a_shapes_folder_shows_its_splits_and_counts(shapes_dir: Path) -> None:
    out = _invoke("--root", str(shapes_dir))
    assert "a shapes set" in out and "5 of 5 datasets present" in out
    for view in ("shapes/caption", "shapes/vqa", "shapes/grounding", "shapes/instruct", "shapes/webdataset"):
        assert view in out
    report = json.loads(_invoke("--root", str(shapes_dir), "--json"))
    assert report["kind"] == "shapes"
    rows = {(d["name"], r["split"]): r for d in report["datasets"] for r in d["splits"]}
    for split, n in _counts(shapes_dir).items():
        caption = rows[("shapes/caption", split)]
        assert caption["status"] == "present" and caption["samples"] == caption["images"] == n
        assert caption["missing_images"] == 0 and caption["skipped"] == {}
        assert rows[("shapes/vqa", split)]["samples"] == 5 * n  # five questions per image
        assert rows[("shapes/vqa", split)]["images"] == n
        assert rows[("shapes/webdataset", split)]["samples"] == n
    assert report["datasets"][0]["disk_bytes"] > 0


@pytest.fixture
def data_root(tmp_path: Path, shapes_dir: Path) -> Path:
    """A data root in the conventional folders: COCO captions + VQAv2 (a copy of the shapes set's),
    CC3M shards with one of them cut short; one COCO image deleted."""
    root = tmp_path / "data"
    shutil.copytree(layout.coco_dir(shapes_dir), root / "coco")
    shutil.copytree(layout.vqa_dir(shapes_dir), root / "vqa")
    shutil.copytree(layout.shard_dir(shapes_dir, "train"), root / "cc3m")
    gone = sorted((root / "coco" / "train2017").glob("*.jpg"))[0]
    gone.unlink()
    shard = root / "cc3m" / "00002.tar"
    with tarfile.open(shard) as tar:
        cut = tar.getmembers()[0].offset_data + 10
    shard.write_bytes(shard.read_bytes()[:cut])  # inside the first image
    return root


def test_status_of_a_data_root_counts_missing_files_and_failures(data_root: Path, shapes_dir: Path) -> None:
    report = json.loads(_invoke("--root", str(data_root), "--json"))
    assert report["kind"] == "data"
    by_name = {d["name"]: d for d in report["datasets"]}
    assert not by_name["gqa"]["present"] and not by_name["shapes"]["present"]
    coco = {r["split"]: r for r in by_name["coco_caption"]["splits"]}
    assert coco["train"]["samples"] == _counts(shapes_dir)["train"] and coco["train"]["missing_images"] == 1
    assert coco["val"]["missing_images"] == 0
    vqa = {r["split"]: r for r in by_name["vqav2"]["splits"]}
    assert vqa["train"]["status"] == "present" and vqa["train"]["missing_images"] == 1  # the same image
    cc3m = by_name["cc3m"]["splits"]
    assert [r["split"] for r in cc3m] == ["all"] and cc3m[0]["skipped"] == {"bad_shard": 1}
    assert cc3m[0]["samples"] == 10  # shards 0 and 1 (5 each); shard 2 cut inside its first sample
    assert by_name["cc3m"]["disk_bytes"] > 0
    out = _invoke("--root", str(data_root))
    assert "coco_caption" in out and "bad_shard 1" in out and "3 of 15 datasets present" in out


def test_status_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "vqa").mkdir()
    out = _invoke("--root", str(tmp_path))
    assert "0 of 15 datasets present" in out
    assert "vqav2 train: vqav2: annotation file not found" in out and "v2_OpenEnded_mscoco_train2014" in out


def test_status_shows_brackets_in_paths_as_written(tmp_path: Path) -> None:
    """File names in notes are text, not rich markup: "[/]" used to raise MarkupError."""
    root = tmp_path / "data[/]x[bold]"
    (root / "vqa").mkdir(parents=True)
    out = _invoke("--root", str(root))
    assert "vqav2 train: vqav2: annotation file not found" in out and "data[/]x[bold]" in out
