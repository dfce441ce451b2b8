"""fetch_hub against a fake hub on 127.0.0.1 (HF_ENDPOINT): a small dataset repo, patterns, a gated repo."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

from microvlm_datasets.download.http import DownloadError
from microvlm_datasets.download.hub import fetch_hub
from microvlm_datasets.download.sources import HubFiles

#: tests/servers.py, run by path (the suite uses --import-mode=importlib, so test modules cannot import it)
servers = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("servers.py"))))
FILES = {
    "README.md": b"# a tiny dataset\n",
    "data/train-00000-of-00001.jsonl": b'{"a": 1}\n',
    "data/val-00000-of-00001.jsonl": b'{"a": 2}\n',
}


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    repos = {
        ("dataset", "someone/tiny"): servers.HubRepo(FILES),
        ("dataset", "someone/gated"): servers.HubRepo(FILES, gated=True, token="hf_good"),
    }
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    with servers.fake_hub(repos) as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.base)
        yield fake


def test_snapshot_of_a_small_repo(hub, tmp_path: Path) -> None:
    result = fetch_hub(HubFiles(repo_id="someone/tiny", cite="https://example.org", path="hub"), tmp_path)
    assert result.path == (tmp_path / "hub").resolve()
    assert set(result.files) == set(FILES)
    for name, data in FILES.items():
        assert (tmp_path / "hub" / name).read_bytes() == data
    gets = [p for m, p in hub.requests if m == "GET" and "/resolve/" in p]
    assert len(gets) == len(FILES)
    fetch_hub(HubFiles(repo_id="someone/tiny", cite="https://example.org", path="hub"), tmp_path)
    assert len([p for m, p in hub.requests if m == "GET" and "/resolve/" in p]) == len(FILES)  # none again


def test_patterns_select_files(hub, tmp_path: Path) -> None:
    spec = HubFiles(repo_id="someone/tiny", cite="https://example.org", patterns=("data/train-*",))
    result = fetch_hub(spec, tmp_path)
    assert result.files == ("data/train-00000-of-00001.jsonl",)


def test_a_gated_repo_names_the_dataset_page(hub, tmp_path: Path) -> None:
    spec = HubFiles(repo_id="someone/gated", cite="https://example.org", gated=True)
    with pytest.raises(
        DownloadError,
        match=r"401.*accept the dataset's terms at https://huggingface.co/datasets/someone/gated",
    ):
        fetch_hub(spec, tmp_path)
    with pytest.raises(DownloadError, match="the token was refused"):
        fetch_hub(spec, tmp_path, token="hf_wrong")
    assert set(fetch_hub(spec, tmp_path, token="hf_good").files) == set(FILES)


def test_hf_token_is_used(hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_good")
    spec = HubFiles(repo_id="someone/gated", cite="https://example.org", gated=True)
    assert set(fetch_hub(spec, tmp_path).files) == set(FILES)


def test_a_missing_repo_is_named(hub, tmp_path: Path) -> None:
    with pytest.raises(
        DownloadError, match=r"someone/withdrawn: repository not found.*datasets/someone/withdrawn"
    ):
        fetch_hub(HubFiles(repo_id="someone/withdrawn", cite="https://example.org"), tmp_path)
