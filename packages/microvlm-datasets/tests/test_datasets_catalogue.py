"""The catalogue is the one table of this package's datasets: registrations and status read it."""

from __future__ import annotations

import typing
from pathlib import Path

import attrs
import pytest

import microvlm
from microvlm_datasets.catalogue import CATALOGUE, DEFAULT_DATA_ROOT, DatasetInfo
from microvlm_datasets.status import rows, status

DIST = "microvlm-datasets"


def test_what_is_registered_is_the_catalogue(plugins: microvlm.Plugins) -> None:
    registered = {c.name: c for c in plugins.components("dataset") if c.distribution == DIST}
    assert set(registered) == set(CATALOGUE)
    for name, info in CATALOGUE.items():
        assert registered[name].config_cls is info.config_cls
        assert registered[name].description == info.description


@pytest.mark.parametrize("info", CATALOGUE.values(), ids=list(CATALOGUE))
def test_folders_come_from_the_config_defaults(info: DatasetInfo) -> None:
    fields = attrs.fields_dict(info.config_cls)
    assert Path(DEFAULT_DATA_ROOT, info.folder).as_posix() == fields["root"].default
    if info.image_folder:
        assert Path(DEFAULT_DATA_ROOT, info.image_folder).as_posix() == fields["image_root"].default


@pytest.mark.parametrize(
    "info", [i for i in CATALOGUE.values() if i.splits and i.has_split], ids=lambda i: i.name
)
def test_reported_splits_are_splits_the_config_accepts(info: DatasetInfo) -> None:
    accepted = typing.get_args(typing.get_type_hints(info.config_cls)["split"])
    assert set(info.splits) <= set(accepted), f"{info.name}: {info.splits} vs {accepted}"


def test_status_rows_are_built_from_the_catalogue(tmp_path: Path) -> None:
    vqa = CATALOGUE["vqav2"]
    assert rows(vqa, tmp_path / "vqa", tmp_path) == [
        (s, {"root": str(tmp_path / "vqa"), "image_root": str(tmp_path / "coco"), "split": s})
        for s in ("train", "val", "test")
    ]
    llava = CATALOGUE["llava_instruct"]  # one conversations file: no split setting
    assert rows(llava, tmp_path / "llava", tmp_path) == [
        ("train", {"root": str(tmp_path / "llava"), "image_root": str(tmp_path / "coco" / "train2017")})
    ]


def test_status_looks_for_every_catalogued_dataset_with_a_folder(tmp_path: Path) -> None:
    report = status(tmp_path)
    listed = [d["name"] for d in report["datasets"]]
    expected = [name for name, info in CATALOGUE.items() if info.report != "none"] + ["shapes"]
    assert listed == expected
    folders = {d["name"]: d["folder"] for d in report["datasets"]}
    assert folders["vqav2"] == str(tmp_path / "vqa") and folders["llava_instruct"] == str(tmp_path / "llava")
