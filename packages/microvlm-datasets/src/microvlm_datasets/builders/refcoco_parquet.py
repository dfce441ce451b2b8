"""RefCOCO parquet files: which hub form a split's files are, and reading lmms-lab's rows.

Two hub forms come as parquet, told apart by their columns (the file names of ``test``,
``testA`` and ``testB`` are the same in both):

- **jxu124** (``jxu124/refcoco``, ``refcocoplus``, ``refcocog``): ``data/{split}-*.parquet``
  with the rows described in :mod:`.refcoco` (``ref_id``, ``sentences``, ``raw_anns``, ...),
  ``validation`` for our ``val``; images are COCO files found by ``image_id``.
- **lmms-lab** (``lmms-lab/RefCOCO``, ``RefCOCOplus``, ``RefCOCOg``: what lmms-eval's
  ``refcoco*`` tasks read), ``data/{split}-0000N-of-0000M.parquet`` with splits ``val``,
  ``test``, ``testA``, ``testB`` (RefCOCO+: ``val``, ``testA``, ``testB``; RefCOCOg: ``val``,
  ``test``). Columns, from the dataset cards
  (https://huggingface.co/datasets/lmms-lab/RefCOCO/blob/main/README.md, and the RefCOCOplus
  and RefCOCOg cards): ``question_id`` (string), ``image`` (a Hugging Face Image: a struct of
  ``bytes`` and ``path``), ``question``, ``answer`` (a list of referring expressions),
  ``segmentation``, ``bbox`` (float32), ``iscrowd``, ``file_name``. ``bbox`` is COCO
  ``[x, y, w, h]`` in pixels, as lmms-eval reads it ("Original bbox format (top x, top y,
  width, height)", ``lmms_eval/tasks/refcoco/utils_rec.py`` in EvolvingLMMs-Lab/lmms-eval),
  and lmms-eval makes one example per answer; so do we. The image is inside the row: its
  bytes are read from the file when a sample is made, one row group at a time.

Reading parquet needs pyarrow, an optional extra: ``pip install "microvlm-datasets[parquet]"``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from microvlm_datasets.builders.base import MalformedDataError, MissingDataError

Form = Literal["jxu124", "lmms"]
PARQUET_EXTRA = 'pip install "microvlm-datasets[parquet]"'
JXU124_COLUMNS = frozenset({"ref_id", "image_id", "bbox"})  # and sentences or captions
LMMS_COLUMNS = frozenset({"question_id", "image", "answer", "bbox"})
COCO_FILE = re.compile(r"COCO_\w+?_0*(\d+)\.jpg$")  # file_name -> COCO image id


def pyarrow_parquet(dataset: str, path: Path) -> ModuleType:
    """``pyarrow.parquet``; without pyarrow, an error naming the file and the install command."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDataError(
            f"{dataset}: {path} is a parquet file, and reading parquet needs pyarrow: "
            f"{PARQUET_EXTRA} (or pip install pyarrow)"
        ) from None
    return pq


def detect(dataset: str, files: list[Path]) -> Form:
    """Which hub form ``files`` (one split's parquet files) are, from the first file's columns."""
    pq = pyarrow_parquet(dataset, files[0])
    try:
        columns = set(pq.read_schema(files[0]).names)
    except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        raise MalformedDataError(f"{dataset}: {files[0]}: not a readable parquet file ({exc})") from None
    if columns >= LMMS_COLUMNS:
        return "lmms"
    if columns >= JXU124_COLUMNS:
        return "jxu124"
    raise MalformedDataError(
        f"{dataset}: {files[0]}: columns {sorted(columns)} are neither jxu124/refcoco rows "
        f"({', '.join(sorted(JXU124_COLUMNS))}, sentences, ...) nor lmms-lab/RefCOCO rows "
        f"({', '.join(sorted(LMMS_COLUMNS))}, ...): download one of those datasets into this folder"
    )


def lmms_rows(files: list[Path]) -> Iterator[tuple[tuple[str, int, int, str], dict[str, Any]]]:
    """``((file, row group, index in it, where), row without its image)`` of every row, in file
    order; ``where`` is ``"{file}: row {n}"`` (n counted from 1 in the file)."""
    import pyarrow.parquet as pq

    for path in files:
        file = pq.ParquetFile(path)
        columns = [c for c in file.schema_arrow.names if c != "image"]
        n = 0
        for group in range(file.num_row_groups):
            for index, row in enumerate(file.read_row_group(group, columns=columns).to_pylist()):
                n += 1
                yield (str(path), group, index, f"{path}: row {n}"), row


def coco_image_id(file_name: Any) -> int | None:
    """The COCO image id in an lmms-lab ``file_name`` (``COCO_train2014_000000581857.jpg``)."""
    match = COCO_FILE.search(file_name) if isinstance(file_name, str) else None
    return int(match.group(1)) if match else None


class RowImages:
    """Image bytes of lmms-lab rows, read when a sample is made: a row group's images at a time,
    the last group kept (samples are mostly made in file order). Not pickled: a DataLoader
    worker reads its own."""

    def __init__(self) -> None:
        self._group: tuple[str, int] | None = None
        self._images: list[Any] = []

    def read(self, path: str, group: int, index: int, where: str) -> bytes:
        if self._group != (path, group):
            import pyarrow.parquet as pq

            table = pq.ParquetFile(path).read_row_group(group, columns=["image"])
            self._images, self._group = table.column("image").to_pylist(), (path, group)
        image = self._images[index]
        data = image.get("bytes") if isinstance(image, dict) else None
        if not isinstance(data, bytes) or not data:
            raise MalformedDataError(
                f"{where}.image: no image bytes (got {type(data).__name__}); lmms-lab/RefCOCO rows hold "
                f"the encoded image in image.bytes: download the split's files again"
            )
        return data

    def __getstate__(self) -> dict[str, Any]:
        return {"_group": None, "_images": []}
