"""Writing one split of the shapes set in the real formats (see :mod:`.layout` for the paths).

Everything written is a function of the scenes alone: no timestamps, fixed tar headers,
JSON in a fixed key order, so a seed reproduces the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import tarfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from microvlm_datasets.shapes import layout, text
from microvlm_datasets.shapes.scene import KINDS, Scene, Shape

if TYPE_CHECKING:
    import numpy as np

INFO = {
    "description": "MicroVLM-E synthetic shapes, written in this dataset's format",
    "url": "",
    "version": "1.0",
    "year": 2017,
    "contributor": "microvlm datasets shapes",
    "date_created": "",
}
LICENSE = {"url": "", "id": 1, "name": "CC0 1.0 (synthetic data)"}
SHARD_DIGITS = 5  # img2dataset's oom_shard_count for fewer than 100 000 shards
TAR_USER = "bigdata"  # what webdataset's TarWriter writes


def _round(value: float) -> float:
    return round(float(value), 2)


def _segmentation(shape: Shape) -> list[float]:
    """COCO polygon ``[x1, y1, x2, y2, ...]``; a circle as a 16-gon, a square as its corners."""
    if shape.kind in ("circle", "square"):
        (x0, y0), (x1, y1) = shape.points
        if shape.kind == "square":
            corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        else:
            cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
            corners = [
                (cx + r * math.cos(2 * math.pi * i / 16), cy + r * math.sin(2 * math.pi * i / 16))
                for i in range(16)
            ]
    else:
        corners = list(shape.points)
    return [_round(v) for point in corners for v in point]


def _area(polygon: list[float]) -> float:
    xs, ys = polygon[0::2], polygon[1::2]
    n = len(xs)
    return _round(abs(sum(xs[i] * ys[(i + 1) % n] - xs[(i + 1) % n] * ys[i] for i in range(n))) / 2)


def _dump(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")  # dumps: the C encoder


class ShardWriter:
    """img2dataset's webdataset output: ``00000.tar`` + ``00000_stats.json`` (+ ``00000.parquet``).

    Keys are img2dataset's: shard id and index within the shard, zero-padded
    (``oom_sample_per_shard = ceil(log10(samples_per_shard))`` digits). The parquet file,
    img2dataset's per-shard metadata table, is written only when pyarrow is installed.
    """

    def __init__(self, folder: Path, samples_per_shard: int) -> None:
        self.folder = folder
        self.per_shard = samples_per_shard
        self.digits = max(1, math.ceil(math.log10(samples_per_shard)))
        self.shard_id = -1
        self.count = 0  # samples in the current shard
        self.shards = 0  # shards written
        self._tar: tarfile.TarFile | None = None
        self._meta: list[dict[str, Any]] = []

    def add(self, jpeg: bytes, caption: str, url: str, size: int) -> None:
        if self._tar is None or self.count == self.per_shard:
            self._finish()
            self.shard_id += 1
            self.folder.mkdir(parents=True, exist_ok=True)
            self._tar = tarfile.open(  # noqa: SIM115 - open across add() calls, closed in _finish()
                self.folder / f"{self.shard_id:0{SHARD_DIGITS}d}.tar", "w", format=tarfile.USTAR_FORMAT
            )
        key = f"{self.shard_id * 10**self.digits + self.count:0{SHARD_DIGITS + self.digits}d}"
        meta = {
            "url": url,
            "caption": caption,
            "key": key,
            "status": "success",
            "error_message": None,
            "width": size,
            "height": size,
            "original_width": size,
            "original_height": size,
            "exif": None,
            "sha256": hashlib.sha256(jpeg).hexdigest(),
        }
        for ext, data in (
            ("jpg", jpeg),
            ("json", json.dumps(meta, indent=4).encode()),
            ("txt", caption.encode()),
        ):
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size, info.mtime, info.mode = len(data), 0, 0o444
            info.uname = info.gname = TAR_USER
            self._tar.addfile(info, io.BytesIO(data))
        self._meta.append(meta)
        self.count += 1

    def _finish(self) -> None:
        if self._tar is None:
            return
        self._tar.close()
        name = f"{self.shard_id:0{SHARD_DIGITS}d}"
        stats = {
            "count": self.count,
            "successes": self.count,
            "failed_to_download": 0,
            "failed_to_resize": 0,
            "duration": 0.0,  # fixed, so that a seed reproduces the same bytes
            "start_time": 0.0,
            "end_time": 0.0,
            "status_dict": {"success": self.count},
        }
        (self.folder / f"{name}_stats.json").write_text(json.dumps(stats, indent=4), encoding="utf-8")
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            pass
        else:
            pq.write_table(pa.Table.from_pylist(self._meta), self.folder / f"{name}.parquet")
        self.shards += 1
        self._tar, self.count, self._meta = None, 0, []

    def close(self) -> None:
        self._finish()


class SplitWriter:
    """Collects one split's images and texts, writes images and shards as it goes, JSON at the end."""

    def __init__(self, out: Path, split: str, image_size: int, samples_per_shard: int) -> None:
        self.out, self.split, self.size = out, split, image_size
        self.image_dir = layout.image_dir(out, split)
        self.image_dir.mkdir(parents=True, exist_ok=True)
        self.shards = ShardWriter(layout.shard_dir(out, split), samples_per_shard)
        self.images: list[dict[str, Any]] = []
        self.captions: list[dict[str, Any]] = []
        self.questions: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []
        self.refs: list[dict[str, Any]] = []
        self.conversations: list[dict[str, Any]] = []

    def add(self, image_id: int, scene: Scene, jpeg: bytes, rng: np.random.Generator) -> None:
        """One image: its file, and every text about it (consumes ``rng`` in a fixed order)."""
        file_name = layout.image_name(image_id)
        (self.image_dir / file_name).write_bytes(jpeg)
        image = {
            "license": 1,
            "file_name": file_name,
            "coco_url": "",
            "height": self.size,
            "width": self.size,
            "date_captured": "",
            "flickr_url": "",
            "id": image_id,
        }
        self.images.append(image)
        caps = text.captions(scene, rng)
        self.captions += [
            {"image_id": image_id, "id": image_id * 10 + k, "caption": c} for k, c in enumerate(caps)
        ]
        self._add_questions(image_id, scene, rng)
        self._add_refs(image_id, scene, image, rng)
        self._add_conversation(image_id, scene, rng)
        self.shards.add(jpeg, caps[0], f"shapes://{self.split}/{file_name}", self.size)

    def _add_questions(self, image_id: int, scene: Scene, rng: np.random.Generator) -> None:
        for k, qa in enumerate(text.questions(scene, rng)):
            qid = image_id * 1000 + k
            given = text.annotator_answers(qa, rng)
            self.questions.append({"image_id": image_id, "question": qa.question, "question_id": qid})
            self.answers.append(
                {
                    "question_type": qa.question_type,
                    "multiple_choice_answer": Counter(a for a, _ in given).most_common(1)[0][0],
                    "answers": [
                        {"answer": a, "answer_confidence": c, "answer_id": i + 1}
                        for i, (a, c) in enumerate(given)
                    ],
                    "image_id": image_id,
                    "answer_type": qa.answer_type,
                    "question_id": qid,
                }
            )

    def _add_refs(self, image_id: int, scene: Scene, image: dict[str, Any], rng: np.random.Generator) -> None:
        """One jxu124/refcoco row per shape: ``bbox`` [x1, y1, x2, y2], ``raw_anns`` the COCO
        annotation with its [x, y, w, h] box (see :mod:`microvlm_datasets.builders.refcoco`)."""
        for k, shape in enumerate(scene.shapes):
            ref_id = ann_id = image_id * 10 + k
            sentences = [
                {"raw": e, "sent": e, "sent_id": ref_id * 10 + j, "tokens": e.split()}
                for j, e in enumerate(text.expressions(scene, shape, rng))
            ]
            bbox = [_round(v) for v in shape.box]  # COCO [x, y, w, h]
            x, y, w, h = bbox
            corners = [x, y, _round(x + w), _round(y + h)]  # jxu124's top-level bbox: [x1, y1, x2, y2]
            category_id = KINDS.index(shape.kind) + 1
            segmentation = _segmentation(shape)
            ann = {
                "segmentation": [segmentation],
                "area": _area(segmentation),
                "iscrowd": 0,
                "image_id": image_id,
                "bbox": bbox,
                "category_id": category_id,
                "id": ann_id,
            }
            self.refs.append(
                {
                    "sent_ids": [s["sent_id"] for s in sentences],
                    "file_name": f"{image_id:012d}_{ann_id}.jpg",
                    "ann_id": ann_id,
                    "ref_id": ref_id,
                    "image_id": image_id,
                    "split": self.split,
                    "sentences": sentences,
                    "category_id": category_id,
                    "raw_anns": json.dumps(ann),
                    "raw_image_info": json.dumps(image),
                    "raw_sentences": json.dumps(sentences),
                    "image_path": f"coco/{self.split}2017/{image['file_name']}",
                    "bbox": corners,
                    "captions": [s["sent"] for s in sentences],
                    "global_image_id": f"coco.{image_id}",
                }
            )

    def _add_conversation(self, image_id: int, scene: Scene, rng: np.random.Generator) -> None:
        turns = []
        for k, (question, answer) in enumerate(text.conversation(scene, rng)):
            value = question
            if k == 0:  # LLaVA puts the placeholder before or after the first question
                value = f"<image>\n{question}" if rng.random() < 0.5 else f"{question}\n<image>"
            turns += [{"from": "human", "value": value}, {"from": "gpt", "value": answer}]
        self.conversations.append(
            {"id": f"{image_id:012d}", "image": layout.image_name(image_id), "conversations": turns}
        )

    def close(self) -> dict[str, int]:
        """Write the annotation files; returns the split's counts."""
        self.shards.close()
        out, split = self.out, self.split
        _dump(
            layout.captions_file(out, split),
            {
                "info": INFO,
                "licenses": [LICENSE],
                "images": self.images,
                "annotations": self.captions,
            },
        )
        subset = layout.VQA_SUBSETS[split]
        _dump(
            layout.vqa_questions_file(out, split),
            {
                "info": INFO,
                "task_type": "Open-Ended",
                "data_type": "mscoco",
                "license": LICENSE,
                "data_subtype": subset,
                "questions": self.questions,
            },
        )
        _dump(
            layout.vqa_annotations_file(out, split),
            {
                "info": INFO,
                "license": LICENSE,
                "data_subtype": subset,
                "annotations": self.answers,
                "data_type": "mscoco",
            },
        )
        refcoco = layout.refcoco_file(out, split)
        refcoco.parent.mkdir(parents=True, exist_ok=True)
        with refcoco.open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(row) + "\n" for row in self.refs)
        _dump(layout.llava_file(out, split), self.conversations)
        return {
            "images": len(self.images),
            "captions": len(self.captions),
            "questions": len(self.questions),
            "refs": len(self.refs),
            "expressions": sum(len(r["sentences"]) for r in self.refs),
            "conversations": len(self.conversations),
            "shards": self.shards.shards,
        }
