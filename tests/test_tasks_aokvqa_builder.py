"""A-OKVQA's official metrics on samples read by the real builder (microvlm-datasets +
microvlm-tasks together): the published record format of allenai/aokvqa's ``aokvqa_v1p0_val.json``
(fields as in its README), DA leaving out ``difficult_direct_answer``, MC over ``choices``."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from microvlm.data import Sample
from microvlm.errors import MicroVLMError
from microvlm_tasks.aokvqa import build_aokvqa_da, build_aokvqa_mc
from microvlm_tasks.config import AOKVQAChoiceConfig, AOKVQADirectConfig

RECORD: dict[str, Any] = {
    "split": "val",
    "image_id": 461751,
    "question_id": "22jbM6gDxdaMaunuzgrsBB",
    "question": "What is in the motorcyclist's mouth?",
    "choices": ["toothpick", "food", "popsicle stick", "cigarette"],
    "correct_choice_idx": 3,
    "direct_answers": ["cigarette"] * 8 + ["cigar", "smoke"],
    "difficult_direct_answer": False,
    "rationales": ["He's smoking while riding."],
}


def _builder_samples(tmp_path: Path, records: list[dict]) -> list[Sample]:
    from microvlm_datasets.builders.vqa import AOKVQA
    from microvlm_datasets.config import AOKVQAConfig

    (tmp_path / "aokvqa_v1p0_val.json").write_text(json.dumps(records))
    (tmp_path / "coco" / "val2017").mkdir(parents=True)
    config = AOKVQAConfig(root=str(tmp_path), split="val", image_root=str(tmp_path / "coco"))
    return list(AOKVQA(config))


def test_da_and_mc_on_the_published_format(tmp_path: Path) -> None:
    hard = {**RECORD, "question_id": "hard1", "difficult_direct_answer": True}
    samples = _builder_samples(tmp_path, [RECORD, hard])
    da, mc = build_aokvqa_da(AOKVQADirectConfig()), build_aokvqa_mc(AOKVQAChoiceConfig())
    assert da.eval_prompt(samples[0]) == "Question: What is in the motorcyclist's mouth? Answer:"
    assert da.example(samples[0], random.Random(0)).target == " cigarette"
    assert da.score(["cigar\nmore text", "anything"], samples) == {
        "accuracy": pytest.approx(1 / 3),
        "count": 1.0,
        "difficult_left_out": 1.0,
    }
    assert [r["accuracy"] for r in da.per_sample(["cigar", "x"], samples)] == [pytest.approx(1 / 3), None]
    assert mc.eval_prompt(samples[0]) == (
        "Question: What is in the motorcyclist's mouth? "
        "Choices: toothpick, food, popsicle stick, cigarette. Answer:"
    )
    assert mc.example(samples[0], random.Random(0)).target == " cigarette"
    scores = mc.score(["cigarette", "food"], samples)  # MC keeps the difficult question
    assert scores["accuracy"] == 0.5 and scores["count"] == 2.0
    assert mc.per_sample(["cigarette"], samples[:1])[0]["accuracy"] == 1.0


def test_test_split_without_answers_fails_clearly(tmp_path: Path) -> None:
    record = {k: v for k, v in RECORD.items() if k not in ("correct_choice_idx", "direct_answers")}
    (sample,) = _builder_samples(tmp_path, [record])
    with pytest.raises(MicroVLMError, match="no correct_choice_idx"):
        build_aokvqa_mc(AOKVQAChoiceConfig()).score(["food"], [sample])
    with pytest.raises(MicroVLMError, match="no direct answers"):
        build_aokvqa_da(AOKVQADirectConfig()).score(["food"], [sample])
