"""VQA accuracy as the official VQA evaluation computes it today (the evaluation server's rule).

Reference: GT-Vision-Lab/VQA (https://github.com/GT-Vision-Lab/VQA),
``PythonEvaluationTools/vqaEvaluation/vqaEval.py`` at commit
``a013f0043c1e2cdc995922dfe257f7149aa9af06`` ("Fixed processing answers bug", 2021-03-11):
``VQAEval.evaluate``, ``processPunctuation`` and ``processDigitArticle``. The tables and the
quirks are kept on purpose, so that numbers are comparable with published ones. Per question:

1. every human answer and the prediction: newlines and tabs -> spaces, then ``strip()``;
2. if the (stripped) human answers are all the same string, nothing else is done to either
   side: the comparison is exact (case, number words, articles, punctuation and inner
   spaces all count), so ``"two"`` against ten ``"two"`` scores 1 and ``"Two"`` scores 0;
3. otherwise both the human answers and the prediction go through ``processPunctuation``
   then ``processDigitArticle`` (lower case, number words -> digits, articles dropped,
   contractions restored, whitespace collapsed);
4. accuracy is the mean, over the ten leave-one-out subsets of the ten human answers, of
   ``min(#answers in the other nine equal to the prediction / 3, 1)``.

The 2016 script (and LAVIS's port) processed the prediction always and the human answers
only with ``processPunctuation`` and only when they disagree; the 2021 fix changes scores
when annotators are unanimous or differ only in case, number words or articles.

Quirks of ``processPunctuation`` kept: the period-strip pattern ``(?!<=\\d)(\\.)(?!\\d)`` is a
negative *lookahead* for ``<=\\d`` (a typo of a lookbehind), so it removes every period not
followed by a digit, and the original passes ``re.UNICODE`` (32) as the ``count`` argument:
at most 32 periods go.

One extension: a question with a single reference answer (GQA, OCR-VQA) scores exact match
of the fully processed prediction and answer, since the leave-one-out formula would give 0.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

CONTRACTIONS: dict[str, str] = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's",
    "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm",
    "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've",
    "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've", "mightve": "might've", "mustnt": "mustn't", "mustve": "must've",
    "neednt": "needn't", "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
    "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
    "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's",
    "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're",
    "theres": "there's", "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've",
    "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas", "wasnt": "wasn't",
    "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
    "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll",
    "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
    "youve": "you've",
}  # fmt: skip
MANUAL_MAP: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
ARTICLES = frozenset({"a", "an", "the"})
PUNCTUATION = (
    ";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!",
)  # fmt: skip
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")  # sic: see the module docstring
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")
_OFFICIAL_PERIOD_COUNT = re.UNICODE  # sic: the original passes re.UNICODE (== 32) as `count`
HUMANS_FOR_FULL_CREDIT = 3  # an answer given by 3 of the 9 other annotators scores 1


def process_punctuation(text: str) -> str:
    """``processPunctuation``: drop or space out punctuation, strip periods not before a digit.

    A mark is deleted when it touches a space anywhere in the text (``"yes, it is"``) or when
    the text has a comma between digits (``"3,000"``); otherwise it becomes a space
    (``"x-ray"`` -> ``"x ray"``).
    """
    out = text
    has_digit_comma = _COMMA_STRIP.search(text) is not None
    for p in PUNCTUATION:
        if (p + " " in text or " " + p in text) or has_digit_comma:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, count=_OFFICIAL_PERIOD_COUNT)


def process_digit_article(text: str) -> str:
    """``processDigitArticle``: lower case, number words -> digits, drop articles, fix contractions."""
    words = [MANUAL_MAP.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in ARTICLES]
    return " ".join(CONTRACTIONS.get(w, w) for w in words)


def clean_whitespace(text: str) -> str:
    """Step 1 of the official rule: newlines and tabs to spaces, then strip."""
    return text.replace("\n", " ").replace("\t", " ").strip()


def normalize_answer(text: str) -> str:
    """The full official processing (whitespace, punctuation, digits/articles/contractions).

    Applied to both sides only when the human answers disagree; see :func:`compared_answers`.
    """
    return process_digit_article(process_punctuation(clean_whitespace(text)))


def compared_answers(prediction: str, answers: Sequence[str]) -> tuple[str, list[str]]:
    """The prediction and the human answers as the official rule compares them (steps 1-3)."""
    predicted = clean_whitespace(prediction)
    humans = [clean_whitespace(a) for a in answers]
    if len(set(humans)) > 1:
        predicted = normalize_answer(predicted)
        humans = [normalize_answer(a) for a in humans]
    return predicted, humans


def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """Accuracy of one prediction against the human answers of one question, in [0, 1].

    With ten answers: for each of the ten subsets that leave one answer out, count the
    other nine that equal the prediction (both processed as in :func:`compared_answers`),
    score ``min(count / 3, 1)``, and average the ten scores.
    """
    if not answers:
        raise ValueError("vqa_accuracy needs at least one reference answer")
    if len(answers) == 1:  # extension for single-answer datasets (module docstring)
        return float(normalize_answer(prediction) == normalize_answer(answers[0]))
    predicted, humans = compared_answers(prediction, answers)
    scores = []
    for left_out in range(len(humans)):
        matches = sum(1 for j, a in enumerate(humans) if j != left_out and a == predicted)
        scores.append(min(1.0, matches / HUMANS_FOR_FULL_CREDIT))
    return sum(scores) / len(scores)


def vqa_scores(
    predictions: Sequence[str],
    answers: Sequence[Sequence[str]],
    answer_types: Iterable[str] | None = None,
) -> dict[str, float]:
    """Mean accuracy (``accuracy``, in [0, 1]) plus one ``accuracy_<type>`` per answer type.

    Answer types (VQAv2's ``yes/no``, ``number``, ``other``) are reported with ``/`` and
    spaces turned into ``_``: ``accuracy_yes_no``. Empty types are not broken out.
    """
    if len(predictions) != len(answers):
        raise ValueError(f"{len(predictions)} predictions for {len(answers)} questions")
    types = list(answer_types) if answer_types is not None else [""] * len(predictions)
    accs = [vqa_accuracy(p, a) for p, a in zip(predictions, answers, strict=True)]
    result = {"accuracy": sum(accs) / len(accs) if accs else 0.0, "count": float(len(accs))}
    by_type: dict[str, list[float]] = {}
    for kind, acc in zip(types, accs, strict=True):
        if kind:
            by_type.setdefault(kind, []).append(acc)
    for kind in sorted(by_type):
        key = "accuracy_" + re.sub(r"[/\s]+", "_", kind.strip())
        result[key] = sum(by_type[kind]) / len(by_type[kind])
    return result
