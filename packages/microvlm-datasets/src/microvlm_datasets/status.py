"""``microvlm datasets status``: which datasets are on disk, their splits, counts and problems.

Every dataset in :data:`microvlm_datasets.catalogue.CATALOGUE` is looked for in its conventional
folder under the data root (``--root``, default ``data``) — the folder its config's ``root``
defaults to, with the images where its ``image_root`` defaults to, so a recipe that names only
``dataset = "vqav2"`` reads what this command reports:

=================  ==========================  ===========================================
dataset            folder under the root       images (``image_root``)
=================  ==========================  ===========================================
coco_caption       ``coco/``                   ``coco/{train,val}2017/`` (Karpathy: 2014)
flickr30k          ``flickr30k/``              ``flickr30k/flickr30k-images/``
vqav2              ``vqa/``                    ``coco/``
okvqa              ``okvqa/``                  ``coco/``
aokvqa             ``aokvqa/``                 ``coco/``
gqa                ``gqa/``                    ``gqa/images/``
ocrvqa             ``ocrvqa/``                 ``ocrvqa/images/``
refcoco            ``refcoco/``                ``coco/``
refcoco_plus       ``refcoco_plus/``           ``coco/``
refcocog           ``refcocog/``               ``coco/``
llava_instruct     ``llava/``                  ``coco/train2017/``
cc3m               ``cc3m/`` (``*.tar``, or one sub-folder of shards per split)
laion_coco         ``laion_coco/``
sbu                ``sbu/``
shapes             ``shapes/`` (a ``microvlm datasets shapes`` folder)
=================  ==========================  ===========================================

A root that is itself a shapes folder (it holds ``shapes.json``) is reported as one: each
split in each of its formats, read by the real builders.

For each dataset and split: whether it is present, its samples, distinct images, image files
missing on disk, records the builder skipped while loading (by reason: damaged shards,
records without an image, ...) and img2dataset's download failures, plus the disk space of
the dataset's folder. Builders are imported here, inside the functions, not by the CLI module.
"""

from __future__ import annotations

import json
import os
import typing
from pathlib import Path
from typing import Any

from microvlm.errors import MicroVLMError
from microvlm_datasets.catalogue import CATALOGUE, DatasetInfo
from microvlm_datasets.config import ShapesView
from microvlm_datasets.shapes import layout

#: (label of the row, builder settings) for each split to report, given the dataset folder and the root.
Rows = list[tuple[str, dict[str, Any]]]

#: The views of a shapes folder, each read by one of the real builders.
SHAPES_VIEWS = typing.get_args(ShapesView)


def rows(info: DatasetInfo, folder: Path, root: Path) -> Rows:
    """The rows ``status`` reports for ``info`` found in ``folder`` (see :data:`catalogue.Report`)."""
    if info.report == "shards":
        return _web_rows(folder)
    base: dict[str, Any] = {"root": str(folder)}
    if info.image_folder:
        base["image_root"] = str(root / info.image_folder)
    out = [(split, {**base, "split": split} if info.has_split else dict(base)) for split in info.splits]
    if info.report == "coco" and (
        (folder / "dataset_coco.json").is_file() or (folder / "annotations" / "dataset_coco.json").is_file()
    ):
        out += [
            (f"karpathy {s}", {"root": str(folder), "split": s, "format": "karpathy"})
            for s in ("train", "val", "test")
        ]
    return out


def _web_rows(folder: Path) -> Rows:
    """Shards directly in the folder (one row, "all"), or one sub-folder of shards per split."""
    if not folder.is_dir() or any(folder.glob("*.tar")):
        return [("all", {"root": str(folder)})]
    subs = sorted(p.name for p in folder.iterdir() if p.is_dir() and any(p.glob("*.tar")))
    return [(s, {"root": str(folder), "split": s}) for s in subs] or [("all", {"root": str(folder)})]


def disk_usage(folder: Path) -> int:
    """Bytes of the files under ``folder`` (symbolic links to folders are not followed)."""
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total


def split_status(
    name: str, label: str, settings: dict[str, Any], builder_name: str | None = None
) -> dict[str, Any]:
    """Build ``name``'s builder with ``settings`` and count what it reads (see the module doc)."""
    from microvlm_datasets.builders.base import MalformedDataError, MissingDataError

    info = CATALOGUE[builder_name or name]
    row: dict[str, Any] = {"split": label, "status": "absent", "samples": 0, "images": 0, "missing_images": 0}
    row.update({"skipped": {}, "download_failures": 0, "error": ""})
    try:
        builder = info.factory()(info.config_cls(**settings))
        n = len(builder)
    except MissingDataError as exc:
        row["error"] = str(exc).split(". Download", 1)[0]
        return row
    except (MalformedDataError, MicroVLMError) as exc:
        row.update(status="error", error=str(exc))
        return row
    if hasattr(builder, "shards"):  # web shards: one image per sample, inside the indexed tars
        row.update(status="present", samples=n, images=n)
    else:
        paths = {builder[i].image.path for i in range(n)}
        missing = sum(1 for path in paths if path and not os.path.isfile(path))
        row.update(status="present", samples=n, images=len(paths), missing_images=missing)
    row["skipped"] = dict(getattr(builder, "skipped", {}))
    if hasattr(builder, "summary"):
        row["download_failures"] = builder.summary()["download_failures"]
    return row


def _shapes(folder: Path) -> list[dict[str, Any]]:
    manifest = json.loads((folder / layout.MANIFEST).read_text(encoding="utf-8"))
    splits = list(manifest.get("splits", {}))
    out = []
    for view in SHAPES_VIEWS:
        rows = [split_status("shapes", s, {"root": str(folder), "split": s, "view": view}) for s in splits]
        out.append({"name": f"shapes/{view}", "folder": str(folder), "present": True, "splits": rows})
    out[0]["disk_bytes"] = disk_usage(folder)
    for entry in out[1:]:
        entry["disk_bytes"] = None  # the same folder, counted once
    return out


def status(root: str | Path = "data") -> dict[str, Any]:
    """What ``microvlm datasets status --json`` prints: every known dataset under ``root``."""
    root = Path(root)
    if (root / layout.MANIFEST).is_file():
        return {"root": str(root), "kind": "shapes", "datasets": _shapes(root)}
    datasets = []
    for name, info in CATALOGUE.items():
        if info.report == "none":
            continue
        folder = root / info.folder
        entry: dict[str, Any] = {"name": name, "folder": str(folder), "present": folder.is_dir()}
        entry["splits"] = (
            [split_status(name, label, s) for label, s in rows(info, folder, root)] if folder.is_dir() else []
        )
        entry["disk_bytes"] = disk_usage(folder) if folder.is_dir() else 0
        datasets.append(entry)
    if (root / "shapes" / layout.MANIFEST).is_file():
        datasets += _shapes(root / "shapes")
    else:
        datasets.append(
            {
                "name": "shapes",
                "folder": str(root / "shapes"),
                "present": False,
                "splits": [],
                "disk_bytes": 0,
            }
        )
    return {"root": str(root), "kind": "data", "datasets": datasets}
