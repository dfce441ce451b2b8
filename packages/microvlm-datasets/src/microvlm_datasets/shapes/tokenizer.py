"""A tokenizer trained on a shapes set's own texts, for a language model built from scratch.

``write_tokenizer(out)`` reads the captions, questions, answers, referring expressions and
conversations of the train split and writes ``out/tokenizer/``: a ChatML byte-level BPE
tokenizer (Qwen2.5's pipeline, see :mod:`microvlm.models.llm.tokenizer`). The offline demo's
language model uses it; any text still encodes through the byte alphabet.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from microvlm_datasets.shapes import layout

TOKENIZER_DIR = "tokenizer"
VOCAB_SIZE = 1024  # upper bound; the shapes vocabulary needs about 500
PROMPT_WORDS = (
    "Describe this image. Describe the image. Question: Answer: Short answer: "
    "Give the bounding box of [0,1,2,3,4,5,6,7,8,9] 0 1 2 3 4 5 6 7 8 9"
)


def corpus(out: Path) -> Iterator[str]:
    """Every text of the train split (plus the task prompts)."""
    coco = layout.coco_dir(out)
    yield PROMPT_WORDS
    captions = coco / "annotations" / "captions_train2017.json"
    if captions.is_file():
        yield from (a["caption"] for a in json.loads(captions.read_text())["annotations"])
    vqa = layout.vqa_dir(out)
    for path in vqa.glob("*train*questions.json"):
        yield from (q["question"] for q in json.loads(path.read_text())["questions"])
    for path in vqa.glob("*train*annotations.json"):
        for ann in json.loads(path.read_text())["annotations"]:
            yield from (a["answer"] for a in ann["answers"])
    refcoco = layout.refcoco_dir(out) / "train.jsonl"
    if refcoco.is_file():
        for line in refcoco.read_text().splitlines():
            yield from (s["raw"] for s in json.loads(line)["sentences"])
    llava = layout.llava_file(out, "train")
    if llava.is_file():
        for record in json.loads(llava.read_text()):
            yield from (t["value"].replace("<image>", "") for t in record["conversations"])


def write_tokenizer(out: str | Path, vocab_size: int = VOCAB_SIZE) -> Path:
    """Train the tokenizer on ``out``'s texts and save it to ``out/tokenizer``."""
    from microvlm.models.llm.tokenizer import train_chatml_tokenizer

    out = Path(out)
    return train_chatml_tokenizer(corpus(out), out / TOKENIZER_DIR, vocab_size=vocab_size)
