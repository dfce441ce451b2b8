"""fetch_file against a local server: resume with Range, verification, retries, 404s, timeouts."""

from __future__ import annotations

import hashlib
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

from microvlm_datasets.download.http import DownloadError, apply_mirrors, destination, fetch_file
from microvlm_datasets.download.sources import RemoteFile

#: tests/servers.py, run by path (the suite uses --import-mode=importlib, so test modules cannot import it)
servers = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("servers.py"))))
BLOB = bytes(range(256)) * 1000  # 256,000 bytes: several read chunks
SHA = hashlib.sha256(BLOB).hexdigest()
MD5 = hashlib.md5(BLOB).hexdigest()


def no_sleep(_: float) -> None:
    pass


@pytest.fixture
def served(tmp_path: Path) -> Path:
    root = tmp_path / "served"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "blob.bin").write_bytes(BLOB)
    return root


def remote(server, path: str = "sub/blob.bin", **kw) -> RemoteFile:
    kw.setdefault("size", len(BLOB))
    kw.setdefault("sha256", SHA)
    return RemoteFile(
        url=server.url(path), path=kw.pop("dest", "got/blob.bin"), cite="https://example.org/page", **kw
    )


def test_downloads_verifies_and_skips_a_finished_file(served: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with servers.file_server(served) as server:
        first = fetch_file(remote(server, md5=MD5), out, sleep=no_sleep)
        second = fetch_file(remote(server, md5=MD5), out, sleep=no_sleep)
        assert server.requests["sub/blob.bin"] == 1  # the second call sent nothing
    assert first.status == "downloaded" and first.fetched == len(BLOB)
    assert second.status == "present" and second.requests == 0
    assert (out / "got" / "blob.bin").read_bytes() == BLOB
    assert not (out / "got" / "blob.bin.part").exists()


def test_a_cut_transfer_resumes_with_range(served: Path, tmp_path: Path) -> None:
    with servers.file_server(served, cut={"sub/blob.bin": 100_000}) as server:
        result = fetch_file(remote(server), tmp_path, sleep=no_sleep)
        assert server.ranges == [("sub/blob.bin", None), ("sub/blob.bin", "bytes=100000-")]
    assert result.status == "downloaded" and result.requests == 2
    assert (tmp_path / "got" / "blob.bin").read_bytes() == BLOB


def test_a_part_file_from_an_earlier_run_is_resumed(served: Path, tmp_path: Path) -> None:
    (tmp_path / "got").mkdir()
    (tmp_path / "got" / "blob.bin.part").write_bytes(BLOB[:12345])
    with servers.file_server(served) as server:
        result = fetch_file(remote(server), tmp_path, sleep=no_sleep)
        assert server.ranges == [("sub/blob.bin", "bytes=12345-")]
    assert result.status == "resumed" and result.fetched == len(BLOB) - 12345
    assert (tmp_path / "got" / "blob.bin").read_bytes() == BLOB


def test_a_server_ignoring_range_restarts_from_zero(served: Path, tmp_path: Path) -> None:
    (tmp_path / "got").mkdir()
    (tmp_path / "got" / "blob.bin.part").write_bytes(b"stale bytes that must not stay")
    with servers.file_server(served, ignore_range={"sub/blob.bin"}) as server:
        result = fetch_file(remote(server), tmp_path, sleep=no_sleep)
    assert result.status == "downloaded" and result.fetched == len(BLOB)
    assert (tmp_path / "got" / "blob.bin").read_bytes() == BLOB


def test_a_complete_part_file_is_finished_on_416(served: Path, tmp_path: Path) -> None:
    (tmp_path / "got").mkdir()
    (tmp_path / "got" / "blob.bin.part").write_bytes(BLOB)
    with servers.file_server(served) as server:
        result = fetch_file(remote(server), tmp_path, sleep=no_sleep)
    assert result.fetched == 0 and (tmp_path / "got" / "blob.bin").read_bytes() == BLOB


def test_404_names_the_url_and_the_cite(served: Path, tmp_path: Path) -> None:
    with servers.file_server(served, missing={"sub/blob.bin"}) as server:
        with pytest.raises(DownloadError, match=r"404.*https://example.org/page") as info:
            fetch_file(remote(server), tmp_path, sleep=no_sleep)
        assert server.url("sub/blob.bin") in str(info.value)
        assert server.requests["sub/blob.bin"] == 1  # not retried


def test_a_wrong_checksum_deletes_the_part_file(served: Path, tmp_path: Path) -> None:
    expected = f"sha256 mismatch: expected {SHA}, got [0-9a-f]{{64}}"
    with (
        servers.file_server(served, corrupt={"sub/blob.bin"}) as server,
        pytest.raises(DownloadError, match=expected),
    ):
        fetch_file(remote(server), tmp_path, sleep=no_sleep)
    assert not (tmp_path / "got" / "blob.bin.part").exists()
    assert not (tmp_path / "got" / "blob.bin").exists()


def test_a_wrong_md5_is_refused(served: Path, tmp_path: Path) -> None:
    with servers.file_server(served) as server, pytest.raises(DownloadError, match="md5 mismatch"):
        fetch_file(remote(server, sha256=None, md5="0" * 32), tmp_path, sleep=no_sleep)


def test_a_wrong_size_is_refused(served: Path, tmp_path: Path) -> None:
    expected = f"expected {len(BLOB) - 1} bytes, got {len(BLOB)}"
    with servers.file_server(served) as server, pytest.raises(DownloadError, match=expected):
        fetch_file(remote(server, size=len(BLOB) - 1, sha256=None), tmp_path, sleep=no_sleep)
    assert not (tmp_path / "got" / "blob.bin.part").exists()


def test_5xx_is_retried_with_exponential_backoff(served: Path, tmp_path: Path) -> None:
    waits: list[float] = []
    with servers.file_server(served, flaky={"sub/blob.bin": 3}) as server:
        result = fetch_file(remote(server), tmp_path, sleep=waits.append, backoff=0.5)
    assert waits == [0.5, 1.0, 2.0] and result.requests == 4


def test_retries_run_out(served: Path, tmp_path: Path) -> None:
    with servers.file_server(served, flaky={"sub/blob.bin": 99}) as server:
        with pytest.raises(DownloadError, match=r"gave up after 3 attempts.*503"):
            fetch_file(remote(server), tmp_path, sleep=no_sleep, retries=2)
        assert server.requests["sub/blob.bin"] == 3


def test_a_slow_file_times_out_then_is_retried(served: Path, tmp_path: Path) -> None:
    waits: list[float] = []
    with servers.file_server(served, slow={"sub/blob.bin": 0.5}) as server:
        with pytest.raises(DownloadError, match=r"gave up after 2 attempts.*[Tt]imeout"):
            fetch_file(remote(server), tmp_path, sleep=waits.append, retries=1, timeout=0.1)
        assert server.requests["sub/blob.bin"] == 2 and len(waits) == 1
        server.slow.clear()
        assert fetch_file(remote(server), tmp_path, sleep=no_sleep, timeout=5).status == "downloaded"


def test_mirrors_replace_the_longest_prefix() -> None:
    mirrors = {"http://a.org": "http://127.0.0.1:1/a", "http://a.org/deep": "http://127.0.0.1:1/d"}
    assert apply_mirrors("http://a.org/deep/x.zip", mirrors) == "http://127.0.0.1:1/d/x.zip"
    assert apply_mirrors("http://a.org/x.zip", mirrors) == "http://127.0.0.1:1/a/x.zip"
    assert apply_mirrors("http://b.org/x.zip", mirrors) == "http://b.org/x.zip"


@pytest.mark.parametrize("bad", ["../escape.bin", "/abs/path.bin", "a/../../b"])
def test_catalogue_paths_cannot_leave_the_folder(tmp_path: Path, bad: str) -> None:
    """The catalogue validates paths too; the engine refuses them again before writing."""
    with pytest.raises(DownloadError, match="relative path without"):
        destination(tmp_path / "in", bad)
