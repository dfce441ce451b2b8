"""Web shards as img2dataset writes them (CC3M, LAION-COCO, SBU, or any webdataset of images).

On disk: ``{root}[/{split}]/00000.tar``, ``00001.tar``, ... Each tar holds, per sample,
``{key}.jpg``, ``{key}.txt`` (the caption) and ``{key}.json`` (img2dataset's metadata:
``url``, ``caption``, ``key``, ``status``, ``width``, ``height``, ...), consecutive in the
tar — the member names webdataset's ``TarWriter`` gives a sample ``{"__key__": key, "jpg": ...,
"txt": ..., "json": ...}``, which img2dataset writes through (0.2.x-era and current releases
alike). Beside each shard img2dataset writes ``00000_stats.json`` (``count``, ``successes``,
``failed_to_download``, ...) and ``00000.parquet`` (every URL tried). Failed downloads are
absent from the tars.

**An index, not a stream.** Training reads shards like any other dataset: a list of samples
that a seeded, weighted mixture orders, DataLoader workers decode, and a step counter
restores exactly on resume (``microvlm.train.data``). A webdataset pipeline (shard shuffle,
shuffle buffer, resampling) gives none of that: its order depends on buffer state and the
number of workers, and resuming means replaying or skipping a stream. So this builder
*indexes* the shards instead: it reads the tar headers (the image data is skipped with a
seek) and the small caption/metadata members, and keeps per sample only where the image's
bytes are (shard, ``offset_data``, ``size``) and where its ``.json`` is. A sample's
:class:`~microvlm.data.ImageRef` points into the tar and :meth:`~microvlm.data.ImageRef.open`
reads those bytes with one seek, in the worker; the metadata is read when the sample is
made. The index of all samples is a few flat arrays, not a Python object per sample: about
110 bytes per sample with its caption, and forked workers do not copy it page by page.
Headers are read by :mod:`.tarindex` (about 20 000 samples/s per process), in up to 16
processes when there are many shards.

Members are grouped into samples as webdataset groups them (the key is the member name up
to the first dot of its base name; consecutive members with the same key form one sample,
extensions lower-cased), and tars are read with the standard library, so this builder
depends on no webdataset release: the 0.2.x that img2dataset pulls in and 1.x read the same
files. Compressed tars (``.tar.gz``) cannot be seeked into; their images are
held in memory instead (logged). Bad data is skipped and counted in :attr:`WebShards.skipped`
by reason: ``bad_shard`` (a truncated or non-tar shard: the samples before the damage are
kept), ``malformed`` (a sample without an image member, or an empty one), ``caption is empty``
(a caption member with nothing but white space).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import tarfile
import time
from array import array
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, BinaryIO

from braceexpand import braceexpand

from microvlm.data import ImageRef, Sample
from microvlm_datasets.builders import tarindex
from microvlm_datasets.builders.base import RecordBuilder, missing, require_dir
from microvlm_datasets.config import WebDatasetConfig

logger = logging.getLogger(__name__)

#: webdataset's ``base_plus_ext``: key = everything up to the first dot of the base name.
KEY_RE = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")
SEP = "\x00"  # between the text fields of one record in the packed index
COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ")  # gzip, bzip2, xz magic numbers

#: One tar member: (name, data offset, data size, the data when the tar is compressed else None).
Member = tuple[str, int, int, "bytes | None"]
#: One shard's index, its skipped records ``(reason, where)`` and the problem that cut it short.
ShardResult = tuple["ShardIndex", list[tuple[str, str]], str]
MAX_INDEX_WORKERS = 16  # processes indexing shards in parallel, at most
MIN_PARALLEL_SHARDS = 16  # fewer shards are indexed in this process


def stats_file(shard: str | Path) -> Path:
    """img2dataset's statistics file of a shard: ``00000.tar`` -> ``00000_stats.json``."""
    shard = Path(shard)
    return shard.with_name(shard.name.split(".", 1)[0] + "_stats.json")


class ShardIndex:
    """The samples of many shards in flat arrays: no Python object per sample.

    ``index[i]`` -> ``(shard number, image member, offset, length, json offset, json length,
    key, caption)``; json offset -1 when the sample has no ``.json`` member. Compressed shards
    keep their samples' image and json bytes in ``inline``.
    """

    def __init__(self) -> None:
        self.shard = array("i")  # shard number (into WebShards.shards)
        self.offset = array("q")  # byte offset of the image member's data in the tar
        self.length = array("q")  # byte length of the image member's data
        self.meta_offset = array("q")  # byte offset of the .json member's data; -1 = none
        self.meta_length = array("q")  # byte length of the .json member's data
        self.text_end = array("q")  # end of this record's texts in `texts`
        self._texts = bytearray()  # "key\0image extension\0caption" per record, UTF-8
        self.texts = b""  # frozen copy of _texts (see freeze)
        self.inline: dict[int, tuple[bytes, bytes]] = {}  # record -> (image, json) of compressed shards

    def append(self, shard: int, image: Member, meta: Member | None, key: str, ext: str, caption: str) -> int:
        self.shard.append(shard)
        self.offset.append(image[1])
        self.length.append(image[2])
        self.meta_offset.append(meta[1] if meta else -1)
        self.meta_length.append(meta[2] if meta else 0)
        self._texts += SEP.join((key, ext, caption.replace(SEP, " "))).encode("utf-8", "surrogateescape")
        self.text_end.append(len(self._texts))
        i = len(self.shard) - 1
        if image[3] is not None:
            self.inline[i] = (image[3], meta[3] or b"" if meta else b"")
        return i

    def extend(self, other: ShardIndex, shard: int) -> None:
        """Append the (frozen) records of one shard's index, numbering them as shard ``shard``."""
        base, text_base = len(self.shard), len(self._texts)
        self.shard.extend(array("i", [shard]) * len(other))
        self.offset.extend(other.offset)
        self.length.extend(other.length)
        self.meta_offset.extend(other.meta_offset)
        self.meta_length.extend(other.meta_length)
        self.text_end.extend(array("q", (end + text_base for end in other.text_end)))
        self._texts += other.texts
        self.inline.update({base + i: v for i, v in other.inline.items()})

    def freeze(self) -> ShardIndex:
        """Done appending: the texts become one immutable ``bytes`` object."""
        self.texts, self._texts = bytes(self._texts), bytearray()
        return self

    def __len__(self) -> int:
        return len(self.shard)

    def __getitem__(self, i: int) -> tuple[int, str, int, int, int, int, str, str]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range ({len(self)} samples)")
        i %= len(self)
        start = self.text_end[i - 1] if i else 0
        key, ext, caption = self.texts[start : self.text_end[i]].decode("utf-8", "surrogateescape").split(SEP)
        return (
            self.shard[i],
            f"{key}.{ext}",
            self.offset[i],
            self.length[i],
            self.meta_offset[i],
            self.meta_length[i],
            key,
            caption,
        )


def list_members(f: BinaryIO, file_size: int) -> tuple[list[Member], str]:
    """The regular files of an uncompressed tar and the problem that ended the listing early ("" if none).

    Reads the headers with :func:`tarindex.scan`; a tar it cannot parse is listed with
    :mod:`tarfile` (slower, same offsets).
    """
    members: list[Member] = []
    try:
        members.extend((name, offset, size, None) for name, offset, size in tarindex.scan(f, file_size))
        return members, ""
    except tarindex.TruncatedTar as exc:
        return members, f"truncated: {exc}"
    except tarindex.UnsupportedTar:
        members.clear()
    f.seek(0)
    try:
        with tarfile.open(fileobj=f, mode="r:") as tar:
            for m in tar:
                if m.isfile():
                    if m.offset_data + m.size > file_size:
                        return members, f"truncated: the file ends inside {m.name}"
                    members.append((m.name, m.offset_data, m.size, None))
    except (tarfile.TarError, EOFError) as exc:
        if not members:
            return members, f"not a tar file ({type(exc).__name__}: {exc})"
        return members, f"{type(exc).__name__}: {exc}"
    return members, ""


def read_compressed(shard: str) -> tuple[list[Member], str]:
    """A compressed tar's members with their data (it cannot be seeked into), and the problem if any."""
    members: list[Member] = []
    try:
        with tarfile.open(shard, mode="r:*") as tar:
            for m in tar:
                if m.isfile():
                    data = tar.extractfile(m)
                    members.append((m.name, m.offset_data, m.size, data.read() if data else b""))
    except (tarfile.TarError, OSError, EOFError) as exc:
        return members, f"{type(exc).__name__}: {exc}"
    return members, ""


def _index_job(job: tuple[str, tuple[str, ...], str]) -> ShardResult:
    return index_shard(*job)


def index_shard(shard: str, image_exts: tuple[str, ...], caption_ext: str) -> ShardResult:
    """One shard's samples (shard number 0), the records skipped as ``(reason, where)``, and the
    problem that ended the reading early ("" if none: a damaged shard keeps the samples before
    the damage, less the one it cut)."""
    index = ShardIndex()
    skips: list[tuple[str, str]] = []
    try:
        with open(shard, "rb") as f:
            if f.read(6).startswith(COMPRESSED):
                logger.info("%s is compressed; its images are held in memory", shard)
                members, problem = read_compressed(shard)
            else:
                members, problem = list_members(f, os.fstat(f.fileno()).st_size)
            groups = list(_groups(members))
            if problem and groups:
                groups.pop()  # the sample the damage cut may have lost members
            for key, group in groups:
                _add(index, shard, key, group, f, image_exts, caption_ext, skips)
    except OSError as exc:
        problem = f"{type(exc).__name__}: {exc}"
    return index.freeze(), skips, problem


def _groups(members: list[Member]) -> Iterator[tuple[str, dict[str, Member]]]:
    """Consecutive members with the same key, as webdataset groups them: ``(key, {ext: member})``."""
    key: str | None = None
    group: dict[str, Member] = {}
    for member in members:
        match = KEY_RE.match(member[0])
        if match is None:
            continue
        if match.group(1) != key:
            if key is not None:
                yield key, group
            key, group = match.group(1), {}
        group[match.group(2).lower()] = member
    if key is not None:
        yield key, group


def _add(
    index: ShardIndex,
    shard: str,
    key: str,
    group: dict[str, Member],
    f: BinaryIO,
    image_exts: tuple[str, ...],
    caption_ext: str,
    skips: list[tuple[str, str]],
) -> None:
    ext = next((e for e in image_exts if e in group), None)
    if ext is None:
        skips.append(("malformed", f"{shard}: sample {key} has no image member (has {', '.join(group)})"))
        return
    image = group[ext]
    if image[2] == 0:
        skips.append(("malformed", f"{shard}[{image[0]}]: empty image member"))
        return
    caption = ""
    text = group.get(caption_ext)
    if text is not None:
        if text[3] is not None:
            data = text[3]
        else:
            f.seek(text[1])
            data = f.read(text[2])
        caption = data.decode("utf-8", errors="replace").strip()
        if not caption:
            skips.append(("caption is empty", f"{shard}[{text[0]}]"))
            return
    index.append(0, image, group.get("json"), key, ext, caption)


class WebShards(RecordBuilder[Any]):
    """``webdataset`` (and the presets ``cc3m``, ``laion_coco``, ``sbu``): captioned images in tars."""

    def __init__(self, config: WebDatasetConfig, name: str = "webdataset") -> None:
        folder = Path(config.root) / config.split if config.split else Path(config.root)
        super().__init__(name, folder)
        self.config = config
        self.folder = require_dir(name, folder, "shard folder")
        if config.shards:
            paths = [
                Path(p) if Path(p).is_absolute() else self.folder / p for p in braceexpand(config.shards)
            ]
            absent = [p for p in paths if not p.is_file()]
            if absent:
                raise missing(name, absent[0], f"shard ({len(absent)} of {len(paths)} missing)")
        else:
            paths = sorted(self.folder.glob("*.tar"))
            if not paths:
                raise missing(name, self.folder / "00000.tar", "shard")
        self.shards = [str(p) for p in paths]  # in order; samples are numbered through them
        self.bad_shards: list[tuple[str, str]] = []  # (shard, problem) met while indexing

    def expected_count(self) -> int | None:
        """Samples img2dataset says it wrote (sum of ``successes`` in the ``_stats.json`` files);
        ``None`` when a shard has no readable stats file."""
        total = 0
        for shard in self.shards:
            try:
                total += int(json.loads(stats_file(shard).read_text(encoding="utf-8"))["successes"])
            except (OSError, ValueError, KeyError, TypeError):
                return None
        return total

    # -- indexing -------------------------------------------------------------------

    def _load(self) -> ShardIndex:
        jobs = [(shard, self.config.image_exts, self.config.caption_ext) for shard in self.shards]
        workers = min(self.config.index_workers or (os.cpu_count() or 1), MAX_INDEX_WORKERS, len(jobs))
        start = time.perf_counter()
        pieces: list[ShardResult] | None = None
        if (
            workers > 1
            and len(jobs) >= MIN_PARALLEL_SHARDS
            and "fork" in multiprocessing.get_all_start_methods()
        ):
            # fork, as DataLoader workers do: spawn would re-run an unguarded user script. The
            # children only read files, and the merge below keeps the shard order.
            try:
                context = multiprocessing.get_context("fork")
                with ProcessPoolExecutor(workers, mp_context=context) as pool:
                    pieces = list(pool.map(_index_job, jobs, chunksize=max(1, len(jobs) // (workers * 8))))
            except (BrokenProcessPool, OSError) as exc:
                logger.warning(
                    "%s: indexing in parallel failed (%s); indexing in this process", self.name, exc
                )
        if pieces is None:
            pieces = [_index_job(job) for job in jobs]
        index = ShardIndex()
        for number, (shard, (piece, skips, problem)) in enumerate(zip(self.shards, pieces, strict=True)):
            index.extend(piece, number)
            for reason, where in skips:
                self.skip(reason, where)
            if problem:
                self.bad_shards.append((shard, problem))
                self.skip("bad_shard", f"{shard}: {problem}")
        logger.info(
            "%s: indexed %d samples in %d shards in %.1f s",
            self.name,
            len(index),
            len(self.shards),
            time.perf_counter() - start,
        )
        if self.bad_shards:
            logger.warning(
                "%s: %d of %d shards are damaged (samples before the damage kept): %s",
                self.name,
                len(self.bad_shards),
                len(self.shards),
                "; ".join(f"{s}: {p}" for s, p in self.bad_shards[:3]),
            )
        return index.freeze()

    # -- samples --------------------------------------------------------------------

    def _sample(self, record: Any) -> Sample:
        raise NotImplementedError  # samples are made by index (see __getitem__)

    def __getitem__(self, index: int) -> Sample:
        records = self.records()
        shard, member, offset, length, meta_offset, meta_length, key, caption = records[index]
        path = self.shards[shard]
        inline = records.inline.get(index % len(records))
        meta: dict[str, Any] = {"shard": path, "key": key, "member": member}
        info = self._info(path, key, inline[1] if inline else None, meta_offset, meta_length)
        meta.update({k: v for k, v in info.items() if k not in meta})
        width, height = info.get("width"), info.get("height")
        size = (width, height) if isinstance(width, int) and isinstance(height, int) else None
        image = (
            ImageRef(data=inline[0], size=size)
            if inline
            else ImageRef(path=path, size=size, member=member, offset=offset, length=length)
        )
        return Sample(
            id=key, image=image, dataset=self.name, captions=(caption,) if caption else (), meta=meta
        )

    def _info(self, path: str, key: str, data: bytes | None, offset: int, length: int) -> dict[str, Any]:
        """img2dataset's ``{key}.json`` (url, width, height, ...), read with the sample; {} if none."""
        if data is None and offset < 0:
            return {}
        try:
            if data is None:
                with open(path, "rb") as f:
                    f.seek(offset)
                    data = f.read(length)
            info = json.loads(data) if data else {}
        except (OSError, ValueError) as exc:  # the image and caption are still usable
            logger.debug("%s: %s[%s.json]: unreadable metadata ignored (%s)", self.name, path, key, exc)
            return {}
        return info if isinstance(info, dict) else {}

    def samples(self) -> Iterator[Sample]:
        """Every sample of every shard, in shard and tar order."""
        for i in range(len(self)):
            yield self[i]

    def summary(self) -> dict[str, Any]:
        """Counts for ``microvlm datasets status``: shards, damaged shards, img2dataset's failures."""
        self.records()
        failed = 0
        for shard in self.shards:
            try:
                stats = json.loads(stats_file(shard).read_text(encoding="utf-8"))
                failed += int(stats.get("failed_to_download", 0)) + int(stats.get("failed_to_resize", 0))
            except (OSError, ValueError, TypeError, AttributeError):
                continue
        return {"shards": len(self.shards), "bad_shards": len(self.bad_shards), "download_failures": failed}

    def __repr__(self) -> str:
        return f"WebShards(name={self.name!r}, folder={str(self.folder)!r}, shards={len(self.shards)})"
