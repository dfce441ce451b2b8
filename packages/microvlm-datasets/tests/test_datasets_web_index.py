"""Web shards are indexed, not held: the tar-header reader, references into the tars, compatibility
with webdataset's own writer and reader, damaged and compressed shards, parallel indexing."""

from __future__ import annotations

import gzip
import io
import json
import pickle
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from microvlm_datasets.builders import tarindex

Build = Callable[..., Any]


def _tar(path: Path, members: list[tuple[str, bytes]], fmt: int = tarfile.PAX_FORMAT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _shard(path: Path, jpeg: bytes, keys: list[str], fmt: int = tarfile.USTAR_FORMAT) -> Path:
    """img2dataset's layout: ``{key}.jpg``, ``{key}.json``, ``{key}.txt`` per sample (TarWriter's order)."""
    members = []
    for key in keys:
        meta = {
            "url": f"http://example.com/{key}.jpg",
            "key": key,
            "status": "success",
            "width": 8,
            "height": 6,
        }
        members += [
            (f"{key}.jpg", jpeg),
            (f"{key}.json", json.dumps(meta).encode()),
            (f"{key}.txt", key.encode()),
        ]
    return _tar(path, members, fmt)


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_header_reader_agrees_with_tarfile(tmp_path: Path, fmt: int) -> None:
    long = "d" * 120 + "/" + "k" * 90 + ".jpg"  # beyond the 100-byte name field: prefix, LongLink or pax
    names = (
        ["a.jpg", "sub/b.txt", long]
        if fmt != tarfile.USTAR_FORMAT
        else ["a.jpg", "sub/b.txt", "p" * 60 + "/q.json"]
    )
    path = tmp_path / "x.tar"
    with tarfile.open(path, "w", format=fmt) as tar:
        folder = tarfile.TarInfo("sub")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for k, name in enumerate(names):
            info = tarfile.TarInfo(name)
            info.size = 700 * k + 3
            tar.addfile(info, io.BytesIO(bytes(info.size)))
    with tarfile.open(path) as tar:
        expected = [(m.name, m.offset_data, m.size) for m in tar if m.isfile()]
    with path.open("rb") as f:
        assert list(tarindex.scan(f, path.stat().st_size)) == expected


def test_header_reader_reports_truncation_and_foreign_files(tmp_path: Path) -> None:
    path = _tar(tmp_path / "x.tar", [("a.jpg", bytes(600)), ("b.jpg", bytes(600))], tarfile.USTAR_FORMAT)
    data = path.read_bytes()
    path.write_bytes(data[:2100])  # inside b.jpg's data (its header is bytes 1536..2047)
    with path.open("rb") as f, pytest.raises(tarindex.TruncatedTar, match=r"inside b\.jpg"):
        for name, _, _ in tarindex.scan(f, 2100):
            assert name == "a.jpg"
    path.write_bytes(b"<html>404</html>" * 64)
    with path.open("rb") as f, pytest.raises(tarindex.UnsupportedTar):
        list(tarindex.scan(f, path.stat().st_size))


def test_samples_reference_the_tar_instead_of_holding_images(
    tmp_path: Path, build: Build, jpeg_bytes
) -> None:
    jpeg = jpeg_bytes((64, 48))
    keys = [f"{i:09d}" for i in range(40)]
    _shard(tmp_path / "00000.tar", jpeg, keys)
    builder = build("webdataset", root=tmp_path)
    sample = builder[3]
    assert sample.id == keys[3] and sample.captions == (keys[3],)
    assert sample.image.data == b"" and sample.image.member == f"{keys[3]}.jpg"
    assert sample.image.path == str(tmp_path / "00000.tar") and sample.image.length == len(jpeg)
    assert sample.image.read_bytes() == jpeg and sample.image.open().size == (64, 48)
    assert sample.image.size == (8, 6) and sample.meta["url"].endswith(f"{keys[3]}.jpg")  # from the json
    # The index holds where the images are, not their bytes: far less than one image per sample.
    per_sample = len(pickle.dumps(builder.records())) / len(builder)
    assert per_sample < 100 < len(jpeg), per_sample


def test_img2dataset_shards_written_by_webdataset_read_the_same(
    tmp_path: Path, build: Build, jpeg_bytes
) -> None:
    """Shards as img2dataset writes them through webdataset's TarWriter (pax headers) index exactly,
    and webdataset's reader sees the same keys and bytes in our shapes shards."""
    wds = pytest.importorskip("webdataset")
    jpeg = jpeg_bytes()
    with wds.TarWriter(str(tmp_path / "00000.tar")) as writer:
        for i in range(3):
            key = f"00000000{i}"
            writer.write(
                {
                    "__key__": key,
                    "jpg": jpeg,
                    "txt": f"caption {i}",
                    "json": {"key": key, "width": 8, "height": 6},
                }
            )
    samples = list(build("webdataset", root=tmp_path))
    assert [s.captions[0] for s in samples] == ["caption 0", "caption 1", "caption 2"]
    assert all(s.image.read_bytes() == jpeg and s.image.size == (8, 6) for s in samples)


def test_webdataset_reader_agrees_on_the_shapes_shards(shapes_dir: Path, build: Build) -> None:
    wds = pytest.importorskip("webdataset")
    ours = list(build("webdataset", root=shapes_dir / "shards", split="val"))
    shard = str(shapes_dir / "shards" / "val" / "00000.tar")
    theirs = list(wds.WebDataset(shard, shardshuffle=False))
    assert [s["__key__"] for s in theirs] == [s.id for s in ours]
    assert [s["jpg"] for s in theirs] == [s.image.read_bytes() for s in ours]
    assert [s["txt"].decode() for s in theirs] == [s.captions[0] for s in ours]


def test_malformed_samples_and_damaged_shards_are_skipped_and_counted(
    tmp_path: Path, build: Build, jpeg_bytes
) -> None:
    jpeg = jpeg_bytes((32, 32))
    _tar(
        tmp_path / "00000.tar",
        [("000.jpg", jpeg), ("000.txt", b"ok"), ("001.txt", b"no image"), ("002.jpg", b"")],
    )
    damaged = _shard(tmp_path / "00001.tar", jpeg, ["100", "101", "102"])
    with tarfile.open(damaged) as tar:
        cut = tar.getmember("101.json").offset_data + 5
    damaged.write_bytes(damaged.read_bytes()[:cut])  # inside the second sample's metadata
    (tmp_path / "00002.tar").write_bytes(b"<html>404 not found</html>")
    builder = build("webdataset", root=tmp_path)
    assert [s.id for s in builder] == ["000", "100"]  # the damage cut sample 101: it is left out too
    assert builder.skipped == {"malformed": 2, "bad_shard": 2}
    assert any("001" in e for e in builder.skipped_examples["malformed"])
    assert [Path(s).name for s, _ in builder.bad_shards] == ["00001.tar", "00002.tar"]


def test_compressed_shards_are_read_into_memory(tmp_path: Path, build: Build, jpeg_bytes) -> None:
    plain = _shard(tmp_path / "plain" / "00000.tar", jpeg_bytes(), ["000", "001"])
    (tmp_path / "gz").mkdir()
    (tmp_path / "gz" / "00000.tar").write_bytes(gzip.compress(plain.read_bytes()))
    (sample, _) = list(build("webdataset", root=tmp_path / "gz"))
    assert sample.image.data == jpeg_bytes() and sample.captions == ("000",) and sample.meta["key"] == "000"


def test_parallel_indexing_gives_the_serial_index(tmp_path: Path, build: Build, jpeg_bytes) -> None:
    for s in range(17):
        _shard(tmp_path / f"{s:05d}.tar", jpeg_bytes(), [f"{s:05d}{i:02d}" for i in range(3)])
    (tmp_path / "00005.tar").write_bytes(b"not a tar")
    serial = build("webdataset", root=tmp_path, index_workers=1)
    parallel = build("webdataset", root=tmp_path, index_workers=2)
    assert len(serial) == len(parallel) == 48
    assert [serial[i] for i in range(48)] == [parallel[i] for i in range(48)]
    assert serial.skipped == parallel.skipped == {"bad_shard": 1}
