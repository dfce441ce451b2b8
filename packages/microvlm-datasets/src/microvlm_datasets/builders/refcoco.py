"""RefCOCO, RefCOCO+ and RefCOCOg from the Hugging Face copies (``jxu124/refcoco``,
``jxu124/refcocoplus``, ``jxu124/refcocog``) — never from the original ``refs(unc).p`` pickles.

On disk, one file per split, either:

- ``{root}/{hf_split}.jsonl``: the hub rows as JSON lines, exactly what
  ``datasets.load_dataset("jxu124/refcoco")[hf_split].to_json(...)`` writes; or
- ``{root}/data/{hf_split}-*.parquet``: the hub's own files
  (``huggingface-cli download jxu124/refcoco --repo-type dataset --local-dir {root}``), read
  only when pyarrow is installed (it is not a dependency).

``hf_split`` is ``train``, ``validation`` (our ``val``), ``test``, ``testA`` or ``testB``. Each
row is one referred object: ``ref_id``, ``ann_id``, ``image_id``, ``split``, ``category_id``,
``bbox`` ``[x, y, w, h]`` in pixels, ``sentences`` ``[{"raw", "sent", "sent_id", "tokens"}]``,
``raw_image_info`` (a JSON string of the COCO image record, with ``width``/``height``),
``raw_anns``, ``file_name``, ``image_path``, ``captions``, ``global_image_id``. One sample per
sentence. Every RefCOCO image is a COCO train2014 image; it is found by ``image_id`` under
``image_root`` (2014 or 2017 naming, see :class:`CocoImages`), not through ``image_path``.
A sentence that is not a string or is empty is left out and counted.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from microvlm.data import Box, ImageRef, Sample
from microvlm_datasets.builders.base import (
    MalformedDataError,
    MissingDataError,
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
from microvlm_datasets.config import RefCocoConfig

logger = logging.getLogger(__name__)

HF_SPLITS = {"train": "train", "val": "validation", "test": "test", "testA": "testA", "testB": "testB"}
IMAGE_SUBSET = "train2014"

# (sample id, image id, expression, (x, y, w, h), (width, height) or None, meta)
RefRecord = tuple[str, int, str, tuple[float, float, float, float], tuple[int, int] | None, dict[str, Any]]


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


class RefCoco(RecordBuilder[RefRecord]):
    """``refcoco``, ``refcoco_plus``, ``refcocog``: a referring expression and its box per sample."""

    def __init__(self, config: RefCocoConfig, name: str = "refcoco") -> None:
        super().__init__(name, config.root)
        self.config = config
        self.hf_split = HF_SPLITS[config.split]
        self.jsonl = self.root / f"{self.hf_split}.jsonl"
        self.parquet = sorted((self.root / "data").glob(f"{self.hf_split}-*.parquet"))
        if not self.jsonl.is_file():
            if not self.parquet:
                raise missing(
                    name, self.jsonl, tried=[self.jsonl, self.root / "data" / f"{self.hf_split}-*.parquet"]
                )
            try:
                import pyarrow.parquet  # noqa: F401
            except ImportError:
                raise MissingDataError(
                    f"{name}: found {self.parquet[0]} but reading parquet needs pyarrow "
                    f"(pip install pyarrow), or convert the split to JSON lines at {self.jsonl}"
                ) from None
        self.images = CocoImages(config.image_root, config.image_layout, name)
        self.images.check((IMAGE_SUBSET,))

    @property
    def annotation_files(self) -> tuple[Path, ...]:
        return (self.jsonl,) if self.jsonl.is_file() else tuple(self.parquet)

    def _rows(self) -> tuple[str, list[Any]]:
        if self.jsonl.is_file():
            return str(self.jsonl), read_jsonl(self.jsonl)
        import pyarrow.parquet as pq

        rows: dict[Any, Any] = {}
        for path in self.parquet:  # some hub revisions hold two files of one split: keep each ref once
            for row in pq.read_table(path).to_pylist():
                rows.setdefault(row.get("ref_id"), row)
        return str(self.parquet[0].parent), list(rows.values())

    def _load(self) -> list[RefRecord]:
        where, rows = self._rows()
        records: list[RefRecord] = []
        for i, row in enumerate(rows):
            at = f"{where}: row {i + 1}"
            bbox = expect(get(row, "bbox", at), list, f"{at}.bbox")
            if len(bbox) != 4:
                raise MalformedDataError(f"{at}.bbox: expected [x, y, width, height], got {bbox}")
            x, y, w, h = (number(v, f"{at}.bbox[{k}]") for k, v in enumerate(bbox))
            if w < 0 or h < 0:
                raise MalformedDataError(f"{at}.bbox: width and height must be >= 0, got {bbox}")
            box = (x, y, w, h)
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

    def _sample(self, record: RefRecord) -> Sample:
        sample_id, image_id, expression, (x, y, w, h), size, meta = record
        return Sample(
            id=sample_id,
            image=ImageRef(path=self.images.path(IMAGE_SUBSET, image_id), size=size),
            dataset=self.name,
            expression=expression,
            box=Box.from_xywh(x, y, w, h),
            meta=meta,
        )
