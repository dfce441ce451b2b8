"""A-OKVQA accuracy as its official evaluation computes it.

Reference: allenai/aokvqa (https://github.com/allenai/aokvqa), ``evaluation/eval_predictions.py``
(``eval_aokvqa``) with ``load_aokvqa.py`` and ``evaluation/prepare_predictions.py``, at commit
``83786de0b24c4fef0bfe39420684f6f73d9f3581`` (the evaluation code last changed in 42e8c44, 2022):

- **direct answer (DA)**: questions with ``difficult_direct_answer`` true are left out; a
  prediction scores ``min(1, #direct answers equal to it / 3)`` over the ten
  ``direct_answers`` (no leave-one-out, unlike VQAv2); the result is the mean over the rest.
- **multiple choice (MC)**: every question counts; a prediction scores 1 if it equals
  ``choices[correct_choice_idx]``, else 0 (the official script runs with ``strict=False``,
  so text that is none of the choices is simply wrong).
- **no answer normalisation** on either side: the official comparison is Python string
  equality (``pred == da``), so case, articles and punctuation count. Our tasks pass the
  generated text up to its first line break, stripped (:func:`microvlm_tasks.base.first_line`).
  The repository's optional ``remap_predictions.py`` (nearest choice by GloVe embedding) is
  a separate preprocessing step, not part of the metric, and is not done here.
"""

from __future__ import annotations

from collections.abc import Sequence

HUMANS_FOR_FULL_CREDIT = 3  # a direct answer given by 3 of the 10 annotators scores 1


def direct_answer_accuracy(prediction: str, direct_answers: Sequence[str]) -> float:
    """``min(1, matches / 3)``: matches are the direct answers equal (as strings) to the prediction."""
    matches = sum(1 for answer in direct_answers if answer == prediction)
    return min(1.0, matches / HUMANS_FOR_FULL_CREDIT)


def direct_answer_scores(
    predictions: Sequence[str], direct_answers: Sequence[Sequence[str]], difficult: Sequence[bool]
) -> dict[str, float]:
    """Mean DA accuracy (``accuracy``, in [0, 1]) over the questions not flagged difficult.

    ``count`` is the number scored and ``difficult_left_out`` the number left out; with no
    question left, ``accuracy`` is 0.
    """
    if not len(predictions) == len(direct_answers) == len(difficult):
        raise ValueError(f"{len(predictions)} predictions for {len(direct_answers)} questions")
    accs = [
        direct_answer_accuracy(p, answers)
        for p, answers, hard in zip(predictions, direct_answers, difficult, strict=True)
        if not hard
    ]
    return {
        "accuracy": sum(accs) / len(accs) if accs else 0.0,
        "count": float(len(accs)),
        "difficult_left_out": float(len(predictions) - len(accs)),
    }


def multiple_choice_scores(
    predictions: Sequence[str], choices: Sequence[Sequence[str]], correct: Sequence[int]
) -> dict[str, float]:
    """MC accuracy (``accuracy``, in [0, 1]): the share of predictions equal to the correct choice.

    ``not_a_choice`` is the share of predictions that are none of the question's choices
    (all scored 0, as in the official script).
    """
    if not len(predictions) == len(choices) == len(correct):
        raise ValueError(f"{len(predictions)} predictions for {len(choices)} questions")
    n = len(predictions)
    right = sum(1 for p, c, i in zip(predictions, choices, correct, strict=True) if p == c[i])
    outside = sum(1 for p, c in zip(predictions, choices, strict=True) if p not in c)
    return {
        "accuracy": right / n if n else 0.0,
        "count": float(n),
        "not_a_choice": outside / n if n else 0.0,
    }
