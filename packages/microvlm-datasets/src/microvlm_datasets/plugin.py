"""Dataset builders of microvlm-datasets: hook implementations only; heavy imports live in the factories."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from microvlm import hookimpl
from microvlm_datasets import config as c

if TYPE_CHECKING:
    import click

    from microvlm.plugins.manager import Register

# name -> (builder "module:callable" called as builder(config, name), config class, description)
BUILDERS: dict[str, tuple[str, type, str]] = {
    "coco_caption": (
        "captions:CocoCaptions",
        c.CocoCaptionConfig,
        "COCO 2017 captions or Karpathy's dataset_coco.json",
    ),
    "flickr30k": (
        "captions:Flickr30k",
        c.Flickr30kConfig,
        "Flickr30k: Karpathy's dataset_flickr30k.json or Kaggle's results.csv",
    ),
    "vqav2": ("vqa:VQAv2", c.VQAv2Config, "VQAv2 questions + annotations JSON, COCO images"),
    "okvqa": ("vqa:okvqa", c.OKVQAConfig, "OK-VQA (VQAv2 format), COCO images"),
    "aokvqa": (
        "vqa:AOKVQA",
        c.AOKVQAConfig,
        "A-OKVQA: choices, direct answers, rationales; COCO 2017 images",
    ),
    "gqa": ("gqa:GQA", c.GQAConfig, "GQA balanced questions and images"),
    "ocrvqa": ("ocrvqa:OCRVQA", c.OCRVQAConfig, "OCR-VQA dataset.json and book covers"),
    "refcoco": ("refcoco:RefCoco", c.RefCocoConfig, "RefCOCO (HF jxu124/refcoco rows): expressions + boxes"),
    "refcoco_plus": ("refcoco:RefCoco", c.RefCocoPlusConfig, "RefCOCO+ (HF jxu124/refcocoplus rows)"),
    "refcocog": ("refcoco:RefCoco", c.RefCocogConfig, "RefCOCOg (HF jxu124/refcocog rows, umd split)"),
    "llava_instruct": ("llava:LlavaInstruct", c.LlavaInstructConfig, "LLaVA-150K-style conversations JSON"),
    "webdataset": ("web:WebShards", c.WebDatasetConfig, "img2dataset-style .tar shards (jpg/txt/json)"),
    "cc3m": ("web:WebShards", c.Cc3mConfig, "Conceptual Captions 3M shards (img2dataset)"),
    "laion_coco": ("web:WebShards", c.LaionCocoConfig, "LAION-COCO shards (img2dataset)"),
    "sbu": ("web:WebShards", c.SbuConfig, "SBU Captions shards (img2dataset)"),
    "shapes": (
        "shapes_view:build_shapes",
        c.ShapesConfig,
        "the synthetic shapes set (microvlm datasets shapes)",
    ),
}


def _factory(name: str, target: str) -> Callable[..., Any]:
    module, attr = target.split(":")

    def factory(config: Any, **_: Any) -> Any:
        builder = getattr(importlib.import_module(f"microvlm_datasets.builders.{module}"), attr)
        return builder(config, name)

    factory.__name__ = f"build_{name}"
    factory.__doc__ = f"Build the '{name}' dataset builder from its config."
    return factory


@hookimpl
def register_datasets(register: Register) -> None:
    for name, (target, config_cls, description) in BUILDERS.items():
        register(name, _factory(name, target), config_cls, description=description)


@hookimpl
def register_commands(cli: click.Group) -> None:
    from microvlm_datasets.cli import datasets_group

    cli.add_command(datasets_group())
