"""Listing the files of an uncompressed tar from its headers alone: ``(name, data offset, size)``.

Indexing millions of web-shard samples with :mod:`tarfile` costs tens of microseconds per
member (it decodes every header field and keeps a ``TarInfo`` per member). This reader takes
only what an index needs — the name (POSIX ``prefix``, GNU ``././@LongLink`` and pax ``path``
included), the size (pax ``size`` included) and where the data starts — reads one 512-byte
header per member and seeks over the data. The offsets equal ``TarInfo.offset_data``.

A header it does not understand (no ``ustar`` magic, a base-256 size, a sparse file, a bad
checksum in the first header) raises :class:`UnsupportedTar`; callers then read the file with :mod:`tarfile`.
A file that ends inside a header or a member's data raises :class:`TruncatedTar` after the
complete members before it have been listed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

BLOCK = 512
FILE_TYPES = (b"0", b"\x00", b"7")  # regular file, old regular file, contiguous file
SKIPPED_TYPES = (b"1", b"2", b"3", b"4", b"5", b"6", b"g")  # links, devices, folders, fifos, global pax


class UnsupportedTar(ValueError):
    """A header this reader does not parse; read the file with :mod:`tarfile` instead."""


class TruncatedTar(EOFError):
    """The file ends inside a header or a member's data."""


def _octal(field: bytes, what: str) -> int:
    if field[:1] and field[0] & 0x80:
        raise UnsupportedTar(f"base-256 {what}")
    text = field.split(b"\x00", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise UnsupportedTar(f"invalid {what} field {field!r}") from None


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _pax(data: bytes) -> dict[str, str]:
    """pax extended header records: ``"%d %s=%s\\n" % (length, key, value)``."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos : pos + 1] != b"\x00":
        space = data.find(b" ", pos)
        if space < 0:
            raise UnsupportedTar("malformed pax header")
        length = int(data[pos:space])
        key, _, value = data[space + 1 : pos + length - 1].partition(b"=")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def scan(f: BinaryIO, file_size: int) -> Iterator[tuple[str, int, int]]:
    """``(name, data offset, data size)`` of each regular file of the tar ``f``, in order."""
    pos = 0
    long_name: str | None = None
    pax: dict[str, str] = {}
    while True:
        f.seek(pos)
        header = f.read(BLOCK)
        if len(header) < BLOCK:
            if pos == 0:
                raise UnsupportedTar("shorter than one tar header")
            if header.strip(b"\x00"):
                raise TruncatedTar(f"the file ends inside the header at byte {pos}")
            return  # no end-of-archive blocks: tolerated, as tarfile does
        if not header.strip(b"\x00"):
            return  # end of archive
        if header[257:262] != b"ustar":
            raise UnsupportedTar(f"no ustar magic in the header at byte {pos}")
        # The checksum of the first header tells a tar from another file; later headers are
        # trusted on their magic (a damaged one lacks it, and tarfile then reports the damage).
        if pos == 0 and _octal(header[148:156], "checksum") != sum(header[:148]) + 256 + sum(header[156:]):
            raise UnsupportedTar("bad header checksum at byte 0")  # 256: the checksum field as 8 spaces
        size = _octal(header[124:136], "size")
        kind = header[156:157]
        data = pos + BLOCK
        if kind in (b"L", b"x"):  # the next member's long name / extended header
            f.seek(data)
            body = f.read(size)
            if len(body) < size:
                raise TruncatedTar(f"the file ends inside the extended header at byte {pos}")
            if kind == b"L":
                long_name = body.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
            else:
                pax = _pax(body)
        elif kind in FILE_TYPES:
            if "size" in pax:
                size = int(pax["size"])
            name = header[:100].split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
            if header[257:263] == b"ustar\x00":  # POSIX: a prefix before the name
                prefix = header[345:500].split(b"\x00", 1)[0]
                if prefix:
                    name = prefix.decode("utf-8", "surrogateescape") + "/" + name
            name = pax.get("path", long_name or name)
            if data + size > file_size:
                raise TruncatedTar(f"the file ends inside {name} ({size} bytes at {data})")
            yield name, data, size
            long_name, pax = None, {}
        elif kind in SKIPPED_TYPES:
            long_name, pax = None, {}
        else:
            raise UnsupportedTar(f"member type {kind!r} at byte {pos}")
        pos = data + _padded(size)
