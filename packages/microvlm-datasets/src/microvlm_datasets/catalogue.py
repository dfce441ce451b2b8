"""Every dataset this package provides, in one table: what ``plugin.py`` registers and what
``microvlm datasets status`` looks for.

Each :class:`DatasetInfo` names the builder and its config class; the rest is read from the
config class, so nothing is kept twice: the folder under the data root is the config's default
``root`` (``data/vqa`` -> ``vqa/``) and the image folder its default ``image_root``. Only the
splits that ``status`` reports are listed here, since a config's ``split`` type may allow more
spellings than a dataset ships (Flickr30k's ``"all"``, COCO 2017's missing test captions).
This module imports only attrs and the configs, so ``microvlm plugins`` stays fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any, Literal

import attrs

from microvlm_datasets import config as c

#: The data root the configs' default paths start with (``status --root`` replaces it).
DEFAULT_DATA_ROOT = "data"

#: How ``status`` lists a dataset: one row per split in ``splits``; ``"coco"`` adds the
#: Karpathy splits when ``dataset_coco.json`` is there; ``"shards"`` one row per sub-folder of
#: ``.tar`` shards (or ``"all"``); ``"none"`` not looked for (``webdataset`` has no conventional
#: folder; ``shapes`` is reported view by view from its manifest).
Report = Literal["splits", "coco", "shards", "none"]


@attrs.frozen
class DatasetInfo:
    """One registered dataset: its builder and config, and how ``microvlm datasets status`` reports it."""

    name: str  # registered name, the recipe's ``dataset = "..."``
    builder: str  # "module:callable" under microvlm_datasets.builders, called as builder(config, name)
    config_cls: type  # the attrs config class the recipe entry is structured into
    description: str  # one line for ``microvlm plugins``
    splits: tuple[str, ...] = ()  # the splits status reports, in order
    report: Report = "splits"  # how status lists it (see :data:`Report`)

    @property
    def folder(self) -> str:
        """Folder under the data root: the config's default ``root`` less ``data/`` (``"vqa"``)."""
        return _under_data_root(_default(self.config_cls, "root"))

    @property
    def image_folder(self) -> str:
        """Default ``image_root`` under the data root (``"coco"``); ``""`` when the images follow
        ``root`` or live inside it (web shards, shapes)."""
        if "image_root" not in attrs.fields_dict(self.config_cls):
            return ""
        default = _default(self.config_cls, "image_root")
        return _under_data_root(default) if default else ""

    @property
    def has_split(self) -> bool:
        """Whether the config takes a ``split`` (LLaVA's conversations file is one split)."""
        return "split" in attrs.fields_dict(self.config_cls)

    def factory(self) -> Callable[..., Any]:
        """The registered factory: ``factory(config)`` imports the builder module and builds it."""
        module, attr = self.builder.split(":")
        name = self.name

        def factory(config: Any, **_: Any) -> Any:
            builder = getattr(importlib.import_module(f"microvlm_datasets.builders.{module}"), attr)
            return builder(config, name)

        factory.__name__ = f"build_{name}"
        factory.__doc__ = f"Build the '{name}' dataset builder from its config."
        return factory


def _default(config_cls: type, field: str) -> str:
    default = attrs.fields_dict(config_cls)[field].default
    if not isinstance(default, str):  # pragma: no cover - every config has string paths
        raise TypeError(f"{config_cls.__name__}.{field} has no string default")
    return default


def _under_data_root(path: str) -> str:
    parts = PurePosixPath(path).parts
    if not parts or parts[0] != DEFAULT_DATA_ROOT:  # pragma: no cover - guarded by the tests
        raise ValueError(f"default path {path!r} is not under {DEFAULT_DATA_ROOT}/")
    return str(PurePosixPath(*parts[1:]))


_TVT = ("train", "val", "test")
_REF = ("train", "val", "test", "testA", "testB")

_INFOS = (
    DatasetInfo(
        "coco_caption",
        "captions:CocoCaptions",
        c.CocoCaptionConfig,
        "COCO 2017 captions or Karpathy's dataset_coco.json",
        ("train", "val"),
        "coco",
    ),
    DatasetInfo(
        "flickr30k",
        "captions:Flickr30k",
        c.Flickr30kConfig,
        "Flickr30k: Karpathy's dataset_flickr30k.json or Kaggle's results.csv",
        _TVT,
    ),
    DatasetInfo("vqav2", "vqa:VQAv2", c.VQAv2Config, "VQAv2 questions + annotations JSON, COCO images", _TVT),
    DatasetInfo("okvqa", "vqa:okvqa", c.OKVQAConfig, "OK-VQA (VQAv2 format), COCO images", ("train", "val")),
    DatasetInfo(
        "aokvqa",
        "vqa:AOKVQA",
        c.AOKVQAConfig,
        "A-OKVQA: choices, direct answers, rationales; COCO 2017 images",
        _TVT,
    ),
    DatasetInfo("gqa", "gqa:GQA", c.GQAConfig, "GQA balanced questions and images", _TVT),
    DatasetInfo("ocrvqa", "ocrvqa:OCRVQA", c.OCRVQAConfig, "OCR-VQA dataset.json and book covers", _TVT),
    DatasetInfo(
        "refcoco",
        "refcoco:RefCoco",
        c.RefCocoConfig,
        "RefCOCO (HF jxu124/refcoco rows): expressions + boxes",
        _REF,
    ),
    DatasetInfo(
        "refcoco_plus", "refcoco:RefCoco", c.RefCocoPlusConfig, "RefCOCO+ (HF jxu124/refcocoplus rows)", _REF
    ),
    DatasetInfo(
        "refcocog", "refcoco:RefCoco", c.RefCocogConfig, "RefCOCOg (HF jxu124/refcocog rows, umd split)", _TVT
    ),
    DatasetInfo(
        "llava_instruct",
        "llava:LlavaInstruct",
        c.LlavaInstructConfig,
        "LLaVA-150K-style conversations JSON",
        ("train",),
    ),
    DatasetInfo(
        "webdataset",
        "web:WebShards",
        c.WebDatasetConfig,
        "img2dataset-style .tar shards (jpg/txt/json)",
        report="none",
    ),
    DatasetInfo(
        "cc3m", "web:WebShards", c.Cc3mConfig, "Conceptual Captions 3M shards (img2dataset)", report="shards"
    ),
    DatasetInfo(
        "laion_coco", "web:WebShards", c.LaionCocoConfig, "LAION-COCO shards (img2dataset)", report="shards"
    ),
    DatasetInfo("sbu", "web:WebShards", c.SbuConfig, "SBU Captions shards (img2dataset)", report="shards"),
    DatasetInfo(
        "shapes",
        "shapes_view:build_shapes",
        c.ShapesConfig,
        "the synthetic shapes set (microvlm datasets shapes)",
        report="none",
    ),
)

#: name -> :class:`DatasetInfo`, in registration (and status) order.
CATALOGUE: MappingProxyType[str, DatasetInfo] = MappingProxyType({info.name: info for info in _INFOS})

__all__ = ["CATALOGUE", "DEFAULT_DATA_ROOT", "DatasetInfo", "Report"]
