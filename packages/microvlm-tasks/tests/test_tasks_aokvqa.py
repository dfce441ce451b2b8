"""A-OKVQA DA and MC accuracy against the official evaluation (allenai/aokvqa, eval_predictions.py).

``_official_eval_aokvqa`` is a REFERENCE ORACLE: ``eval_aokvqa`` of ``evaluation/eval_predictions.py``
at commit 83786de0b24c4fef0bfe39420684f6f73d9f3581, transcribed (as the official script calls it:
``strict=False``; returns a percentage). The task is also run on records in the published
``aokvqa_v1p0_val.json`` format read by the real ``aokvqa`` dataset builder.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from microvlm.data import ImageRef, Sample
from microvlm_tasks.aokvqa import build_aokvqa_da, build_aokvqa_mc
from microvlm_tasks.config import AOKVQAChoiceConfig, AOKVQADirectConfig
from microvlm_tasks.metrics.aokvqa import direct_answer_accuracy, direct_answer_scores, multiple_choice_scores
from microvlm_tasks.metrics.vqa import vqa_accuracy


# ---- reference oracle (transcription of the official function; test helper only) ----------
def _official_eval_aokvqa(dataset: list[dict], preds: dict[str, str], multiple_choice: bool = False) -> float:
    dataset_by_id = {d["question_id"]: d for d in dataset}
    if multiple_choice is False:
        dataset_by_id = {k: v for k, v in dataset_by_id.items() if v["difficult_direct_answer"] is False}
    acc = []
    for q in dataset_by_id:
        if q not in preds:
            acc.append(0.0)
            continue
        pred = preds[q]
        choices = dataset_by_id[q]["choices"]
        direct_answers = dataset_by_id[q]["direct_answers"]
        if multiple_choice:
            acc.append(float(pred == choices[dataset_by_id[q]["correct_choice_idx"]]))
        else:
            num_match = sum([pred == da for da in direct_answers])
            acc.append(min(1.0, num_match / 3.0))
    return sum(acc) / len(acc) * 100


# A record as published (README of allenai/aokvqa; the val file's layout).
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


@pytest.mark.parametrize(
    ("prediction", "expected", "vqav2_rule"),
    [
        ("cigarette", 1.0, 1.0),
        ("cigar", 1 / 3, 0.3),  # no leave-one-out: 1 match of 10 -> 1/3 (VQAv2: 0.3)
        ("Cigarette", 0.0, 1.0),  # no normalisation: case counts (VQAv2 lower-cases here)
        ("a cigarette", 0.0, 1.0),  # ... and articles
        ("pipe", 0.0, 0.0),
    ],
)
def test_direct_answer_by_hand(prediction: str, expected: float, vqav2_rule: float) -> None:
    answers = RECORD["direct_answers"]
    assert direct_answer_accuracy(prediction, answers) == pytest.approx(expected)
    assert vqa_accuracy(prediction, answers) == pytest.approx(vqav2_rule)  # the rule it replaces
    assert _official_eval_aokvqa([RECORD], {RECORD["question_id"]: prediction}) == pytest.approx(
        100 * expected
    )


def test_two_matches_score_two_thirds() -> None:
    assert direct_answer_accuracy("b", ["b", "b"] + ["c"] * 8) == pytest.approx(2 / 3)  # VQAv2 rule: 0.6


def test_difficult_questions_are_left_out_of_da_only() -> None:
    scores = direct_answer_scores(["x", "y"], [["x"] * 10, ["z"] * 10], [False, True])
    assert scores == {"accuracy": 1.0, "count": 1.0, "difficult_left_out": 1.0}
    mc = multiple_choice_scores(["a", "d", "none"], [["a", "b"], ["c", "d"], ["e", "f"]], [0, 0, 1])
    assert mc["accuracy"] == pytest.approx(1 / 3) and mc["count"] == 3.0
    assert mc["not_a_choice"] == pytest.approx(1 / 3)  # "none" is no choice: wrong, counted apart


def _constructed(n: int, seed: int = 4) -> tuple[list[dict], dict[str, str], dict[str, str]]:
    rng = random.Random(seed)
    words = ["cat", "Cat", "dog", "a dog", "dog.", "two", "2", "red", "red "]
    dataset, da, mc = [], {}, {}
    for i in range(n):
        choices = rng.sample(words, 4)
        pool = rng.sample(words, rng.choice([1, 2, 3]))
        dataset.append(
            {
                "question_id": f"q{i}",
                "choices": choices,
                "correct_choice_idx": rng.randrange(4),
                "direct_answers": [rng.choice(pool) for _ in range(10)],
                "difficult_direct_answer": rng.random() < 0.2,
            }
        )
        da[f"q{i}"] = rng.choice(pool) if rng.random() < 0.6 else rng.choice(words)
        mc[f"q{i}"] = rng.choice(choices) if rng.random() < 0.9 else rng.choice(words)
    return dataset, da, mc


def _samples(dataset: list[dict]) -> list[Sample]:
    return [
        Sample(
            d["question_id"],
            ImageRef("x.jpg"),
            question="q?",
            answers=tuple(d["direct_answers"]),
            choices=tuple(d["choices"]),
            meta={k: d[k] for k in ("correct_choice_idx", "difficult_direct_answer")},
        )
        for d in dataset
    ]


def test_metrics_match_the_official_script_on_constructed_sets() -> None:
    dataset, da, mc = _constructed(400)
    ids = [d["question_id"] for d in dataset]
    got_da = direct_answer_scores(
        [da[q] for q in ids],
        [d["direct_answers"] for d in dataset],
        [d["difficult_direct_answer"] for d in dataset],
    )
    got_mc = multiple_choice_scores(
        [mc[q] for q in ids], [d["choices"] for d in dataset], [d["correct_choice_idx"] for d in dataset]
    )
    assert 100 * got_da["accuracy"] == pytest.approx(_official_eval_aokvqa(dataset, da))
    assert 100 * got_mc["accuracy"] == pytest.approx(_official_eval_aokvqa(dataset, mc, multiple_choice=True))
    assert got_da["count"] + got_da["difficult_left_out"] == len(dataset) > got_da["count"] > 0


def test_tasks_score_what_the_official_script_scores_for_the_first_line() -> None:
    # The tasks submit each generation up to its first line break, stripped (base.first_line).
    dataset, da, mc = _constructed(400, seed=5)
    samples, ids = _samples(dataset), [d["question_id"] for d in dataset]
    generated_da = {q: f" {da[q]}\nmore" for q in ids}
    got_da = build_aokvqa_da(AOKVQADirectConfig()).score([generated_da[q] for q in ids], samples)
    got_mc = build_aokvqa_mc(AOKVQAChoiceConfig()).score([mc[q] for q in ids], samples)
    submitted_da = {q: da[q].strip() for q in ids}
    submitted_mc = {q: mc[q].strip() for q in ids}
    assert 100 * got_da["accuracy"] == pytest.approx(_official_eval_aokvqa(dataset, submitted_da))
    assert 100 * got_mc["accuracy"] == pytest.approx(_official_eval_aokvqa(dataset, submitted_mc, True))


def test_mc_prompt_must_name_the_choices() -> None:
    with pytest.raises(ValueError, match="choices"):
        AOKVQAChoiceConfig(prompt="Question: {question} Answer:")
