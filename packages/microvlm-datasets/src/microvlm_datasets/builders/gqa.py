"""GQA: balanced question files, a JSON object question id -> record, and the images/ folder.

On disk: ``{root}/{split}_balanced_questions.json`` (or under ``{root}/questions1.2/``, as the
zip unpacks) — ``{"<qid>": {"imageId", "question", "answer", "fullAnswer", "types", ...}}`` —
and ``{root}/images/{imageId}.jpg``. ``split = "test"`` reads ``testdev_balanced``: GQA's own
test set publishes no answers. A question or answer that is not a string or is empty, or an
``imageId`` that leads out of the image folder, leaves the question out (counted).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from microvlm.data import ImageRef, Sample
from microvlm_datasets.builders.base import (
    ImageFolder,
    RecordBuilder,
    expect,
    find_file,
    get,
    read_json,
    require_dir,
    text,
)
from microvlm_datasets.config import GQAConfig

GQA_FILES = {
    "train": "train_balanced_questions.json",
    "val": "val_balanced_questions.json",
    "test": "testdev_balanced_questions.json",
}

# (question id, image path, question, answer or "", meta)
GQARecord = tuple[str, str, str, str, dict[str, Any]]


class GQA(RecordBuilder[GQARecord]):
    """``gqa``: one sample per question; ``answers`` has the short answer, ``meta`` the full one."""

    def __init__(self, config: GQAConfig, name: str = "gqa") -> None:
        super().__init__(name, config.root)
        self.config = config
        file = config.questions_file or GQA_FILES[config.split]
        self.file = find_file(name, [self.root / file, self.root / "questions1.2" / file])
        self.image_dir = require_dir(
            name, Path(config.image_root) if config.image_root else self.root / "images", "image folder"
        )

    def _load(self) -> list[GQARecord]:
        where = str(self.file)
        folder = ImageFolder(self.image_dir)
        paths: dict[str, str] = {}  # image id -> its checked path, shared by its questions
        records: list[GQARecord] = []
        for qid, r in expect(read_json(self.file), dict, where).items():
            at = f"{where}: question {qid}"
            with self.bad_records:
                image_id = text(get(r, "imageId", at), "image id", f"{at}.imageId")
                if image_id not in paths:
                    paths[image_id] = folder.path(f"{image_id}.jpg", f"{at}.imageId")
                question = text(get(r, "question", at), "question", f"{at}.question")
                answer = text(r["answer"], "answer", f"{at}.answer") if "answer" in r else ""
                meta = {
                    "image_id": image_id,
                    "full_answer": r.get("fullAnswer", ""),
                    "types": r.get("types", {}),
                }
                records.append((str(qid), paths[image_id], question, answer, meta))
        return records

    def _sample(self, record: GQARecord) -> Sample:
        qid, path, question, answer, meta = record
        return Sample(
            id=qid,
            image=ImageRef(path=path),
            dataset=self.name,
            question=question,
            answers=(answer,) if answer else (),
            meta=meta,
        )
