"""Archives unpacked once and safely: zip, tar, tar.gz / tgz (and the other tar compressions).

Every member is checked before anything is written, so a hostile archive leaves nothing behind:
absolute names, ``..`` components, links whose target leaves the destination (symbolic or hard),
and device files, FIFOs or other special members are refused (the "zip slip" / tar path
traversal class, CVE-2007-4559). Tar extraction then also runs under the standard library's
``"data"`` filter (PEP 706, https://peps.python.org/pep-0706/), which enforces the same rules.
A marker file beside the members records the archive's name and size, so a rerun with the same
archive does nothing; the marker is written last, so a run killed mid-extraction extracts again.

References: https://docs.python.org/3/library/tarfile.html#extraction-filters,
https://docs.python.org/3/library/zipfile.html (``ZipInfo.external_attr`` holds the Unix mode).
"""

from __future__ import annotations

import json
import logging
import os
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from microvlm_datasets.download.http import DownloadError

log = logging.getLogger(__name__)

MARKER_PREFIX = ".extracted-"  # + archive name: the marker file in the destination


class UnsafeArchiveError(DownloadError):
    """An archive member that would write outside the destination or is not a plain file."""


def marker_path(archive: Path, into: Path) -> Path:
    """The marker that records ``archive`` as extracted into ``into``."""
    return into / f"{MARKER_PREFIX}{archive.name}.json"


def is_extracted(archive: Path, into: Path) -> bool:
    """Whether ``archive`` (same name and size) was extracted into ``into`` to the end."""
    marker = marker_path(archive, into)
    if not marker.is_file():
        return False
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return record.get("size") == archive.stat().st_size


def extract_archive(archive: Path, into: Path) -> bool:
    """Unpack ``archive`` into ``into`` unless its marker says it already was.

    :returns: True when it extracted, False when the marker showed it done.
    :raises UnsafeArchiveError: a member is absolute, has ``..``, is a link leaving ``into``,
        or is a device / FIFO; nothing is written then.
    :raises DownloadError: not a zip or tar archive.
    """
    if is_extracted(archive, into):
        log.debug("%s already extracted into %s", archive, into)
        return False
    into.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        count = _extract_zip(archive, into)
    elif tarfile.is_tarfile(archive):
        count = _extract_tar(archive, into)
    else:
        raise DownloadError(f"{archive} is neither a zip nor a tar archive")
    record = {"archive": archive.name, "size": archive.stat().st_size, "members": count}
    marker = marker_path(archive, into)
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(json.dumps(record), encoding="utf-8")
    os.replace(tmp, marker)
    log.info("extracted %d members of %s into %s", count, archive.name, into)
    return True


def _check_name(archive: Path, name: str) -> PurePosixPath:
    """The member's path relative to the destination, or UnsafeArchiveError."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or name.startswith(("/", "\\")) or (path.parts and ":" in path.parts[0]):
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} has an absolute path; refused")
    if ".." in path.parts:
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} has a '..' component; refused")
    return path


def _check_link(archive: Path, name: PurePosixPath, target: str, *, hard: bool) -> None:
    """A link target must stay inside the destination (a hard link's is relative to the root)."""
    kind = "hard link" if hard else "symbolic link"
    target_path = PurePosixPath(target)
    if target_path.is_absolute():
        raise UnsafeArchiveError(f"{archive.name}: {kind} {str(name)!r} -> {target!r} is absolute; refused")
    base = PurePosixPath() if hard else name.parent
    depth = 0
    for part in (*base.parts, *target_path.parts):
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 0:
            raise UnsafeArchiveError(
                f"{archive.name}: {kind} {str(name)!r} -> {target!r} leaves the folder; refused"
            )


def _extract_zip(archive: Path, into: Path) -> int:
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for info in members:
            _check_name(archive, info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                # zipfile would write the link's target as a file's text: refuse rather than guess.
                raise UnsafeArchiveError(
                    f"{archive.name}: member {info.filename!r} is a symbolic link; refused"
                )
            if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: no type recorded
                raise UnsafeArchiveError(
                    f"{archive.name}: member {info.filename!r} is not a plain file; refused"
                )
        zf.extractall(into)
    return len(members)


def _extract_tar(archive: Path, into: Path) -> int:
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for member in members:
            path = _check_name(archive, member.name)
            if member.issym() or member.islnk():
                _check_link(archive, path, member.linkname, hard=member.islnk())
            elif not (member.isfile() or member.isdir()):
                raise UnsafeArchiveError(
                    f"{archive.name}: member {member.name!r} is a device, FIFO or other special file; refused"
                )
        tf.extractall(into, members=members, filter="data")
    return len(members)


__all__ = ["UnsafeArchiveError", "extract_archive", "is_extracted", "marker_path"]
