"""Web shards as img2dataset writes them (CC3M, LAION-COCO, SBU, or any webdataset of images).

On disk: ``{root}[/{split}]/00000.tar``, ``00001.tar``, ... Each tar holds, per sample,
``{key}.jpg``, ``{key}.txt`` (the caption) and ``{key}.json`` (img2dataset's metadata:
``url``, ``caption``, ``key``, ``status``, ``width``, ``height``, ...), consecutive in the
tar. Beside each shard img2dataset writes ``00000_stats.json`` (``count``, ``successes``,
``failed_to_download``, ...) and ``00000.parquet`` (every URL tried); this builder uses the
stats files only to count samples. Failed downloads are absent from the tars.

The tars are read with the standard library's :mod:`tarfile`, grouping members into samples
the way webdataset does (the key is the file name up to the first dot of its base name), so
this builder depends on no webdataset release; :attr:`WebShards.shards` lists the shard paths
for a streaming loader to split across workers. A shard that is truncated or corrupt yields
the samples before the damage, and the problem is logged and kept in ``bad_shards``.
"""

from __future__ import annotations

import json
import logging
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from braceexpand import braceexpand

from microvlm.data import ImageRef, Sample
from microvlm_datasets.builders.base import missing, require_dir
from microvlm_datasets.config import WebDatasetConfig

logger = logging.getLogger(__name__)

#: webdataset's ``base_plus_ext``: key = everything up to the first dot of the base name.
KEY_RE = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")


def stats_file(shard: str | Path) -> Path:
    """img2dataset's statistics file of a shard: ``00000.tar`` -> ``00000_stats.json``."""
    shard = Path(shard)
    return shard.with_name(shard.name.split(".", 1)[0] + "_stats.json")


class WebShards:
    """``webdataset`` (and the presets ``cc3m``, ``laion_coco``, ``sbu``): captioned images in tars."""

    def __init__(self, config: WebDatasetConfig, name: str = "webdataset") -> None:
        self.name = name
        self.config = config
        self.folder = require_dir(
            name, Path(config.root) / config.split if config.split else Path(config.root), "shard folder"
        )
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
        self.shards = [str(p) for p in paths]  # in order; a streaming loader splits these across workers
        self.bad_shards: list[tuple[str, str]] = []  # (shard, problem) met while reading
        self._length: int | None = None

    def __len__(self) -> int:
        """Samples in all shards: from img2dataset's ``_stats.json`` files, else from the tar headers."""
        if self._length is None:
            self._length = sum(self._count(shard) for shard in self.shards)
        return self._length

    def _count(self, shard: str) -> int:
        stats = stats_file(shard)
        if stats.is_file():
            try:
                return int(json.loads(stats.read_text(encoding="utf-8"))["successes"])
            except (ValueError, KeyError, TypeError) as exc:
                logger.warning("%s: ignoring unreadable %s (%s); counting the tar", self.name, stats, exc)
        keys = set()
        try:
            with tarfile.open(shard) as tar:
                for name in tar.getnames():
                    match = KEY_RE.match(name)
                    if match and match.group(2).lower() in self.config.image_exts:
                        keys.add(match.group(1))
        except (tarfile.TarError, OSError, EOFError) as exc:
            logger.warning("%s: cannot count %s: %s", self.name, shard, exc)
        return len(keys)

    def samples(self) -> Iterator[Sample]:
        """Every sample of every shard, in shard order."""
        for shard in self.shards:
            yield from self.iter_shard(shard)

    def __iter__(self) -> Iterator[Sample]:
        return self.samples()

    def iter_shard(self, shard: str) -> Iterator[Sample]:
        """The samples of one shard, in tar order; stops (logged) at a damaged part."""
        key, files = None, {}
        try:
            with tarfile.open(shard, mode="r|*") as tar:
                for member in tar:
                    match = KEY_RE.match(member.name) if member.isfile() else None
                    if match is None:
                        continue
                    if match.group(1) != key:
                        if key is not None:
                            sample = self._sample(shard, key, files)
                            if sample is not None:
                                yield sample
                        key, files = match.group(1), {}
                    data = tar.extractfile(member)
                    files[match.group(2).lower()] = data.read() if data is not None else b""
        except (tarfile.TarError, OSError, EOFError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
            logger.warning("%s: %s is damaged after key %s: %s", self.name, shard, key, problem)
            self.bad_shards.append((shard, problem))
            return
        if key is not None:
            sample = self._sample(shard, key, files)
            if sample is not None:
                yield sample

    def _sample(self, shard: str, key: str, files: dict[str, bytes]) -> Sample | None:
        image = next((files[e] for e in self.config.image_exts if e in files), None)
        if image is None:
            return None  # metadata without an image (not written by img2dataset, but tolerated)
        meta: dict[str, Any] = {"shard": shard, "key": key}
        if "json" in files:
            try:
                info = json.loads(files["json"])
            except (ValueError, UnicodeDecodeError) as exc:  # the image and caption are still usable
                logger.warning(
                    "%s: %s: %s.json: invalid JSON (%s); metadata ignored", self.name, shard, key, exc
                )
                info = None
            if isinstance(info, dict):
                meta.update({k: v for k, v in info.items() if k not in meta})
        caption = files.get(self.config.caption_ext, b"").decode("utf-8", errors="replace").strip()
        width, height = meta.get("width"), meta.get("height")
        size = (width, height) if isinstance(width, int) and isinstance(height, int) else None
        return Sample(
            id=key,
            image=ImageRef(data=image, size=size),
            dataset=self.name,
            captions=(caption,) if caption else (),
            meta=meta,
        )

    def __repr__(self) -> str:
        return f"WebShards(name={self.name!r}, folder={str(self.folder)!r}, shards={len(self.shards)})"
