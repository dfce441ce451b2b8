"""VQA accuracy against the official 2021 rules (GT-Vision-Lab/VQA ``vqaEval.py`` at a013f00).

``_official_accuracy`` below is a REFERENCE ORACLE: the per-question logic of
``VQAEval.evaluate`` / ``processPunctuation`` / ``processDigitArticle`` at commit
a013f0043c1e2cdc995922dfe257f7149aa9af06 ("Fixed processing answers bug", 2021-03-11),
transcribed statement by statement (answers as dicts with an ``answer_id``, left out by
dict inequality, as the original does). Only the word tables are shared with the module
under test; they are checked on their own in test_tasks_vqa_metric.py. Our implementation
is compared with it on hand-written cases for each rule and on hundreds of constructed ones.
"""

from __future__ import annotations

import random
import re

import pytest

from microvlm_tasks.metrics.vqa import ARTICLES, CONTRACTIONS, MANUAL_MAP, PUNCTUATION, vqa_accuracy

# ---- reference oracle (transcription of the official script; test helper only) ----------
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA = re.compile(r"(\d)(\,)(\d)")


def _official_punctuation(in_text: str) -> str:
    out_text = in_text
    for p in PUNCTUATION:
        if (p + " " in in_text or " " + p in in_text) or (re.search(_COMMA, in_text) is not None):
            out_text = out_text.replace(p, "")
        else:
            out_text = out_text.replace(p, " ")
    return _PERIOD.sub("", out_text, re.UNICODE)  # sic: re.UNICODE lands in `count`


def _official_digit_article(in_text: str) -> str:
    out_text = []
    manual_map = dict(MANUAL_MAP)
    for raw_word in in_text.lower().split():
        word = manual_map.setdefault(raw_word, raw_word)
        if word not in ARTICLES:
            out_text.append(word)
    for word_id, word in enumerate(out_text):
        if word in CONTRACTIONS:
            out_text[word_id] = CONTRACTIONS[word]
    return " ".join(out_text)


def _official_accuracy(prediction: str, answers: list[str]) -> float:
    gts = [{"answer": a, "answer_id": i + 1} for i, a in enumerate(answers)]
    for ans_dic in gts:
        ans_dic["answer"] = ans_dic["answer"].replace("\n", " ").replace("\t", " ").strip()
    res_ans = prediction.replace("\n", " ").replace("\t", " ").strip()
    gt_acc = []
    gt_answers = [ans["answer"] for ans in gts]
    if len(set(gt_answers)) > 1:
        for ans_dic in gts:
            ans_dic["answer"] = _official_punctuation(ans_dic["answer"])
            ans_dic["answer"] = _official_digit_article(ans_dic["answer"])
        res_ans = _official_punctuation(res_ans)
        res_ans = _official_digit_article(res_ans)
    for gt_ans_datum in gts:
        other_gt_ans = [item for item in gts if item != gt_ans_datum]
        matching_ans = [item for item in other_gt_ans if item["answer"] == res_ans]
        gt_acc.append(min(1, float(len(matching_ans)) / 3))
    return float(sum(gt_acc)) / len(gt_acc)


# ---- hand-written cases, one or more per rule; `before_2021` (not asserted) is what the
# pre-2021 script and LAVIS's port give, to show where the fix changes the score ------------
@pytest.mark.parametrize(
    ("prediction", "answers", "expected", "before_2021"),
    [
        # unanimous humans: neither side is processed beyond newline/tab -> space and strip
        ("two", ["two"] * 10, 1.0, 0.0),  # number word kept on both sides
        ("Yes", ["yes"] * 10, 0.0, 1.0),  # capitalisation is not folded
        ("the dog", ["the dog"] * 10, 1.0, 0.0),  # articles are kept
        ("x-ray", ["x-ray"] * 10, 1.0, 0.0),  # punctuation is kept
        ("red  car", ["red car"] * 10, 0.0, 1.0),  # inner whitespace is not collapsed
        ("dont", ["dont"] * 10, 1.0, 0.0),  # contractions are not restored
        ("yes.", ["yes"] * 10, 0.0, 1.0),  # periods are not stripped
        # the humans' whitespace is normalised first, so "red " and "red" are unanimous
        ("red", ["red "] * 10, 1.0, 0.0),
        ("red", ["red\t"] * 5 + ["\nred"] * 5, 1.0, 0.0),
        ("Red", ["red "] * 5 + ["red"] * 5, 0.0, 1.0),  # ... hence no lower-casing either
        # humans disagree: both sides get punctuation, then digits/articles/lower case/contractions
        ("a dog", ["a dog"] * 3 + ["cat"] * 7, 0.9, 0.0),  # articles dropped on both sides
        ("two", ["two"] * 9 + ["2"], 1.0, 0.3),  # "two" -> "2" on both sides
        ("red", ["Red"] * 3 + ["blue"] * 7, 0.9, 0.0),  # human answers lower-cased
        ("dont", ["don't"] * 4 + ["no"] * 6, 1.0, 1.0),
        ("x-ray", ["x-ray"] * 9 + ["xray"], 1.0, 1.0),
        ("Two.", ["2"] * 3 + ["3"] * 7, 0.9, 0.9),
    ],
)
def test_official_rules_by_hand(
    prediction: str, answers: list[str], expected: float, before_2021: float
) -> None:
    assert _official_accuracy(prediction, answers) == pytest.approx(expected)  # the oracle agrees
    assert vqa_accuracy(prediction, answers) == pytest.approx(expected)


_VOCAB = [
    "two", "Two", "2", "two.", "none", "0", "zero", "ten", "10",
    "a dog", "the dog", "dog", "Dog", "an apple", "apple",
    "x-ray", "x ray", "xray", "X-Ray", "yes", "Yes", "yes.", "YES!", "no", "no,",
    "red", "red ", " red", "red\n", "red\tcar", "red car", "red  car", "Red Car",
    "3,000", "3000", "3.5", "3 5", "e.g.", "eg", "dont", "don't", "isnt", "isn't",
    "black/white", "black white", "black / white", "(left)", "left", "2:30", "it's",
]  # fmt: skip


def _constructed_cases(n: int, seed: int = 14) -> list[tuple[str, list[str]]]:
    """Ten answers drawn from 1-3 distinct vocabulary entries (so often unanimous or close
    variants of one another), and a prediction drawn from the same entries or the vocabulary."""
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        pool = rng.sample(_VOCAB, rng.choice([1, 1, 2, 2, 3]))
        answers = [rng.choice(pool) for _ in range(10)]
        prediction = rng.choice(pool) if rng.random() < 0.6 else rng.choice(_VOCAB)
        cases.append((prediction, answers))
    return cases


def test_matches_the_official_script_on_constructed_cases() -> None:
    cases = _constructed_cases(600)
    unanimous = sum(1 for _, a in cases if len({x.strip() for x in a}) == 1)
    assert 100 < unanimous < 500  # both branches of the official rule are well exercised
    for prediction, answers in cases:
        want = _official_accuracy(prediction, answers)
        assert vqa_accuracy(prediction, answers) == pytest.approx(want), (prediction, answers)
