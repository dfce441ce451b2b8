"""The conformance kit (microvlm.testing.conformance) over every registered component.

Parametrised from ``load_plugins().components()``: a component nobody lists here still runs,
with its config's defaults. Datasets read the synthetic shapes set, written by
``microvlm_datasets.shapes`` in the real formats (COCO, VQAv2, RefCOCO, LLaVA, img2dataset) and
copied here into the formats it does not write (OK-VQA, A-OKVQA, GQA, OCR-VQA, Flickr30k), so
no download happens. What cannot run offline is in :data:`NOT_EXERCISED`, with the reason,
and still has its contract checked.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import attrs
import pytest

from microvlm import load_plugins, load_recipe
from microvlm.contracts.kinds import missing_members
from microvlm.models.vlm import MicroVLM
from microvlm.plugins.manager import Component
from microvlm.recipes.structure import structure
from microvlm.testing import conformance as kit
from microvlm.testing.fixtures import tiny_llm_path
from microvlm.testing.toys import ToyPlugin, toy_training_recipe
from microvlm_datasets.shapes import generate

PLUGINS = load_plugins()
COMPONENTS = list(PLUGINS.components())
BROKEN_ON_PURPOSE = {"microvlm-broken-plugin"}  # tests/plugins/microvlm-broken-plugin

#: (kind, name) -> why it is not exercised offline; its class is still held to the contract.
NOT_EXERCISED = {
    ("logger", "wandb"): "needs the wandb package (the [wandb] extra) and a W&B run",
}

#: dataset -> its settings on the shapes set; "{shapes}" is the set's folder
DATASETS: dict[str, dict[str, str]] = {
    "coco_caption": {"root": "{shapes}/coco", "split": "val"},
    "flickr30k": {"root": "{shapes}/flickr30k", "split": "val"},
    "vqav2": {"root": "{shapes}/vqa", "split": "val", "image_root": "{shapes}/coco"},
    "okvqa": {"root": "{shapes}/okvqa", "split": "val", "image_root": "{shapes}/coco"},
    "aokvqa": {"root": "{shapes}/aokvqa", "split": "val", "image_root": "{shapes}/coco"},
    "gqa": {"root": "{shapes}/gqa", "split": "val"},
    "ocrvqa": {"root": "{shapes}/ocrvqa", "split": "val"},
    "refcoco": {"root": "{shapes}/refcoco", "split": "val", "image_root": "{shapes}/coco"},
    "refcoco_plus": {"root": "{shapes}/refcoco", "split": "val", "image_root": "{shapes}/coco"},
    "refcocog": {"root": "{shapes}/refcoco", "split": "val", "image_root": "{shapes}/coco"},
    "llava_instruct": {
        "root": "{shapes}/llava",
        "file": "llava_instruct_val.json",
        "image_root": "{shapes}/coco/val2017",
    },
    "webdataset": {"root": "{shapes}/shards", "split": "val"},
    "cc3m": {"root": "{shapes}/shards", "split": "val"},
    "laion_coco": {"root": "{shapes}/shards", "split": "val"},
    "sbu": {"root": "{shapes}/shards", "split": "val"},
    "shapes": {"root": "{shapes}", "split": "val"},
}

#: task -> the dataset whose samples it reads (a task not listed reads captions)
TASK_SAMPLES = {
    "vqa": "vqav2",
    "aokvqa_da": "aokvqa",
    "aokvqa_mc": "aokvqa",
    "grounding": "refcoco",
    "instruct": "llava_instruct",
}

#: (kind, name) -> settings of a small offline build (no hub download)
SETTINGS: dict[tuple[str, str], dict[str, Any]] = {
    ("bridge", "qformer"): {"num_queries": 4, "num_layers": 2, "hidden_size": 32, "num_heads": 2},
    ("llm", "hf_causal_lm"): {"model": "{tiny_llm}"},
    ("encoder", "timm"): {"model": "test_vit"},
}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shapes")
    generate(out, 4, 3, 2, image_size=32, seed=0, samples_per_shard=2)
    _write_other_formats(out, split="val")
    return out


def _ids(component: Component) -> str:
    return f"{component.kind}:{component.name}"


def _config(component: Component, shapes: Path) -> Any:
    settings: dict[str, Any] = dict(SETTINGS.get((component.kind, component.name), {}))
    if component.kind == "dataset":
        settings.update(DATASETS.get(component.name, {}))
    fields = attrs.fields_dict(component.config_cls)
    if component.kind == "encoder" and "pretrained" in fields:
        settings = {"pretrained": "none", "image_size": 32, **settings}  # random weights, no download
    places = {"shapes": str(shapes), "tiny_llm": str(tiny_llm_path())}
    settings = {k: v.format(**places) if isinstance(v, str) else v for k, v in settings.items()}
    return structure(settings, component.config_cls)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> MicroVLM:
    """A small MicroVLM (toy-sized encoder and Q-Former, the tiny LLM) for the exporters."""
    folder = tmp_path_factory.mktemp("model")
    recipe = toy_training_recipe(str(folder / "out"), str(tiny_llm_path())).replace(
        'name = "toy_encoder"\nwidth = 16',
        'name = "timm"\nmodel = "test_vit"\npretrained = "none"\nimage_size = 32',
    )
    (folder / "r.toml").write_text(recipe)
    with_toys = load_plugins(extra=[("toys", ToyPlugin())])  # the recipe's [[data]] is toy_dataset
    return MicroVLM.from_config(load_recipe(folder / "r.toml", with_toys).model, PLUGINS)


@pytest.fixture
def fresh_model(tmp_path: Path) -> MicroVLM:
    """A small MicroVLM of its own (no adapter), for a QAT scheme to change in place."""
    recipe = toy_training_recipe(str(tmp_path / "out"), str(tiny_llm_path()))
    (tmp_path / "r.toml").write_text(recipe)
    with_toys = load_plugins(extra=[("toys", ToyPlugin())])
    return MicroVLM.from_config(load_recipe(tmp_path / "r.toml", with_toys).model, with_toys)


def test_every_plugin_of_ours_loads():
    """A broken plugin registers nothing, so its components would be missing below unnoticed."""
    broken = [
        f"{b.distribution}: {b.error}" for b in PLUGINS.broken if b.distribution not in BROKEN_ON_PURPOSE
    ]
    assert not broken, broken


@pytest.mark.parametrize("component", COMPONENTS, ids=_ids)
def test_component_passes_the_kit(component: Component, shapes: Path, tmp_path: Path, request) -> None:
    key = (component.kind, component.name)
    if key in NOT_EXERCISED:
        assert isinstance(component.factory, type), f"{key}: check its factory's class here"
        assert missing_members(component.factory, component.kind) == []
        return
    config = _config(component, shapes)
    context: dict[str, Any] = {}
    if component.kind == "bridge":
        context["encoder_dim"] = 16
    elif component.kind in ("llm", "exporter"):
        context["plugins"] = PLUGINS
    elif component.kind == "logger":
        context["tmp_path"] = tmp_path
    elif component.kind == "task":
        source = PLUGINS.get("dataset", TASK_SAMPLES.get(component.name, "coco_caption"))
        builder = source.build(_config(source, shapes))
        context["samples"] = [builder[i] for i in range(min(len(builder), 4))]
    if component.kind == "exporter":
        context["model"] = request.getfixturevalue("tiny_model")
    elif component.kind == "qat":
        context["model"] = request.getfixturevalue("fresh_model")  # prepare changes it in place
    kit.check_component(component, config, **context)


def test_the_kit_reached_every_kind_we_register():
    kinds = {c.kind for c in COMPONENTS}
    assert {
        "encoder",
        "bridge",
        "llm",
        "dataset",
        "task",
        "source",
        "quantizer",
        "exporter",
        "qat",
        "logger",
    } <= kinds, kinds
    assert set(DATASETS) <= set(PLUGINS.names("dataset")), "a dataset in DATASETS is not registered"
    assert set(NOT_EXERCISED) <= {(c.kind, c.name) for c in COMPONENTS}


# -- the shapes set in the formats its generator does not write -------------------------------


def _write_other_formats(out: Path, split: str) -> None:
    """OK-VQA, A-OKVQA, GQA, OCR-VQA and Flickr30k files made from the shapes set's ``split``."""
    coco = json.loads((out / "coco" / "annotations" / f"captions_{split}2017.json").read_text())
    questions = json.loads((out / "vqa" / f"v2_OpenEnded_mscoco_{split}2014_questions.json").read_text())
    answers = json.loads((out / "vqa" / f"v2_mscoco_{split}2014_annotations.json").read_text())
    images = {im["id"]: out / "coco" / f"{split}2017" / im["file_name"] for im in coco["images"]}
    captions: dict[int, list[str]] = {}
    for a in coco["annotations"]:
        captions.setdefault(a["image_id"], []).append(a["caption"])
    by_question = {a["question_id"]: a for a in answers["annotations"]}
    rows = [(q, by_question[q["question_id"]]) for q in questions["questions"]]

    okvqa = out / "okvqa"  # OK-VQA is in the VQAv2 format under other names
    okvqa.mkdir()
    shutil.copy(
        out / "vqa" / f"v2_OpenEnded_mscoco_{split}2014_questions.json",
        okvqa / f"OpenEnded_mscoco_{split}2014_questions.json",
    )
    shutil.copy(
        out / "vqa" / f"v2_mscoco_{split}2014_annotations.json",
        okvqa / f"mscoco_{split}2014_annotations.json",
    )

    aokvqa = []
    for q, a in rows:
        given = [x["answer"] for x in a["answers"]]
        choices = sorted({*given[:3], a["multiple_choice_answer"], "none"})[:4]
        aokvqa.append(
            {
                "split": split,
                "image_id": q["image_id"],
                "question_id": str(q["question_id"]),
                "question": q["question"],
                "choices": choices,
                "correct_choice_idx": choices.index(a["multiple_choice_answer"]),
                "direct_answers": given,
                "difficult_direct_answer": False,
                "rationales": [f"The image shows {captions[q['image_id']][0]}."],
            }
        )
    _dump(out / "aokvqa" / f"aokvqa_v1p0_{split}.json", aokvqa)

    gqa = {
        str(q["question_id"]): {
            "question": q["question"],
            "imageId": str(q["image_id"]),
            "answer": a["multiple_choice_answer"],
            "fullAnswer": a["multiple_choice_answer"],
        }
        for q, a in rows
    }
    _dump(out / "gqa" / f"{split}_balanced_questions.json", gqa)
    ocrvqa = {
        str(image_id): {
            "imageURL": f"http://example.invalid/{image_id}.jpg",
            "questions": [f"What is on the cover of book {image_id}?"],
            "answers": [texts[0]],
            "split": {"train": 1, "val": 2, "test": 3}[split],
        }
        for image_id, texts in captions.items()
    }
    _dump(out / "ocrvqa" / "dataset.json", ocrvqa)
    flickr = {
        "images": [
            {"filename": f"{image_id}.jpg", "split": split, "sentences": [{"raw": t} for t in texts]}
            for image_id, texts in captions.items()
        ]
    }
    _dump(out / "flickr30k" / "dataset_flickr30k.json", flickr)
    for folder in (out / "gqa" / "images", out / "ocrvqa" / "images", out / "flickr30k" / "flickr30k-images"):
        folder.mkdir(parents=True)
        for image_id, path in images.items():
            shutil.copy(path, folder / f"{image_id}.jpg")


def _dump(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
