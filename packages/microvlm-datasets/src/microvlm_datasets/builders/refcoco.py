"""RefCOCO, RefCOCO+ and RefCOCOg from the Hugging Face copies — never from the original
``refs(unc).p`` pickles. Two hub forms are read; which one a folder holds is told from its files.

**jxu124** (``jxu124/refcoco``, ``jxu124/refcocoplus``, ``jxu124/refcocog``), one file per split:

- ``{root}/{hf_split}.jsonl``: the hub rows as JSON lines, exactly what
  ``datasets.load_dataset("jxu124/refcoco")[hf_split].to_json(...)`` writes; or
- ``{root}/data/{hf_split}-*.parquet``: the hub's own files
  (``huggingface-cli download jxu124/refcoco --repo-type dataset --local-dir {root}``).

``hf_split`` is ``train``, ``validation`` (our ``val``), ``test``, ``testA`` or ``testB``. Each
row is one referred object. Its columns, from the dataset card
(https://huggingface.co/datasets/jxu124/refcoco/blob/main/README.md): ``sent_ids``,
``file_name``, ``ann_id``, ``ref_id``, ``image_id``, ``split``, ``sentences``
``[{"raw", "sent", "sent_id", "tokens"}]``, ``category_id``, ``raw_anns`` (a JSON string of the
COCO annotation), ``raw_image_info`` (a JSON string of the COCO image record, with
``width``/``height``), ``raw_sentences``, ``image_path``, ``bbox``, ``captions``,
``global_image_id`` (and ``anns_id`` in the newest revision). **``bbox`` is
``[x1, y1, x2, y2]`` in pixels**, while the COCO box in ``raw_anns`` is ``[x, y, w, h]`` (issue
14, checked on the hub rows; third-party readers of these rows say the same, e.g. "jxu124's
top-level ``bbox`` is XYXY; ``raw_anns['bbox']`` is COCO XYWH"). Where a row has both, they
must agree (to 0.01 px), so a file that holds ``[x, y, w, h]`` in ``bbox`` is an error naming
the row instead of boxes twice too large. One sample per sentence. Every RefCOCO image is a
COCO train2014 image; it is found by ``image_id`` under ``image_root`` (2014 or 2017 naming,
see :class:`CocoImages`), not through ``image_path``.

**lmms-lab** (``lmms-lab/RefCOCO``, ``RefCOCOplus``, ``RefCOCOg``, what lmms-eval evaluates on):
``{root}/data/{split}-0000N-of-0000M.parquet``, splits ``val``, ``test``, ``testA``, ``testB``,
``bbox`` ``[x, y, w, h]``, the image inside the row; one sample per ``answer``. No
``image_root`` is needed. See :mod:`.refcoco_parquet` for the columns and sources.

Parquet needs pyarrow: ``pip install "microvlm-datasets[parquet]"``. A sentence that is not
a string or is empty is left out and counted.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from microvlm.data import Box, ImageRef, Sample
from microvlm_datasets.builders.base import (
    MalformedDataError,
    RecordBuilder,
    expect,
    get,
    integer,
    missing,
    number,
    read_jsonl,
    text,
)
from microvlm_datasets.builders.coco_images import CocoImages
from microvlm_datasets.builders.refcoco_parquet import (
    RowImages,
    coco_image_id,
    detect,
    lmms_rows,
    pyarrow_parquet,
)
from microvlm_datasets.config import RefCocoConfig

logger = logging.getLogger(__name__)

HF_SPLITS = {"train": "train", "val": "validation", "test": "test", "testA": "testA", "testB": "testB"}
IMAGE_SUBSET = "train2014"

BOX_TOLERANCE = 0.01  # px: bbox and raw_anns' box agree to this (COCO boxes have 2 decimals)

Corners = tuple[float, float, float, float]  # (x1, y1, x2, y2) in pixels
# where the image is: a COCO image id, or (parquet file, row group, index, where) of an lmms-lab row
ImageAt = int | tuple[str, int, int, str]
# (sample id, image, expression, box, (width, height) or None, meta)
RefRecord = tuple[str, ImageAt, str, Corners, tuple[int, int] | None, dict[str, Any]]


def _maybe_json(value: Any, where: str) -> Any:
    """Some hub revisions store nested fields as JSON strings."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise MalformedDataError(f"{where}: invalid JSON string: {exc.msg}") from None
    return value


def row_sentences(row: Any, where: str) -> list[tuple[Any, Any, str]]:
    """``[(text, sent_id, where)]`` of a row: ``sentences`` (``sent``, else ``raw``), else
    ``captions``; each text is checked with :func:`text` by the caller."""
    sentences = _maybe_json(row.get("sentences"), f"{where}.sentences")
    if sentences:
        out = []
        for i, s in enumerate(expect(sentences, list, f"{where}.sentences")):
            if not isinstance(s, dict):
                raise MalformedDataError(f"{where}.sentences[{i}]: expected an object with 'sent' or 'raw'")
            out.append((s.get("sent") or s.get("raw"), s.get("sent_id", i), f"{where}.sentences[{i}]"))
        return out
    texts = row.get("captions") or row.get("texts")
    if texts is None:
        raise MalformedDataError(f"{where}: no 'sentences' (or 'captions') field")
    return [(t, i, f"{where}.captions[{i}]") for i, t in enumerate(expect(texts, list, f"{where}.captions"))]


def _image_size(row: Any, where: str) -> tuple[int, int] | None:
    info = _maybe_json(row.get("raw_image_info") or row.get("image_info"), f"{where}.raw_image_info")
    if isinstance(info, dict) and "width" in info and "height" in info:
        return integer(info["width"], f"{where}.width"), integer(info["height"], f"{where}.height")
    return None


def _numbers(value: Any, where: str, shape: str) -> tuple[float, float, float, float]:
    box = expect(value, list, where)
    if len(box) != 4:
        raise MalformedDataError(f"{where}: expected {shape}, got {box}")
    a, b, c, d = (number(v, f"{where}[{k}]") for k, v in enumerate(box))
    return a, b, c, d


def jxu124_box(row: Any, where: str) -> Corners:
    """A jxu124 row's ``bbox`` ``[x1, y1, x2, y2]``, checked against the COCO ``[x, y, w, h]``
    box in ``raw_anns`` (``anns`` in an older revision) when the row has one."""
    x1, y1, x2, y2 = corners = _numbers(get(row, "bbox", where), f"{where}.bbox", "[x1, y1, x2, y2]")
    ann = _maybe_json(row.get("raw_anns") or row.get("anns"), f"{where}.raw_anns")
    if isinstance(ann, dict) and ann.get("bbox") is not None:
        x, y, w, h = coco = _numbers(ann["bbox"], f"{where}.raw_anns.bbox", "[x, y, w, h]")
        expected = [x, y, round(x + w, 6), round(y + h, 6)]
        if not all(math.isclose(a, b, abs_tol=BOX_TOLERANCE) for a, b in zip(corners, expected, strict=True)):
            raise MalformedDataError(
                f"{where}.bbox: {list(corners)} is not the box of raw_anns.bbox {list(coco)} ([x, y, w, h]): "
                f"jxu124 rows hold bbox as [x1, y1, x2, y2], here {expected}. A file written by "
                f"`microvlm datasets shapes` before this was fixed held [x, y, w, h]: write it again"
            )
    if x2 < x1 or y2 < y1:
        raise MalformedDataError(
            f"{where}.bbox: expected [x1, y1, x2, y2] with x2 >= x1 and y2 >= y1, got {list(corners)}: "
            f"jxu124 rows hold the box's corners there, not [x, y, w, h] (that is raw_anns.bbox)"
        )
    return corners


class RefCoco(RecordBuilder[RefRecord]):
    """``refcoco``, ``refcoco_plus``, ``refcocog``: a referring expression and its box per sample."""

    def __init__(self, config: RefCocoConfig, name: str = "refcoco") -> None:
        super().__init__(name, config.root)
        self.config = config
        self.hf_split = HF_SPLITS[config.split]
        self.jsonl = self.root / f"{self.hf_split}.jsonl"
        self.form, self.files = self._find()
        self.row_images = RowImages()
        self.images = CocoImages(config.image_root, config.image_layout, name)
        if self.form != "lmms":  # lmms-lab rows hold their images
            self.images.check((IMAGE_SUBSET,))

    def _find(self) -> tuple[str, list[Path]]:
        """``(form, files)``: ``jsonl``, ``jxu124`` or ``lmms``, from the files present."""
        if self.jsonl.is_file():
            return "jsonl", [self.jsonl]
        names = [self.hf_split] + (["val"] if self.hf_split == "validation" else [])  # lmms-lab: val
        patterns = [self.root / "data" / f"{n}-*.parquet" for n in names]
        for pattern in patterns:
            files = sorted(pattern.parent.glob(pattern.name))
            if files:
                return detect(self.name, files), files
        raise missing(self.name, self.jsonl, tried=[self.jsonl, *patterns])

    @property
    def annotation_files(self) -> tuple[Path, ...]:
        return tuple(self.files)

    def _rows(self) -> tuple[str, list[Any]]:
        if self.form == "jsonl":
            return str(self.jsonl), read_jsonl(self.jsonl)
        pq = pyarrow_parquet(self.name, self.files[0])
        rows: dict[Any, Any] = {}
        for path in self.files:  # some hub revisions hold two files of one split: keep each ref once
            for row in pq.read_table(path).to_pylist():
                rows.setdefault(row.get("ref_id"), row)
        return str(self.files[0].parent), list(rows.values())

    def _load(self) -> list[RefRecord]:
        return self._load_lmms() if self.form == "lmms" else self._load_jxu124()

    def _load_jxu124(self) -> list[RefRecord]:
        where, rows = self._rows()
        records: list[RefRecord] = []
        for i, row in enumerate(rows):
            at = f"{where}: row {i + 1}"
            box = jxu124_box(row, at)
            image_id = integer(get(row, "image_id", at), f"{at}.image_id")
            ref_id = get(row, "ref_id", at)
            meta = {
                "ref_id": ref_id,
                "ann_id": row.get("ann_id"),
                "image_id": image_id,
                "category_id": row.get("category_id"),
                "split": row.get("split", self.config.split),
            }
            size = _image_size(row, at)
            for value, sent_id, sent_at in row_sentences(row, at):
                with self.bad_records:
                    expression = text(value, "expression", sent_at).strip()
                    records.append((f"{ref_id}_{sent_id}", image_id, expression, box, size, meta))
        return records

    def _load_lmms(self) -> list[RefRecord]:
        records: list[RefRecord] = []
        for image, row in lmms_rows(self.files):
            at = image[3]
            x, y, w, h = _numbers(get(row, "bbox", at), f"{at}.bbox", "[x, y, width, height]")
            if w < 0 or h < 0:
                raise MalformedDataError(
                    f"{at}.bbox: width and height must be >= 0, got {[x, y, w, h]} "
                    f"(lmms-lab rows hold COCO [x, y, w, h]): is this file damaged? download it again"
                )
            question_id = get(row, "question_id", at)
            meta = {
                "question_id": question_id,
                "file_name": row.get("file_name"),
                "image_id": coco_image_id(row.get("file_name")),
                "iscrowd": row.get("iscrowd"),
                "split": self.config.split,
            }
            answers = expect(get(row, "answer", at), list, f"{at}.answer")
            for k, value in enumerate(answers):
                with self.bad_records:
                    expression = text(value, "expression", f"{at}.answer[{k}]").strip()
                    records.append(
                        (f"{question_id}_{k}", image, expression, (x, y, x + w, y + h), None, meta)
                    )
        return records

    def _sample(self, record: RefRecord) -> Sample:
        sample_id, at, expression, (x1, y1, x2, y2), size, meta = record
        if isinstance(at, int):
            image = ImageRef(path=self.images.path(IMAGE_SUBSET, at), size=size)
        else:
            image = ImageRef(data=self.row_images.read(*at))
        return Sample(
            id=sample_id,
            image=image,
            dataset=self.name,
            expression=expression,
            box=Box(x1, y1, x2, y2),
            meta=meta,
        )
