"""Stand-ins for the download catalogue's files, shared by the download end-to-end tests (loaded
by path: the suite runs with ``--import-mode=importlib``)::

    standins = SimpleNamespace(**runpy.run_path(str(TESTS / "download_standins.py")))

Small files with the member names the real archives have (COCO's
``train2014/COCO_train2014_*.jpg``, VQAv2's ``v2_OpenEnded_mscoco_train2014_questions.json``,
GQA's ``images/``, Karpathy's ``dataset_coco.json`` and ``dataset_flickr30k.json``, ...), keyed by
the catalogue's own URLs, and the hub repositories' files (LLaVA's conversations, jxu124's
RefCOCO parquet rows, from the dataset cards' columns). The catalogue's sizes and checksums
are of the real files: :func:`no_checksums` drops them for the stand-ins.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs

from microvlm_datasets.download.sources import DatasetSource, RemoteFile

IDS = {"train": (1, 2), "val": (3,), "test": (4,)}  # COCO image ids per split
FLICKR_IMAGES = ("1000092795.jpg", "10002456.jpg", "1000268201.jpg")  # one per split
#: Karpathy's ``dataset_flickr30k.json``: one image per split, images by name in the Kaggle folder.
FLICKR30K = {
    "images": [
        {"filename": name, "imgid": n, "split": split, "sentences": [{"raw": "a red square"}]}
        for n, (split, name) in enumerate(zip(("train", "val", "test"), FLICKR_IMAGES, strict=True))
    ]
}


def noise_bytes(n: int) -> bytes:
    """``n`` bytes that do not compress (a large stand-in)."""
    out = bytearray()
    block = b"seed"
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def tgz_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def json_bytes(data: Any) -> bytes:
    return json.dumps(data).encode()


def vqa_members(split: str, prefix: str) -> dict[str, bytes]:
    subset = f"{split}2014"
    questions = [{"question_id": 10 * i, "image_id": i, "question": "Is it red?"} for i in IDS[split]]
    answers = [
        {"question_id": 10 * i, "image_id": i, "answers": [{"answer": "yes"}] * 10, "answer_type": "yes/no"}
        for i in IDS[split]
    ]
    return {
        f"{prefix}OpenEnded_mscoco_{subset}_questions.json": json_bytes({"questions": questions}),
        f"{'v2_' if prefix else ''}mscoco_{subset}_annotations.json": json_bytes({"annotations": answers}),
    }


def served_files(jpeg: bytes, padding: int = 0) -> dict[str, bytes]:
    """URL (as in the catalogue) -> the stand-in's bytes, for every catalogue file that is not a
    web URL list; ``padding`` bytes of noise go into train2014.zip (a large file to kill mid-body)."""
    noise = {"train2014/padding.bin": noise_bytes(padding)} if padding else {}
    coco14 = {s: {f"{s}2014/COCO_{s}2014_{i:012d}.jpg": jpeg for i in IDS[s]} for s in ("train", "val")}
    coco17 = {s: {f"{s}2017/{i:012d}.jpg": jpeg for i in IDS[s]} for s in ("train", "val")}
    captions17 = {
        f"annotations/captions_{s}2017.json": json_bytes(
            {
                "images": [{"id": i, "file_name": f"{i:012d}.jpg"} for i in IDS[s]],
                "annotations": [{"image_id": i, "id": i, "caption": "a red square"} for i in IDS[s]],
            }
        )
        for s in ("train", "val")
    }
    karpathy = {
        "images": [
            {
                "filepath": "val2014" if split != "train" else "train2014",
                "filename": f"COCO_{'val' if split != 'train' else 'train'}2014_{i:012d}.jpg",
                "cocoid": i,
                "split": split,
                "sentences": [{"raw": "a red square"}],
            }
            for split, i in (("train", 1), ("val", 3), ("test", 3))
        ]
    }
    vqa2 = {**vqa_members("train", "v2_"), **vqa_members("val", "v2_")}
    okvqa = {**vqa_members("train", ""), **vqa_members("val", "")}
    aokvqa = {
        f"aokvqa_v1p0_{split}.json": json_bytes(
            [
                {
                    "split": split,
                    "image_id": i,
                    "question_id": f"q{i}",
                    "question": "What colour?",
                    "choices": ["red", "blue", "green", "grey"],
                    "correct_choice_idx": 0,
                    "direct_answers": ["red"] * 10,
                    "difficult_direct_answer": False,
                    "rationales": ["It is red."],
                }
                for i in IDS[split]
            ]
        )
        for split in ("train", "val")
    }
    gqa = {
        name: json_bytes({"g1": {"question": "Is it red?", "imageId": "n1", "answer": "yes"}})
        for name in (
            "train_balanced_questions.json",
            "val_balanced_questions.json",
            "testdev_balanced_questions.json",
        )
    }
    stanford = "https://downloads.cs.stanford.edu/nlp/data/gqa"
    vqa = "https://s3.amazonaws.com/cvmlp/vqa/mscoco/vqa"
    ok = "https://okvqa.allenai.org/static/data"
    files = {
        "http://images.cocodataset.org/zips/train2014.zip": zip_bytes({**coco14["train"], **noise}),
        "http://images.cocodataset.org/zips/val2014.zip": zip_bytes(coco14["val"]),
        "http://images.cocodataset.org/annotations/annotations_trainval2014.zip": zip_bytes(
            {"annotations/x.json": b"{}"}
        ),
        "http://images.cocodataset.org/zips/train2017.zip": zip_bytes(coco17["train"]),
        "http://images.cocodataset.org/zips/val2017.zip": zip_bytes(coco17["val"]),
        "http://images.cocodataset.org/annotations/annotations_trainval2017.zip": zip_bytes(captions17),
        "http://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip": zip_bytes(
            {"dataset_coco.json": json_bytes(karpathy), "dataset_flickr30k.json": json_bytes(FLICKR30K)}
        ),
        f"{stanford}/questions1.2.zip": zip_bytes(gqa),
        f"{stanford}/images.zip": zip_bytes({"images/n1.jpg": jpeg}),
        "https://prior-datasets.s3.us-east-2.amazonaws.com/aokvqa/aokvqa_v1p0.tar.gz": tgz_bytes(aokvqa),
    }
    for which, name in (("Train", "train"), ("Val", "val")):
        files[f"{vqa}/v2_Questions_{which}_mscoco.zip"] = zip_bytes(
            {k: v for k, v in vqa2.items() if "questions" in k and name in k}
        )
        files[f"{vqa}/v2_Annotations_{which}_mscoco.zip"] = zip_bytes(
            {k: v for k, v in vqa2.items() if "annotations" in k and name in k}
        )
        for kind in ("OpenEnded_mscoco_{s}2014_questions.json", "mscoco_{s}2014_annotations.json"):
            member = kind.format(s=name)
            files[f"{ok}/{member}.zip"] = zip_bytes({member: okvqa[member]})
    return files


def no_checksums(source: DatasetSource) -> DatasetSource:
    """The stand-ins are not the real files: their sizes and digests are not the catalogue's."""

    def plain(file: RemoteFile) -> RemoteFile:
        return attrs.evolve(file, size=None, md5=None, sha256=None)

    return attrs.evolve(source, files=tuple(plain(f) for f in source.files))


def write_served(files: dict[str, bytes], served: Path) -> dict[str, str]:
    """Write ``files`` (URL -> bytes) under ``served/{host}/{path}``; ``{scheme://host: host}``,
    the ``--mirror`` prefixes to point at ``{server}/{host}``."""
    mirrors: dict[str, str] = {}
    for url, data in files.items():
        parts = urlsplit(url)
        target = served / parts.netloc / parts.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        mirrors[f"{parts.scheme}://{parts.netloc}"] = parts.netloc
    return mirrors


def llava_json() -> bytes:
    """``llava_instruct_150k.json`` with one conversation on COCO 2017 train image 1."""
    return json_bytes(
        [
            {
                "id": "1",
                "image": "000000000001.jpg",
                "conversations": [
                    {"from": "human", "value": "<image>\nWhat is it?"},
                    {"from": "gpt", "value": "A red square."},
                ],
            }
        ]
    )


def refcoco_parquet(split: str, image_id: int = 1) -> bytes:
    """One jxu124/refcoco row (the dataset card's columns) as a parquet file, on COCO 2014 train
    image ``image_id``; ``bbox`` [x1, y1, x2, y2], ``raw_anns``' COCO [x, y, w, h]."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = f"COCO_train2014_{image_id:012d}.jpg"
    sentences = [{"tokens": ["red", "square"], "raw": "red square", "sent_id": 0, "sent": "red square"}]
    ann = {"image_id": image_id, "bbox": [1.0, 1.0, 4.0, 3.0], "category_id": 1, "id": 7, "iscrowd": 0}
    row = {
        "sent_ids": [0],
        "file_name": name,
        "ann_id": 7,
        "ref_id": 0,
        "image_id": image_id,
        "split": split,
        "sentences": sentences,
        "category_id": 1,
        "raw_anns": json.dumps(ann),
        "raw_image_info": json.dumps({"file_name": name, "height": 6, "width": 8, "id": image_id}),
        "raw_sentences": json.dumps(sentences),
        "image_path": f"coco/train2014/{name}",
        "bbox": [1.0, 1.0, 5.0, 4.0],
        "captions": ["red square"],
        "global_image_id": f"coco.{image_id}",
    }
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([row]), buffer)
    return buffer.getvalue()


__all__ = [
    "FLICKR30K",
    "FLICKR_IMAGES",
    "IDS",
    "json_bytes",
    "llava_json",
    "no_checksums",
    "noise_bytes",
    "refcoco_parquet",
    "served_files",
    "tgz_bytes",
    "vqa_members",
    "write_served",
    "zip_bytes",
]
