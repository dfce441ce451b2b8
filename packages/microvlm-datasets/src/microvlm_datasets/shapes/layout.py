"""Where the shapes set puts each format inside its folder (shared by the generator and the builders).

::

    OUT/shapes.json                                   manifest: seed, image size, counts
    OUT/coco/annotations/captions_{split}2017.json    COCO captions
    OUT/coco/{split}2017/{image_id:012d}.jpg           the images (COCO 2017 naming)
    OUT/vqa/v2_OpenEnded_mscoco_{subset}_questions.json   VQAv2, subsets train2014, val2014, test2015
    OUT/vqa/v2_mscoco_{subset}_annotations.json           (test2015 too: the synthetic test has answers)
    OUT/refcoco/{train,validation,test}.jsonl         RefCOCO rows as on the Hugging Face hub
    OUT/llava/llava_instruct_150k.json                LLaVA conversations (train);
    OUT/llava/llava_instruct_{val,test}.json          the other splits
    OUT/shards/{split}/00000.tar, 00000_stats.json    img2dataset web shards

The VQAv2, RefCOCO and LLaVA files refer to the images under ``OUT/coco`` by id, the way the
real ones refer to COCO: point their builders' ``image_root`` at ``OUT/coco`` (LLaVA:
``OUT/coco/{split}2017``).
"""

from __future__ import annotations

from pathlib import Path

SPLITS = ("train", "val", "test")
MANIFEST = "shapes.json"
FORMAT_VERSION = 2  # in the manifest; 2: refcoco/ bbox as [x1, y1, x2, y2], as jxu124/refcoco has it
OWNED = ("coco", "vqa", "refcoco", "llava", "shards", "tokenizer", MANIFEST)  # what a new generation replaces

VQA_SUBSETS = {"train": "train2014", "val": "val2014", "test": "test2015"}
REFCOCO_SPLITS = {"train": "train", "val": "validation", "test": "test"}
LLAVA_FILES = {
    "train": "llava_instruct_150k.json",
    "val": "llava_instruct_val.json",
    "test": "llava_instruct_test.json",
}


def coco_dir(out: Path) -> Path:
    return out / "coco"


def captions_file(out: Path, split: str) -> Path:
    return out / "coco" / "annotations" / f"captions_{split}2017.json"


def image_dir(out: Path, split: str) -> Path:
    return out / "coco" / f"{split}2017"


def image_name(image_id: int) -> str:
    return f"{image_id:012d}.jpg"


def vqa_dir(out: Path) -> Path:
    return out / "vqa"


def vqa_questions_file(out: Path, split: str) -> Path:
    return out / "vqa" / f"v2_OpenEnded_mscoco_{VQA_SUBSETS[split]}_questions.json"


def vqa_annotations_file(out: Path, split: str) -> Path:
    return out / "vqa" / f"v2_mscoco_{VQA_SUBSETS[split]}_annotations.json"


def refcoco_dir(out: Path) -> Path:
    return out / "refcoco"


def refcoco_file(out: Path, split: str) -> Path:
    return out / "refcoco" / f"{REFCOCO_SPLITS[split]}.jsonl"


def llava_dir(out: Path) -> Path:
    return out / "llava"


def llava_file(out: Path, split: str) -> Path:
    return out / "llava" / LLAVA_FILES[split]


def shards_root(out: Path) -> Path:
    return out / "shards"


def shard_dir(out: Path, split: str) -> Path:
    return out / "shards" / split
