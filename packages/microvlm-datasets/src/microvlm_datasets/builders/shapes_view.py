"""``shapes``: one view of a ``microvlm datasets shapes`` folder, read by the real builder of its format.

``view = "caption"`` reads ``coco/`` with the COCO captions builder, ``"vqa"`` reads ``vqa/``
with the VQAv2 builder, ``"grounding"`` ``refcoco/`` with the RefCOCO builder, ``"instruct"``
``llava/`` with the LLaVA builder and ``"webdataset"`` ``shards/{split}/`` with the web-shard
builder. The samples are named ``shapes``. Pointing ``coco_caption``, ``vqav2``, ... at the
sub-folders gives the same samples under those names.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from microvlm_datasets.builders.base import missing
from microvlm_datasets.builders.captions import CocoCaptions
from microvlm_datasets.builders.llava import LlavaInstruct
from microvlm_datasets.builders.refcoco import RefCoco
from microvlm_datasets.builders.vqa import VQAv2
from microvlm_datasets.builders.web import WebShards
from microvlm_datasets.config import (
    CocoCaptionConfig,
    LlavaInstructConfig,
    RefCocoConfig,
    ShapesConfig,
    VQAv2Config,
    WebDatasetConfig,
)
from microvlm_datasets.shapes import layout


def build_shapes(config: ShapesConfig, name: str = "shapes") -> Any:
    """The builder of ``config.view`` over the shapes folder ``config.root``."""
    out, split = Path(config.root), config.split
    stale = _stale_version(out)
    if config.generate and (stale is not None or not (out / layout.MANIFEST).is_file()):
        if stale is not None:
            logging.getLogger(__name__).warning(
                "%s was written in shapes format %s, this version writes %d (RefCOCO boxes as corners): "
                "writing it again",
                out,
                stale,
                layout.FORMAT_VERSION,
            )
        _generate(config)
    if not (out / layout.MANIFEST).is_file():
        raise missing(name, out / layout.MANIFEST, "shapes set (its manifest)")
    coco = str(layout.coco_dir(out))
    if config.view == "caption":
        return CocoCaptions(CocoCaptionConfig(root=coco, split=split), name)
    if config.view == "vqa":
        return VQAv2(VQAv2Config(root=str(layout.vqa_dir(out)), split=split, image_root=coco), name)
    if config.view == "grounding":
        return RefCoco(RefCocoConfig(root=str(layout.refcoco_dir(out)), split=split, image_root=coco), name)
    if config.view == "instruct":
        llava = layout.llava_file(out, split)
        return LlavaInstruct(
            LlavaInstructConfig(
                root=str(llava.parent), file=llava.name, image_root=str(layout.image_dir(out, split))
            ),
            name,
        )
    return WebShards(WebDatasetConfig(root=str(layout.shards_root(out)), split=split), name)


def _stale_version(out: Path) -> object | None:
    """The ``format_version`` of the shapes set in ``out`` when it is older than this writer's;
    None when there is no set or it is current."""
    try:
        manifest = json.loads((out / layout.MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    return None if version == layout.FORMAT_VERSION else version


def _generate(config: ShapesConfig) -> None:
    """Write the set (and its tokenizer) into ``config.root``, through a temporary folder so
    that an interrupted generation never leaves a half-written set that looks complete."""
    import os
    import shutil

    from microvlm_datasets.shapes.generate import generate
    from microvlm_datasets.shapes.tokenizer import write_tokenizer

    out = Path(config.root)
    logging.getLogger(__name__).warning("generating the shapes set into %s", out)
    tmp = out.parent / f".tmp-{out.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    generate(tmp, config.n_train, config.n_val, config.n_test, config.image_size, config.seed)
    write_tokenizer(tmp)
    if out.is_dir() and (out / layout.MANIFEST).is_file():  # an older set: replace what it wrote
        for owned in layout.OWNED:  # the old manifest goes last: a kill in between leaves it stale
            path = out / owned
            if owned == layout.MANIFEST:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
        for path in sorted(tmp.iterdir(), key=lambda p: p.name == layout.MANIFEST):
            os.replace(path, out / path.name)
        tmp.rmdir()
        return
    if out.exists() and not any(out.iterdir()):
        out.rmdir()
    tmp.rename(out)
