"""The download catalogue (download/catalogue/*.toml): it loads, every entry is held to the
DataSource contract, lands in its builders' default folders (read from the builders' configs,
not written down twice) and brings the images its builders read; a bad file is refused with
its name and the field."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

import microvlm
from microvlm.testing.conformance import check_component
from microvlm_datasets.catalogue import CATALOGUE
from microvlm_datasets.download.sources import (
    GROUPS,
    CatalogueError,
    DatasetSource,
    RemoteFile,
    load_catalogue,
)

SOURCES = load_catalogue()


def _top(path: str) -> str:
    return PurePosixPath(path).parts[0] if path else ""


def test_the_catalogue_covers_what_the_seed_downloads() -> None:
    fed = {d for s in SOURCES.values() for d in s.datasets}
    assert set(CATALOGUE) - {"webdataset", "shapes"} <= fed  # every real dataset has a source
    assert all(isinstance(s, DatasetSource) for s in SOURCES.values())


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_registered_source_passes_the_kit(name: str, plugins: microvlm.Plugins) -> None:
    component = plugins.get("source", name)
    assert component.distribution == "microvlm-datasets"
    assert check_component(component) == SOURCES[name]


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_a_source_lands_in_the_default_folder_of_each_builder_it_feeds(name: str) -> None:
    source = SOURCES[name]
    for dataset in source.datasets:
        info = CATALOGUE[dataset]  # an unknown builder name fails here
        folders = {info.folder, info.image_folder, _top(info.image_folder)} - {""}
        assert source.folder in folders, f"{name} lands in {source.folder}/, {dataset} reads {folders}"


@pytest.mark.parametrize("dataset", sorted(set(CATALOGUE) - {"webdataset", "shapes"}))
def test_downloading_a_dataset_brings_its_images(dataset: str) -> None:
    """The sources a dataset's own source needs cover the builder's default image folder."""
    from microvlm_datasets.download.sources import select_sources

    info = CATALOGUE[dataset]
    chosen = select_sources(SOURCES, [dataset])
    assert any(s.folder == info.folder for s in chosen), f"no source holds {dataset}'s own files"
    if info.image_folder and _top(info.image_folder) != info.folder:
        holders = [s for s in chosen if s.folder == _top(info.image_folder) and dataset in s.datasets]
        assert holders, f"{dataset} reads images from {info.image_folder}/ but nothing chosen puts them there"


def test_the_seed_groups() -> None:
    def group(g: str) -> set[str]:
        return {s.name for s in SOURCES.values() if g in s.groups}

    assert group("pretraining") == {"cc3m", "laion_coco", "sbu"}
    assert group("vqa") == {"vqav2", "okvqa", "aokvqa", "gqa", "ocrvqa"}
    assert group("grounding") == {"refcoco", "refcoco_plus", "refcocog"}
    assert set(GROUPS[:3]) == {"pretraining", "vqa", "grounding"}


def _files(source: DatasetSource) -> list[RemoteFile]:
    web = [source.web.urls] if source.web and isinstance(source.web.urls, RemoteFile) else []
    return [*source.files, *web]


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_url_and_checksum_is_cited(name: str) -> None:
    source = SOURCES[name]
    cites = [f.cite for f in _files(source)] + [h.cite for h in source.hub]
    cites += [source.web.cite] if source.web else []
    assert cites or source.manual_steps, f"{name} fetches nothing and says nothing"
    assert all(c.startswith("http") for c in cites), cites
    for file in _files(source):
        if file.md5 or file.sha256:  # a checksum names where it was read
            assert "md5" in file.cite or "sha256" in file.cite, file
        assert file.url.startswith(("http://", "https://")), file.url
    assert not any(f.manual for f in _files(source)) or source.manual_steps, "a manual file needs steps"


def test_login_and_gating_match_what_status_tells() -> None:
    assert (
        SOURCES["flickr30k"].login == "kaggle"
        and "kaggle datasets download" in SOURCES["flickr30k"].manual_steps
    )
    assert SOURCES["laion_coco"].login == "huggingface" and SOURCES["laion_coco"].gated
    assert SOURCES["ocrvqa"].login == "manual"
    assert not SOURCES["coco2017"].gated and SOURCES["coco2017"].login == ""


# -- refusing bad files ----------------------------------------------------------------------

GOOD = """
name = "mine"
datasets = ["vqav2"]
folder = "vqa"
description = "a test source"
licence = "CC0"

[[files]]
url = "http://127.0.0.1/x.zip"
path = "x.zip"
cite = "http://127.0.0.1/"
"""


def _write(folder: Path, text: str, name: str = "mine") -> Path:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.toml").write_text(text, encoding="utf-8")
    return folder


def test_a_good_file_loads_with_its_size_left_out(tmp_path: Path) -> None:
    source = load_catalogue(_write(tmp_path / "c", GOOD))["mine"]
    assert source.files[0].size is None and source.files[0].md5 is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('cite = "http://127.0.0.1/"', 'cite = "http://127.0.0.1/"\nmd5 = "not-hex"'), "files.0.md5"),
        (('path = "x.zip"', 'path = "../x.zip"'), "files.0.path"),
        (('folder = "vqa"', 'folder = "/abs"'), "folder"),
        (('licence = "CC0"', 'licence = "CC0"\nlicense = "typo"'), "license: unknown key"),
        (('licence = "CC0"', 'licence = "CC0"\ngroups = ["vqa", "nope"]'), "unknown group 'nope'"),
        (('licence = "CC0"', 'licence = "CC0"\nneeds = ["nowhere"]'), "needs: no source 'nowhere'"),
        (('name = "mine"', 'name = "other"'), "must be the file's name"),
        (('cite = "http://127.0.0.1/"', 'cite = ""'), "files.0.cite"),
    ],
)
def test_a_bad_file_is_refused_naming_the_file_and_field(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    folder = _write(tmp_path / "c", GOOD.replace(*change))
    with pytest.raises(CatalogueError, match=r"mine\.toml") as info:
        load_catalogue(folder)
    assert expected in str(info.value)
