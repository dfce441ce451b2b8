"""A catalogue file marked ``manual`` (OCR-VQA's dataset.json, on a Google Drive page) is only
checked for: fetching its ``url`` would save that page's HTML under the file's name."""

from __future__ import annotations

from pathlib import Path

from microvlm_datasets.download.engine import download
from microvlm_datasets.download.sources import DatasetSource, RemoteFile, WebImages

PAGE = "http://127.0.0.1:9/drive-folder"  # a closed port: any fetch attempt fails differently


def _source(web: bool) -> DatasetSource:
    listed = RemoteFile(
        url=PAGE, path="dataset.json", size=None, cite="https://example.org/readme", manual=True
    )
    if web:
        images = WebImages(
            urls=listed, url_col="url", caption_col="title", input_format="json", cite="https://example.org"
        )
        return DatasetSource(
            name="hand", datasets=("ocrvqa",), folder="ocrvqa", description="d", licence="l", web=images
        )
    return DatasetSource(
        name="hand", datasets=("ocrvqa",), folder="ocrvqa", description="d", licence="l", files=(listed,)
    )


def test_a_missing_manual_file_is_reported_not_fetched(tmp_path: Path) -> None:
    for web in (False, True):
        [summary] = download([_source(web)], tmp_path, progress=False, check_disk=False)
        assert summary.status == "failed"
        assert any("placed by hand" in e and PAGE in e for e in summary.errors), summary.errors
        assert not (tmp_path / "ocrvqa" / "dataset.json").exists()


def test_a_manual_file_in_place_counts_as_present(tmp_path: Path) -> None:
    (tmp_path / "ocrvqa").mkdir()
    (tmp_path / "ocrvqa" / "dataset.json").write_text("{}")
    [summary] = download([_source(False)], tmp_path, progress=False, check_disk=False)
    assert summary.status == "complete" and summary.present == 1 and summary.fetched == 0
