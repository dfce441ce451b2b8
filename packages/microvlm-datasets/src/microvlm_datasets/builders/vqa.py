"""VQA on COCO images: VQAv2, OK-VQA (same JSON format, other file names) and A-OKVQA.

On disk:

- VQAv2: ``{root}/v2_OpenEnded_mscoco_{subset}_questions.json`` — ``{"questions": [{"question_id",
  "image_id", "question"}]}`` — and ``{root}/v2_mscoco_{subset}_annotations.json`` —
  ``{"annotations": [{"question_id", "image_id", "question_type", "answer_type",
  "multiple_choice_answer", "answers": [{"answer", "answer_confidence", "answer_id"} x 10]}]}``.
  ``subset`` is ``train2014``, ``val2014`` or ``test2015`` (the test set has no annotations; its
  samples come without answers). Images are COCO 2014:
  ``{image_root}/{subset}/COCO_{subset}_{image_id:012d}.jpg`` — or, when only COCO 2017 is on
  disk, ``{image_root}/{train,val,test}2017/{image_id:012d}.jpg`` found by id.
- OK-VQA: the same, named ``OpenEnded_mscoco_{subset}_questions.json`` and
  ``mscoco_{subset}_annotations.json``; subsets ``train2014`` and ``val2014`` only.
- A-OKVQA: ``{root}/aokvqa_v1p0_{split}.json`` — a list of ``{"question_id", "image_id",
  "question", "choices", "correct_choice_idx", "direct_answers", "rationales",
  "difficult_direct_answer"}`` (test: no answers); images COCO 2017
  ``{image_root}/{split}2017/{image_id:012d}.jpg``.

A question whose text, an answer or a choice is not a string or is empty is left out and
counted (its answers are scored together, so one bad answer leaves the question out).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from microvlm.data import ImageRef, Sample
from microvlm_datasets.builders.base import (
    BadRecord,
    MalformedDataError,
    RecordBuilder,
    expect,
    find_file,
    get,
    integer,
    read_json,
    text,
    texts,
)
from microvlm_datasets.builders.coco_images import CocoImages
from microvlm_datasets.config import AOKVQAConfig, OKVQAConfig, VQAv2Config

# (question id, image id, question, answers, answer type, meta)
VQARecord = tuple[str, int, str, tuple[str, ...], str, dict[str, Any]]

VQAV2_SUBSETS = {"train": "train2014", "val": "val2014", "test": "test2015"}
OKVQA_SUBSETS = {"train": "train2014", "val": "val2014"}


class VQAFiles:
    """File-name patterns of a VQAv2-format dataset."""

    def __init__(self, questions: str, annotations: str, subsets: dict[str, str]) -> None:
        self.questions = questions  # e.g. "v2_OpenEnded_mscoco_{subset}_questions.json"
        self.annotations = annotations  # e.g. "v2_mscoco_{subset}_annotations.json"
        self.subsets = subsets  # split -> subset


VQAV2_FILES = VQAFiles(
    "v2_OpenEnded_mscoco_{subset}_questions.json", "v2_mscoco_{subset}_annotations.json", VQAV2_SUBSETS
)
OKVQA_FILES = VQAFiles(
    "OpenEnded_mscoco_{subset}_questions.json", "mscoco_{subset}_annotations.json", OKVQA_SUBSETS
)


class VQAv2(RecordBuilder[VQARecord]):
    """``vqav2`` and ``okvqa``: questions JSON joined with annotations JSON on ``question_id``."""

    def __init__(
        self, config: VQAv2Config | OKVQAConfig, name: str = "vqav2", files: VQAFiles = VQAV2_FILES
    ) -> None:
        super().__init__(name, config.root)
        self.config = config
        if config.subset:
            self.subset = config.subset
        elif config.split in files.subsets:
            self.subset = files.subsets[config.split]
        else:
            raise MalformedDataError(
                f"{name}: no {config.split!r} split; splits are {', '.join(files.subsets)}"
                + (
                    ' (OK-VQA\'s val2014 set is its benchmark test set: use split = "val")'
                    if files is OKVQA_FILES
                    else ""
                )
            )
        self.questions_file = find_file(name, [self.root / files.questions.format(subset=self.subset)])
        annotations = self.root / files.annotations.format(subset=self.subset)
        if self.subset.startswith("test"):
            self.annotations_file = annotations if annotations.is_file() else None  # test: no answers
        else:
            self.annotations_file = find_file(name, [annotations])
        self.images = CocoImages(config.image_root, config.image_layout, name)
        self.images.check((self.subset,))

    @property
    def annotation_files(self) -> tuple[Path, ...]:
        return (self.questions_file,) + ((self.annotations_file,) if self.annotations_file else ())

    def _load(self) -> list[VQARecord]:
        where = str(self.questions_file)
        questions = expect(
            get(read_json(self.questions_file), "questions", where), list, f"{where}: questions"
        )
        answers: dict[Any, Any] = {}
        if self.annotations_file is not None:
            at = str(self.annotations_file)
            anns = expect(
                get(read_json(self.annotations_file), "annotations", at), list, f"{at}: annotations"
            )
            answers = {get(a, "question_id", f"{at}: annotations[{i}]"): a for i, a in enumerate(anns)}
        records: list[VQARecord] = []
        for i, q in enumerate(questions):
            at = f"{where}: questions[{i}]"
            qid = get(q, "question_id", at)
            ann = answers.get(qid)
            if ann is None and self.annotations_file is not None:
                raise MalformedDataError(
                    f"{self.annotations_file}: no annotation for question_id {qid} of {where}"
                )
            image_id = integer(get(q, "image_id", at), f"{at}.image_id")
            with self.bad_records:
                question = text(get(q, "question", at), "question", f"{at}.question")
                meta: dict[str, Any] = {"question_id": qid, "subset": self.subset}
                given, answer_type = self._answers(ann, meta, f"{self.annotations_file}: question_id {qid}")
                meta["image_id"] = image_id
                records.append((str(qid), image_id, question, given, answer_type, meta))
        return records

    def _answers(self, ann: Any, meta: dict[str, Any], where: str) -> tuple[tuple[str, ...], str]:
        """An annotation's answers and answer type (none for a test question); fills ``meta``."""
        if ann is None:
            return (), ""
        given = get(ann, "answers", where)
        if not isinstance(given, list):
            raise BadRecord("answers is not a list", f"{where}.answers")
        answers = tuple(
            text(get(a, "answer", f"{where}.answers[{j}]"), "answer", f"{where}.answers[{j}].answer")
            for j, a in enumerate(given)
        )
        meta["question_type"] = _optional(ann.get("question_type"))
        meta["multiple_choice_answer"] = _optional(ann.get("multiple_choice_answer"))
        return answers, _optional(ann.get("answer_type"))

    def _sample(self, record: VQARecord) -> Sample:
        qid, image_id, question, answers, answer_type, meta = record
        return Sample(
            id=qid,
            image=ImageRef(path=self.images.path(self.subset, image_id)),
            dataset=self.name,
            question=question,
            answers=answers,
            answer_type=answer_type,
            meta=meta,
        )


def _optional(value: Any) -> str:
    """An optional text field (answer type, question type): a string, else ``""``."""
    return value if isinstance(value, str) else ""


def okvqa(config: OKVQAConfig, name: str = "okvqa") -> VQAv2:
    return VQAv2(config, name, OKVQA_FILES)


# (question id, image id, question, choices, direct answers, meta)
AOKVQARecord = tuple[str, int, str, tuple[str, ...], tuple[str, ...], dict[str, Any]]


class AOKVQA(RecordBuilder[AOKVQARecord]):
    """``aokvqa``: ``aokvqa_v1p0_{split}.json`` with choices, direct answers and rationales."""

    def __init__(self, config: AOKVQAConfig, name: str = "aokvqa") -> None:
        super().__init__(name, config.root)
        self.config = config
        self.file = find_file(name, [Path(config.root) / f"aokvqa_v1p0_{config.split}.json"])
        self.subset = f"{config.split}2017"
        self.images = CocoImages(config.image_root, config.image_layout, name)
        self.images.check((self.subset,))

    def _load(self) -> list[AOKVQARecord]:
        where = str(self.file)
        records: list[AOKVQARecord] = []
        for i, r in enumerate(expect(read_json(self.file), list, where)):
            at = f"{where}: [{i}]"
            meta: dict[str, Any] = {
                "question_id": get(r, "question_id", at),
                "image_id": integer(get(r, "image_id", at), f"{at}.image_id"),
            }
            with self.bad_records:
                question = text(get(r, "question", at), "question", f"{at}.question")
                choices = texts(get(r, "choices", at), "choice", f"{at}.choices")
                direct = texts(r.get("direct_answers", []), "answer", f"{at}.direct_answers")
                rationales = r.get("rationales", [])
                meta["rationales"] = list(rationales) if isinstance(rationales, list) else []
                meta["difficult_direct_answer"] = r.get("difficult_direct_answer") is True
                if "correct_choice_idx" in r:
                    index = r["correct_choice_idx"]
                    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(choices):
                        raise MalformedDataError(
                            f"{at}: correct_choice_idx {index!r} is not an index into its "
                            f"{len(choices)} choices"
                        )
                    meta["correct_choice_idx"] = index
                    meta["correct_choice"] = choices[index]
                records.append((str(meta["question_id"]), meta["image_id"], question, choices, direct, meta))
        return records

    def _sample(self, record: AOKVQARecord) -> Sample:
        qid, image_id, question, choices, direct, meta = record
        return Sample(
            id=qid,
            image=ImageRef(path=self.images.path(self.subset, image_id)),
            dataset=self.name,
            question=question,
            answers=direct,
            choices=choices,
            meta=meta,
        )
