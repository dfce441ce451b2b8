"""VQA accuracy against hand-computed values and the official normalisation rules (vqaEval.py, 2021)."""

from __future__ import annotations

import pytest

from microvlm_tasks.metrics.vqa import (
    normalize_answer,
    process_digit_article,
    process_punctuation,
    vqa_accuracy,
    vqa_scores,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Two", "2"),  # number words -> digits, after lower-casing
        ("two dogs", "2 dogs"),
        ("none", "0"),  # the manual map sends "none" to "0"
        ("ten", "10"),
        ("eleven", "eleven"),  # the map stops at ten
        ("the cat", "cat"),  # articles a/an/the dropped
        ("A dog and an apple", "dog and apple"),
        ("dont", "don't"),  # contractions table
        ("isnt", "isn't"),
        ("Im", "im"),  # table keys are matched after lower-casing, so "Im" never hits "Im"
        ("yes.", "yes"),  # a period not followed by a digit is stripped
        ("3.5", "3.5"),  # ... one followed by a digit stays
        ("e.g.", "eg"),
        ("3,000", "3000"),  # a comma between digits: every punctuation mark is deleted
        ("yes, it is", "yes it is"),  # a mark next to a space is deleted
        ("hello,world", "hello world"),  # otherwise it becomes a space
        ("x-ray", "x ray"),
        ("black/white", "black white"),
        ("black / white", "black white"),  # deleted, then whitespace collapses in the split
        ("Yes!", "yes"),
        ("  red\n", "red"),  # newlines/tabs to spaces, stripped
        ("it's", "it's"),  # apostrophes are not in the punctuation list
        ("2:30", "2:30"),  # neither is the colon
    ],
)
def test_normalize_answer(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


def test_period_strip_quirks() -> None:
    # (?!<=\d) is a lookahead for the text "<=<digit>", not a lookbehind: "2." loses its period.
    assert process_punctuation("2.") == "2"
    # The official call passes re.UNICODE (== 32) as `count`: at most 32 periods are removed.
    assert process_punctuation("." * 40) == "." * 8


def test_process_digit_article_alone() -> None:
    assert process_digit_article("The Three Cats") == "3 cats"
    assert process_digit_article("a") == ""


def test_accuracy_two_of_ten_humans() -> None:
    # "red" given by 2 of 10 humans. Leave out each human in turn and count "red" among the other 9:
    #   2 subsets leave out a "red": 1 match  -> min(1/3, 1) = 1/3
    #   8 subsets leave out a "blue": 2 matches -> min(2/3, 1) = 2/3
    # mean = (2 * 1/3 + 8 * 2/3) / 10 = (2/3 + 16/3) / 10 = 6/10 = 0.6
    answers = ["red"] * 2 + ["blue"] * 8
    assert vqa_accuracy("red", answers) == pytest.approx(0.6)
    # The other answer, given by 8: every subset has >= 7 matches -> 1.
    assert vqa_accuracy("blue", answers) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("humans", "expected"),
    [
        (0, 0.0),
        (1, 0.3),  # 1 subset: 0 matches; 9 subsets: 1 match -> 9 * (1/3) / 10
        (3, 0.9),  # 3 subsets: 2 matches -> 2/3; 7 subsets: 3 -> 1; (2 + 7) / 10
        (4, 1.0),  # every subset keeps >= 3 matches
        (10, 1.0),
    ],
)
def test_accuracy_by_number_of_humans(humans: int, expected: float) -> None:
    answers = ["red"] * humans + ["blue"] * (10 - humans)
    assert vqa_accuracy("red", answers) == pytest.approx(expected)


def test_prediction_is_normalised_before_matching() -> None:
    answers = ["2"] * 3 + ["3"] * 7
    assert vqa_accuracy("Two.", answers) == pytest.approx(0.9)
    assert vqa_accuracy("the yes", ["yes"] * 4 + ["no"] * 6) == pytest.approx(1.0)


def test_processing_applies_to_both_sides_only_when_humans_disagree() -> None:
    # 2021 rule (test_tasks_vqa_official.py has the full oracle): unanimous answers are
    # compared as given (after strip), so an identical prediction scores 1, a variant 0.
    assert vqa_accuracy("x-ray", ["x-ray"] * 10) == 1.0
    assert vqa_accuracy("x ray", ["x-ray"] * 10) == 0.0
    # With disagreement both sides get punctuation and digits/articles: "x-ray" -> "x ray".
    assert vqa_accuracy("x-ray", ["x-ray"] * 9 + ["xray"]) == pytest.approx(1.0)
    assert vqa_accuracy("two", ["two"] * 9 + ["2"]) == pytest.approx(1.0)


def test_single_reference_is_exact_match_after_normalisation() -> None:
    assert vqa_accuracy("The Red.", ["red"]) == 1.0
    assert vqa_accuracy("blue", ["red"]) == 0.0
    with pytest.raises(ValueError, match="at least one"):
        vqa_accuracy("red", [])


def test_vqa_scores_mean_and_answer_types() -> None:
    preds = ["yes", "red", "2"]
    answers = [["yes"] * 10, ["red"] * 2 + ["blue"] * 8, ["3"] * 10]
    scores = vqa_scores(preds, answers, ["yes/no", "other", "number"])
    assert scores["accuracy"] == pytest.approx((1.0 + 0.6 + 0.0) / 3)
    assert scores["accuracy_yes_no"] == pytest.approx(1.0)
    assert scores["accuracy_other"] == pytest.approx(0.6)
    assert scores["accuracy_number"] == 0.0
    assert scores["count"] == 3.0
    with pytest.raises(ValueError, match="2 predictions for 3"):
        vqa_scores(preds[:2], answers)


def test_vqa_score_reports_majority_baseline_per_question_type():
    from microvlm.data import ImageRef, Sample
    from microvlm_tasks.config import VQAConfig
    from microvlm_tasks.vqa import VQATask

    def sample(i, kind, answer):
        return Sample(
            str(i), ImageRef("x.jpg"), question="q?", answers=(answer,) * 10, meta={"question_type": kind}
        )

    samples = [
        sample(0, "how many", "1"),
        sample(1, "how many", "1"),
        sample(2, "how many", "2"),
        sample(3, "what color", "red"),
        sample(4, "what color", "blue"),
    ]
    scores = VQATask(VQAConfig()).score(["1", "2", "2", "red", "blue"], samples)
    # "how many": majority answer "1" -> right on 2 of 3; model right on 3 of 3 except sample 1 -> 2/3
    assert scores["question_type/how_many/majority_baseline"] == pytest.approx(2 / 3)
    assert scores["question_type/how_many/accuracy"] == pytest.approx(2 / 3)
    # "what color": a tie, the first seen ("red") wins -> baseline 1/2, model 2/2
    assert scores["question_type/what_color/majority_baseline"] == pytest.approx(0.5)
    assert scores["question_type/what_color/accuracy"] == pytest.approx(1.0)
    assert scores["majority_baseline"] == pytest.approx(3 / 5)
    assert scores["accuracy"] == pytest.approx(4 / 5)
