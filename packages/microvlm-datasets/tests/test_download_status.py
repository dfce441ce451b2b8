"""``datasets status``'s states: complete, partial (with what is missing), needs login, needs tool,
absent; for a source from its files on disk (an archive counts once extracted), for a dataset
from what its builder reads of the splits its sources provide."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from microvlm_datasets.download import web
from microvlm_datasets.download.extract import extract_archive
from microvlm_datasets.download.sources import load_catalogue, parse_source
from microvlm_datasets.status import dataset_state, source_state

SOURCES = load_catalogue()

TWO_FILES = {
    "name": "two",
    "datasets": ["vqav2"],
    "folder": "vqa",
    "description": "two files",
    "licence": "CC0",
    "files": [
        {"url": "http://127.0.0.1/a.json", "path": "a.json", "cite": "http://127.0.0.1/"},
        {"url": "http://127.0.0.1/b.zip", "path": "b.zip", "extract": True, "cite": "http://127.0.0.1/"},
    ],
}


def test_a_source_is_absent_then_partial_then_complete_once_extracted(tmp_path: Path) -> None:
    source = parse_source(TWO_FILES, "two.toml")
    assert source_state(source, tmp_path)["state"] == "absent"
    folder = tmp_path / "vqa"
    folder.mkdir()
    (folder / "a.json").write_text("{}")
    partial = source_state(source, tmp_path)
    assert partial["state"] == "partial" and partial["missing"] == ["b.zip"]
    with zipfile.ZipFile(folder / "b.zip", "w") as z:
        z.writestr("inside.json", "{}")
    assert source_state(source, tmp_path)["missing"] == ["b.zip (not extracted)"]
    extract_archive(folder / "b.zip", folder)
    assert source_state(source, tmp_path) | {"folder": ""} == {
        "folder": "",
        "login": "",
        "licence": "CC0",
        "state": "complete",
        "missing": [],
        "needs": "",
    }


def test_logins_say_what_to_do(tmp_path: Path) -> None:
    flickr = source_state(SOURCES["flickr30k"], tmp_path)
    assert flickr["state"] == "needs login" and "Kaggle" in flickr["needs"]
    laion = source_state(SOURCES["laion_coco"], tmp_path)
    assert (
        laion["state"] == "needs login"
        and "https://huggingface.co/datasets/laion/laion-coco" in laion["needs"]
    )
    ocr = source_state(SOURCES["ocrvqa"], tmp_path)
    assert ocr["state"] == "needs login" and "dataset.json (the URL list, by hand)" in ocr["missing"]


def test_web_images_need_img2dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(web.ENV_VAR, raising=False)
    monkeypatch.setattr(web, "find_img2dataset", lambda tools: None)
    cc3m = source_state(SOURCES["cc3m"], tmp_path)
    assert cc3m["state"] == "needs tool" and "img2dataset" in cc3m["needs"] and "pip" in cc3m["needs"]
    monkeypatch.setattr(web, "find_img2dataset", lambda tools: tmp_path / "img2dataset")
    assert source_state(SOURCES["cc3m"], tmp_path)["state"] == "absent"
    (tmp_path / "cc3m").mkdir()
    (tmp_path / "cc3m" / "00000.tar").write_bytes(b"")
    partial = source_state(SOURCES["cc3m"], tmp_path)  # shards but no URL list
    assert partial["state"] == "partial" and partial["missing"] == [
        "metadata/Train_GCC-training.tsv (the URL list)"
    ]


def _row(split: str, status: str = "present", missing_images: int = 0, error: str = "") -> dict:
    return {"split": split, "status": status, "missing_images": missing_images, "error": error}


def test_a_dataset_is_complete_when_the_splits_its_sources_provide_read(tmp_path: Path) -> None:
    sources = SOURCES.values()
    vqa = [_row("train"), _row("val"), _row("test", "absent", error="no test questions")]
    assert dataset_state("vqav2", vqa, sources, tmp_path)["state"] == "complete"  # vqav2.toml: train, val
    half = dataset_state(
        "vqav2", [_row("train"), _row("val", "absent", error="no val file")], sources, tmp_path
    )
    assert half == {"state": "partial", "missing": ["val: no val file"], "needs": ""}
    images = dataset_state("vqav2", [_row("train", missing_images=3), _row("val")], sources, tmp_path)
    assert images["missing"] == ["train: 3 image files missing"]
    assert dataset_state("vqav2", [], sources, tmp_path)["state"] == "absent"
    assert dataset_state("flickr30k", [], sources, tmp_path)["state"] == "needs login"
