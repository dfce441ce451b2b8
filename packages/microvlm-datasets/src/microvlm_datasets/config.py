"""Typed settings of every dataset builder: what a recipe's ``[[data]]`` entry is structured into.

One frozen class per registered name, so each has its own defaults. Paths are relative to the
working directory. Keys shared by all: ``root`` (the dataset's folder), ``split`` (``"train"``,
``"val"``, ``"test"``) and ``image_root`` (where the images are when they live elsewhere, e.g.
the COCO images that VQAv2, OK-VQA, A-OKVQA, RefCOCO and LLaVA use). This module imports
only attrs and core's validators, so ``microvlm plugins`` stays fast.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from microvlm.recipes import validators as v

Split = Literal["train", "val", "test"]

#: How COCO images are named on disk (see :class:`microvlm_datasets.builders.coco_images.CocoImages`):
#: "coco2014" ``train2014/COCO_train2014_{id:012d}.jpg``; "coco2017" ``train2017/{id:012d}.jpg``,
#: found by id in train2017/val2017/test2017; "auto" uses the 2014 names when that folder exists.
ImageLayout = Literal["auto", "coco2014", "coco2017"]

#: What a ``shapes`` entry reads from the synthetic set: each is one of the real formats.
ShapesView = Literal["caption", "vqa", "grounding", "instruct", "webdataset"]


def _root(default: str) -> Any:
    return attrs.field(default=default, validator=v.non_empty)


# -------------------------------------------------------------------------------------
# Captions
# -------------------------------------------------------------------------------------


@attrs.frozen
class CocoCaptionConfig:
    """``dataset = "coco_caption"``: COCO 2017 captions, or Karpathy's split of COCO 2014."""

    root: str = _root(
        "data/coco"
    )  # folder with annotations/captions_{split}2017.json (and the Karpathy json)
    split: Split = "train"  # COCO 2017 has no test captions: use format = "karpathy" for a test split
    image_root: str = ""  # folder holding train2017/, val2017/ (Karpathy: train2014/, val2014/); "" = root
    format: Literal["coco2017", "karpathy"] = "coco2017"  # which annotation file to read
    karpathy_file: str = "dataset_coco.json"  # Karpathy split file, in root or root/annotations
    restval: bool = True  # Karpathy: the "restval" images count as train (the usual 113k-image train set)
    image_layout: ImageLayout = "auto"  # file naming of the COCO images


@attrs.frozen
class Flickr30kConfig:
    """``dataset = "flickr30k"``: Karpathy's ``dataset_flickr30k.json`` or Kaggle's ``results.csv``."""

    root: str = _root("data/flickr30k")  # folder with dataset_flickr30k.json and/or the Kaggle download
    split: Literal["train", "val", "test", "all"] = "train"  # Kaggle's results.csv has no splits: "all"
    image_root: str = ""  # folder with the .jpg files; "" = root/flickr30k-images or Kaggle's folder
    format: Literal["karpathy", "kaggle_csv"] = "karpathy"  # which annotation file to read
    karpathy_file: str = "dataset_flickr30k.json"  # Karpathy split file, relative to root


# -------------------------------------------------------------------------------------
# Visual question answering
# -------------------------------------------------------------------------------------


@attrs.frozen
class VQAv2Config:
    """``dataset = "vqav2"``: ``v2_OpenEnded_mscoco_{subset}_questions.json`` + annotations JSON."""

    root: str = _root("data/vqa")  # folder with the question and annotation JSON files
    split: Split = "train"  # subset train2014 | val2014 | test2015 (test: questions only, no answers)
    image_root: str = "data/coco"  # COCO images (2014 or 2017 naming, see image_layout)
    subset: str = ""  # file-name subset overriding split, e.g. "test-dev2015"; "" = from split
    image_layout: ImageLayout = "auto"  # file naming of the COCO images


@attrs.frozen
class OKVQAConfig:
    """``dataset = "okvqa"``: ``OpenEnded_mscoco_{subset}_questions.json`` + annotations JSON."""

    root: str = _root("data/okvqa")  # folder with the question and annotation JSON files
    split: Split = "train"  # train2014 | val2014; OK-VQA has no test split (its val set is the benchmark)
    image_root: str = "data/coco"  # COCO images (2014 or 2017 naming, see image_layout)
    subset: str = ""  # file-name subset overriding split; "" = from split
    image_layout: ImageLayout = "auto"  # file naming of the COCO images


@attrs.frozen
class AOKVQAConfig:
    """``dataset = "aokvqa"``: ``aokvqa_v1p0_{split}.json`` (choices, direct answers, rationales)."""

    root: str = _root("data/aokvqa")  # folder with aokvqa_v1p0_{train,val,test}.json
    split: Split = "train"  # test has no answers
    image_root: str = "data/coco"  # COCO 2017 images: {split}2017/{image_id:012d}.jpg
    image_layout: ImageLayout = "auto"  # file naming of the COCO images


@attrs.frozen
class GQAConfig:
    """``dataset = "gqa"``: ``{split}_balanced_questions.json``, a dict question id -> record."""

    root: str = _root("data/gqa")  # folder with the questions (directly or in questions1.2/) and images/
    split: Split = "train"  # train | val | test = testdev_balanced (GQA's own test set has no answers)
    image_root: str = ""  # folder with {imageId}.jpg; "" = root/images
    questions_file: str = (
        ""  # overrides the file chosen by split, e.g. "train_all_questions/train_all_questions_0.json"
    )


@attrs.frozen
class OCRVQAConfig:
    """``dataset = "ocrvqa"``: ``dataset.json``, a dict book id -> {imageURL, questions, answers, split}."""

    root: str = _root("data/ocrvqa")  # folder with dataset.json and images/
    split: Split = "train"  # dataset.json's split code: 1 train, 2 val, 3 test
    image_root: str = ""  # folder with {book id}{extension of imageURL}; "" = root/images


# -------------------------------------------------------------------------------------
# Grounding
# -------------------------------------------------------------------------------------

RefSplit = Literal["train", "val", "test", "testA", "testB"]


@attrs.frozen
class RefCocoConfig:
    """``dataset = "refcoco"``: the Hugging Face ``jxu124/refcoco`` rows, as JSON lines or parquet."""

    root: str = _root(
        "data/refcoco"
    )  # folder with {train,validation,test,testA,testB}.jsonl or data/*.parquet
    split: RefSplit = "train"  # "val" reads the hub's "validation" split
    image_root: str = "data/coco"  # COCO images; every RefCOCO image is a COCO train2014 image
    image_layout: ImageLayout = "auto"  # file naming of the COCO images


@attrs.frozen
class RefCocoPlusConfig(RefCocoConfig):
    """``dataset = "refcoco_plus"``: ``jxu124/refcocoplus``, same layout as RefCOCO."""

    root: str = _root("data/refcoco_plus")  # folder with the split files (see refcoco)


@attrs.frozen
class RefCocogConfig(RefCocoConfig):
    """``dataset = "refcocog"``: ``jxu124/refcocog`` (umd split: train, val, test)."""

    root: str = _root("data/refcocog")  # folder with the split files (see refcoco)
    split: Split = "train"  # the umd split has no testA/testB


# -------------------------------------------------------------------------------------
# Instructions
# -------------------------------------------------------------------------------------


@attrs.frozen
class LlavaInstructConfig:
    """``dataset = "llava_instruct"``: LLaVA conversations, a JSON list of {id, image, conversations}."""

    root: str = _root("data/llava")  # folder with the conversations file
    file: str = (
        "llava_instruct_150k.json"  # also conversation_58k.json, detail_23k.json, llava_v1_5_mix665k.json
    )
    image_root: str = "data/coco/train2017"  # folder the records' "image" paths are relative to


# -------------------------------------------------------------------------------------
# Web shards (img2dataset output)
# -------------------------------------------------------------------------------------


@attrs.frozen
class WebDatasetConfig:
    """``dataset = "webdataset"``: img2dataset-style ``.tar`` shards of ``{key}.jpg/.txt/.json``."""

    root: str = _root("data/webdataset")  # folder with the shards
    split: str = ""  # sub-folder of root holding this split's shards; "" = the shards are in root
    shards: str = ""  # brace pattern relative to the folder, e.g. "{00000..00099}.tar"; "" = every *.tar
    caption_ext: str = attrs.field(
        default="txt", validator=v.non_empty
    )  # member extension holding the caption
    image_exts: tuple[str, ...] = attrs.field(  # member extensions tried for the image, in order
        default=("jpg", "jpeg", "png", "webp"), validator=v.names
    )
    index_workers: int = attrs.field(  # processes reading shard headers in parallel; 0 = one per CPU (max 16)
        default=0, validator=v.non_negative
    )


@attrs.frozen
class Cc3mConfig(WebDatasetConfig):
    """``dataset = "cc3m"``: Conceptual Captions 3M shards written by img2dataset."""

    root: str = _root("data/cc3m")  # folder with the shards


@attrs.frozen
class LaionCocoConfig(WebDatasetConfig):
    """``dataset = "laion_coco"``: LAION-COCO shards written by img2dataset (caption = top_caption)."""

    root: str = _root("data/laion_coco")  # folder with the shards


@attrs.frozen
class SbuConfig(WebDatasetConfig):
    """``dataset = "sbu"``: SBU Captions shards written by img2dataset."""

    root: str = _root("data/sbu")  # folder with the shards


# -------------------------------------------------------------------------------------
# The synthetic shapes set
# -------------------------------------------------------------------------------------


@attrs.frozen
class ShapesConfig:
    """``dataset = "shapes"``: one view of a ``microvlm datasets shapes`` folder (real builders)."""

    root: str = _root("data/shapes")  # the --out folder of `microvlm datasets shapes`
    split: Split = "train"  # which split to read
    view: ShapesView = "caption"  # caption = coco_caption, vqa = vqav2, grounding = refcoco, ...
    # Write the set into root first when root has none (what `microvlm datasets shapes`
    # would write with these settings); the offline demo relies on it.
    generate: bool = False
    n_train: int = attrs.field(default=5000, validator=v.non_negative)  # images, with generate
    n_val: int = attrs.field(default=500, validator=v.non_negative)  # images, with generate
    n_test: int = attrs.field(default=500, validator=v.non_negative)  # images, with generate
    image_size: int = attrs.field(default=128, validator=v.at_least(16))  # pixels, with generate
    seed: int = attrs.field(default=0, validator=v.non_negative)  # generator seed, with generate
