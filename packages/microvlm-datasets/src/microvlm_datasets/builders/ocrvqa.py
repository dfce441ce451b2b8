"""OCR-VQA: ``dataset.json``, a JSON object book id -> record, and the downloaded covers.

On disk: ``{root}/dataset.json`` — ``{"<book id>": {"imageURL", "questions": [...],
"answers": [...], "title", "authorName", "genre", "split": 1 | 2 | 3}}`` (1 train, 2 val,
3 test) — and the covers as the dataset's ``loadDataset.py`` saves them:
``{root}/images/{book id}{extension of imageURL}``. One sample per question; a question or
answer that is not a string or is empty, or a book id that leads out of the image folder,
leaves the question out (counted).
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from microvlm.data import ImageRef, Sample
from microvlm_datasets.builders.base import (
    ImageFolder,
    MalformedDataError,
    RecordBuilder,
    expect,
    find_file,
    get,
    read_json,
    require_dir,
    text,
)
from microvlm_datasets.config import OCRVQAConfig

SPLIT_CODES = {"train": 1, "val": 2, "test": 3}

# (sample id, image path, question, answer, meta)
OCRRecord = tuple[str, str, str, str, dict[str, Any]]


def image_file_name(book_id: str, url: str) -> str:
    """``loadDataset.py``'s name for a cover: the book id plus the URL's extension."""
    ext = posixpath.splitext(url.split("?", 1)[0])[1]
    return f"{book_id}{ext or '.jpg'}"


class OCRVQA(RecordBuilder[OCRRecord]):
    """``ocrvqa``: questions about book covers (title, author, genre, ...)."""

    def __init__(self, config: OCRVQAConfig, name: str = "ocrvqa") -> None:
        super().__init__(name, config.root)
        self.config = config
        self.file = find_file(name, [self.root / "dataset.json"])
        self.image_dir = require_dir(
            name, Path(config.image_root) if config.image_root else self.root / "images", "image folder"
        )

    def _load(self) -> list[OCRRecord]:
        where = str(self.file)
        code = SPLIT_CODES[self.config.split]
        folder = ImageFolder(self.image_dir)
        records: list[OCRRecord] = []
        for book_id, r in expect(read_json(self.file), dict, where).items():
            at = f"{where}: book {book_id}"
            if get(r, "split", at) != code:
                continue
            questions = expect(get(r, "questions", at), list, f"{at}.questions")
            answers = expect(get(r, "answers", at), list, f"{at}.answers")
            if len(questions) != len(answers):
                raise MalformedDataError(f"{at}: {len(questions)} questions but {len(answers)} answers")
            url = get(r, "imageURL", at)
            meta = {"book_id": str(book_id), "title": r.get("title", ""), "genre": r.get("genre", "")}
            image: str | None = None  # the cover's path, checked once for all the book's questions
            for i, (q, a) in enumerate(zip(questions, answers, strict=True)):
                with self.bad_records:  # each question is a sample: each is left out and counted
                    if image is None:
                        url = text(url, "image URL", f"{at}.imageURL")
                        image = folder.path(image_file_name(str(book_id), url), f"{at} (its image)")
                    question = text(q, "question", f"{at}.questions[{i}]")
                    answer = text(a, "answer", f"{at}.answers[{i}]")
                    records.append((f"{book_id}_{i}", image, question, answer, meta))
        return records

    def _sample(self, record: OCRRecord) -> Sample:
        sample_id, image, question, answer, meta = record
        return Sample(
            id=sample_id,
            image=ImageRef(path=image),
            dataset=self.name,
            question=question,
            answers=(answer,),
            meta=meta,
        )
