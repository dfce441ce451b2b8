"""extract_archive: zip and tar unpacked once; hostile members refused before anything is written."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from microvlm_datasets.download.extract import UnsafeArchiveError, extract_archive, is_extracted, marker_path


def make_zip(path: Path, members: dict[str, bytes], *, symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink is not None:
            info = zipfile.ZipInfo("link")
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, symlink)
    return path


def make_tar(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> Path:
    data = data or {}
    with tarfile.open(path, "w:gz") as tf:
        for info in members:
            body = data.get(info.name)
            if body is not None:
                info.size = len(body)
            tf.addfile(info, io.BytesIO(body) if body is not None else None)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o644
    return info


def test_zip_extracts_once(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "a.zip", {"annotations/x.json": b"{}", "images/1.jpg": b"jpg"})
    into = tmp_path / "out"
    assert extract_archive(archive, into) is True
    assert (into / "annotations" / "x.json").read_bytes() == b"{}"
    (into / "images" / "1.jpg").write_bytes(b"edited")  # a second call must not overwrite it
    assert extract_archive(archive, into) is False
    assert (into / "images" / "1.jpg").read_bytes() == b"edited"
    assert is_extracted(archive, into) and marker_path(archive, into).is_file()


def test_a_changed_archive_is_extracted_again(tmp_path: Path) -> None:
    into = tmp_path / "out"
    extract_archive(make_zip(tmp_path / "a.zip", {"x.txt": b"one"}), into)
    extract_archive(make_zip(tmp_path / "a.zip", {"x.txt": b"second"}), into)
    assert (into / "x.txt").read_bytes() == b"second"


def test_tar_gz_with_an_inner_symlink_extracts(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "a.tar.gz",
        [member("d/file.txt"), member("d/alias.txt", tarfile.SYMTYPE, "file.txt")],
        {"d/file.txt": b"hello"},
    )
    into = tmp_path / "out"
    assert extract_archive(archive, into)
    assert (into / "d" / "alias.txt").read_bytes() == b"hello"


HOSTILE_TARS = {
    "dotdot": ([member("../evil.txt")], "'..'"),
    "absolute": ([member("/tmp/evil.txt")], "absolute path"),
    "symlink-out": ([member("d/link", tarfile.SYMTYPE, "../../outside")], "leaves the folder"),
    "symlink-absolute": ([member("link", tarfile.SYMTYPE, "/etc/passwd")], "is absolute"),
    "hardlink-out": ([member("hl", tarfile.LNKTYPE, "../outside.txt")], "hard link.*leaves the folder"),
    "hardlink-absolute": ([member("hl", tarfile.LNKTYPE, "/etc/passwd")], "hard link.*absolute"),
    "char-device": ([member("dev", tarfile.CHRTYPE)], "device"),
    "block-device": ([member("blk", tarfile.BLKTYPE)], "device"),
    "fifo": ([member("fifo", tarfile.FIFOTYPE)], "FIFO"),
}


@pytest.mark.parametrize("case", list(HOSTILE_TARS))
def test_hostile_tar_is_refused_and_writes_nothing(tmp_path: Path, case: str) -> None:
    members, message = HOSTILE_TARS[case]
    archive = make_tar(tmp_path / "bad.tar.gz", [member("good.txt"), *members], {"good.txt": b"ok"})
    into = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match=message):
        extract_archive(archive, into)
    assert not (into / "good.txt").exists() and not marker_path(archive, into).exists()
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "outside").exists()


@pytest.mark.parametrize(
    ("name", "message"), [("../evil.txt", "'..'"), ("/abs.txt", "absolute"), ("a/../../evil.txt", "'..'")]
)
def test_hostile_zip_names_are_refused(tmp_path: Path, name: str, message: str) -> None:
    archive = make_zip(tmp_path / "bad.zip", {"good.txt": b"ok", name: b"x"})
    with pytest.raises(UnsafeArchiveError, match=message):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "good.txt").exists() and not (tmp_path / "evil.txt").exists()


def test_zip_symlinks_are_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "bad.zip", {"good.txt": b"ok"}, symlink="../../etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        extract_archive(archive, tmp_path / "out")


def test_not_an_archive(tmp_path: Path) -> None:
    (tmp_path / "x.zip").write_bytes(b"not an archive at all")
    with pytest.raises(Exception, match="neither a zip nor a tar"):
        extract_archive(tmp_path / "x.zip", tmp_path / "out")
