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

Each dataset and each download source (``microvlm datasets download``'s catalogue, and any
source a plugin registers) also gets a ``state`` (:data:`STATES`): ``complete``; ``partial``,
with ``missing`` saying what is not there; ``needs login`` (a Kaggle login, a hub token and
accepted terms, or manual steps: ``needs`` says which); ``needs tool`` (img2dataset for the
web-scale images, with its install command); or ``absent``. A dataset is complete when every
split its sources provide (their ``splits``; else every split listed) is read by its builder
with no image file missing; a source when every file, hub repository and web image set it
lists is on disk (archives extracted).
"""

from __future__ import annotations

import json
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from microvlm.errors import MicroVLMError
from microvlm_datasets.catalogue import CATALOGUE, DatasetInfo
from microvlm_datasets.config import ShapesView
from microvlm_datasets.shapes import layout

#: (label of the row, builder settings) for each split to report, given the dataset folder and the root.
Rows = list[tuple[str, dict[str, Any]]]

#: What ``state`` may say, for a dataset or a source.
STATES = ("complete", "partial", "needs login", "needs tool", "absent")

#: What each ``login`` asks of the user, for ``needs``.
LOGIN_NEEDS = {
    "huggingface": "a Hugging Face token (HF_TOKEN or `huggingface-cli login`), terms accepted at {page}",
    "kaggle": "a Kaggle login and the manual steps `microvlm datasets download --datasets {name}` prints",
    "manual": "the manual steps `microvlm datasets download --datasets {name}` prints",
}

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
        entry = {"name": f"shapes/{view}", "folder": str(folder), "present": True, "splits": rows}
        out.append({**entry, "state": "complete", "missing": [], "needs": ""})
    out[0]["disk_bytes"] = disk_usage(folder)
    for entry in out[1:]:
        entry["disk_bytes"] = None  # the same folder, counted once
    return out


def status(root: str | Path = "data", sources: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What ``microvlm datasets status --json`` prints: every known dataset under ``root``, and
    every download source (``sources``: name -> source; default the package's catalogue)."""
    root = Path(root)
    if (root / layout.MANIFEST).is_file():
        return {"root": str(root), "kind": "shapes", "datasets": _shapes(root), "sources": []}
    if sources is None:
        from microvlm_datasets.download.sources import load_catalogue

        sources = load_catalogue()
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
        entry.update(dataset_state(name, entry["splits"], sources.values(), root))
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
                "state": "absent",
                "missing": [],
                "needs": "`microvlm datasets shapes --out ROOT/shapes` writes it",
            }
        )
    report = [{"name": n, **source_state(s, root)} for n, s in sources.items()]
    return {"root": str(root), "kind": "data", "datasets": datasets, "sources": report}


# -- states -------------------------------------------------------------------------------


def _feeding(name: str, sources: Any) -> list[Any]:
    return [s for s in sources if name in getattr(s, "datasets", ())]


def dataset_state(name: str, rows: list[dict[str, Any]], sources: Any, root: Path) -> dict[str, Any]:
    """``state``, ``missing`` and ``needs`` of one dataset from its split rows and its sources."""
    info = CATALOGUE[name]
    feeding = _feeding(name, sources)
    own = [s for s in feeding if s.folder == info.folder]
    expected = {split for s in own for split in getattr(s, "splits", ())} or {r["split"] for r in rows}
    by_split = {r["split"]: r for r in rows}
    missing = []
    for split in sorted(expected):
        row = by_split.get(split)
        if row is None or row["status"] != "present":
            missing.append(f"{split}: {row['error'] if row and row['error'] else 'not found'}")
        elif row["missing_images"]:
            missing.append(f"{split}: {row['missing_images']:,} image files missing")
    present = any(r["status"] == "present" for r in rows)
    if present and not missing:
        return {"state": "complete", "missing": [], "needs": ""}
    state, needs = _blocked(feeding, root)
    return {"state": "partial" if present else state, "missing": missing, "needs": needs}


def source_state(source: Any, root: Path) -> dict[str, Any]:
    """``state``, ``missing``, ``needs``, ``folder``, ``login`` and ``licence`` of one source.

    A source that is only a :class:`~microvlm.contracts.data.DataSource` (no file list) is
    complete when its folder holds anything."""
    folder = root / source.folder
    out = {"folder": str(folder), "login": source.login, "licence": source.licence}
    if not hasattr(source, "files"):
        there = folder.is_dir() and any(folder.iterdir())
        state, needs = ("complete", "") if there else _blocked([source], root)
        return {**out, "state": state, "missing": [] if there else [str(folder)], "needs": needs}
    missing = _missing_parts(source, folder)
    parts = len(source.files) + len(source.hub) + 2 * (source.web is not None)  # web: its list and images
    if not missing:
        return {**out, "state": "complete", "missing": [], "needs": ""}
    state, needs = _blocked([source], root)
    if len(missing) < parts and state != "needs tool":
        state = "partial"
    return {**out, "state": state, "missing": missing, "needs": needs}


def _missing_parts(source: Any, folder: Path) -> list[str]:
    """What of ``source``'s files, hub repositories and web images is not on disk."""
    from microvlm_datasets.download.extract import is_extracted

    missing = []
    for file in source.files:
        path = folder / file.path
        into = folder / file.extract_to if file.extract_to else folder
        if not path.is_file():
            missing.append(file.path + (" (by hand)" if getattr(file, "manual", False) else ""))
        elif file.extract and not is_extracted(path, into):
            missing.append(f"{file.path} (not extracted)")
    for hub in source.hub:
        if not _has_files(folder / hub.path, hub.patterns):
            missing.append(f"{hub.repo_id} (hub){' into ' + hub.path if hub.path else ''}")
    web = source.web
    if web is not None:
        urls = web.urls
        if hasattr(urls, "url") and not (folder / (web.list_path or urls.path)).is_file():
            missing.append(f"{web.list_path or urls.path} (the URL list{', by hand' if urls.manual else ''})")
        elif hasattr(urls, "repo_id") and not _has_files(folder / urls.path, urls.patterns):
            missing.append(f"{urls.repo_id} (hub: the URL list)")
        out = folder / web.output if web.output else folder
        found = out.glob("*.tar") if web.output_format == "webdataset" else out.glob("*.*")
        if not (out.is_dir() and next(found, None)):
            missing.append(
                f"web images ({'shards' if web.output_format == 'webdataset' else 'files'} in {out})"
            )
    return missing


def _has_files(where: Path, patterns: tuple[str, ...]) -> bool:
    """Whether ``where`` holds a file matching one of ``patterns`` (any file when none)."""
    return where.is_dir() and any(next(where.glob(p), None) for p in patterns or ("*",))


def _blocked(sources: list[Any], root: Path) -> tuple[str, str]:
    """Why nothing is there: a login or manual step, a missing tool, or simply not downloaded."""
    for source in sources:
        login = getattr(source, "login", "")
        if login in LOGIN_NEEDS:
            page = next((h.page for h in getattr(source, "hub", ()) if h.gated), "")
            web = getattr(source, "web", None)
            if not page and web is not None and hasattr(web.urls, "page"):
                page = web.urls.page
            return "needs login", LOGIN_NEEDS[login].format(name=source.name, page=page or "its page")
    for source in sources:
        if getattr(source, "web", None) is not None:
            from microvlm_datasets.download import web

            tools = root / web.TOOLS
            try:
                found = web.find_img2dataset(tools)
            except web.ToolMissingError as exc:
                return "needs tool", str(exc)
            if found is None:
                return "needs tool", f"img2dataset: {web.install_command(tools)}"
    return "absent", ""
