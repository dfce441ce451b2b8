"""Caption metrics: pycocoevalcap with Java (PTB tokenizer, METEOR), the no-Java fallback, SPICE."""

from __future__ import annotations

import math
import shutil

import pytest

from microvlm.errors import MicroVLMError
from microvlm_tasks.metrics import caption as caption_module
from microvlm_tasks.metrics.caption import SpiceUnavailableError, caption_scores, simple_tokenize

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="needs a Java runtime on PATH")

# Three images whose candidates equal their (only) reference. CIDEr needs several images:
# its IDF is computed over the references of the evaluated set, so one image gives 0.
SAME_PREDS = ["A cat sits on the mat.", "Two dogs don't play in the park!", "a red square"]
SAME_REFS = [["a cat sits on the mat"], ["two dogs don't play in the park"], ["A red square."]]

# Hand-checkable BLEU-1: candidate "the cat the cat" (4 words), reference "the cat sat on the mat" (6).
# Clipped unigram matches: "the" 2 (ref has 2) + "cat" 1 (ref has 1, candidate 2) = 3 of 4 -> 0.75.
# Brevity penalty: c = 4 < r = 6 -> exp(1 - 6/4) = exp(-0.5). BLEU-1 = 0.75 * exp(-0.5) ~= 0.45490.
BLEU1_PRED = ["The cat the cat."]
BLEU1_REFS = [["The cat sat on the mat."]]
BLEU1_EXPECTED = 0.75 * math.exp(-0.5)


@pytest.fixture(scope="module")
def java_scores() -> dict[str, float | str]:
    return caption_scores(SAME_PREDS, SAME_REFS)


@pytest.mark.java
@pytest.mark.slow  # METEOR's JVM loads a 60 MB paraphrase table: 5-20 s on a busy 2-core machine
@needs_java
def test_identical_captions_with_java(java_scores: dict[str, float | str]) -> None:
    assert java_scores["tokenizer"] == "ptb"
    assert "note" not in java_scores
    for n in (1, 2, 3, 4):
        assert java_scores[f"bleu_{n}"] == pytest.approx(1.0, abs=1e-6)
    assert java_scores["rouge_l"] == pytest.approx(1.0)
    assert java_scores["cider"] > 1.0  # CIDEr-D of perfect candidates: 10 x similarity, here well above 1
    assert 0.9 < java_scores["meteor"] <= 1.0  # only the fragmentation penalty keeps it below 1
    assert java_scores["count"] == 3.0
    assert "spice" not in java_scores  # off unless asked


@pytest.mark.java
@needs_java
def test_hand_checked_bleu1_with_ptb_tokenizer() -> None:
    scores = caption_scores(BLEU1_PRED, BLEU1_REFS, meteor=False)  # METEOR's JVM start is the slow part
    assert scores["tokenizer"] == "ptb"
    assert "meteor" not in scores
    assert scores["bleu_1"] == pytest.approx(BLEU1_EXPECTED, rel=1e-6)


def test_hand_checked_bleu1_without_java() -> None:
    scores = caption_scores(BLEU1_PRED, BLEU1_REFS, use_java=False)
    assert scores["tokenizer"] == "simple"
    assert scores["bleu_1"] == pytest.approx(BLEU1_EXPECTED, rel=1e-6)
    assert "meteor" not in scores


def test_missing_java_still_computes_the_rest(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setattr(caption_module, "find_java", lambda: None)
    scores = caption_scores(SAME_PREDS, SAME_REFS)
    assert scores["tokenizer"] == "simple"
    assert "Java was not found" in str(scores["note"])
    assert "meteor" not in scores
    assert scores["bleu_4"] == pytest.approx(1.0, abs=1e-6)
    assert scores["cider"] > 1.0
    assert scores["rouge_l"] == pytest.approx(1.0)
    assert "Java was not found on PATH" in caplog.text


def test_failing_ptb_tokenizer_falls_back_to_the_simple_one(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_):
        raise OSError("read-only file system")

    monkeypatch.setattr(caption_module, "find_java", lambda: "/usr/bin/java")
    monkeypatch.setattr(caption_module, "_ptb_tokenize", broken)
    scores = caption_scores(BLEU1_PRED, BLEU1_REFS, meteor=False)
    assert scores["tokenizer"] == "simple"
    assert "read-only file system" in str(scores["note"])
    assert scores["bleu_1"] == pytest.approx(BLEU1_EXPECTED, rel=1e-6)


def test_spice_without_corenlp_models_fails_clearly(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(caption_module, "spice_models_dir", lambda: tmp_path)  # an empty lib folder
    monkeypatch.setattr(caption_module, "find_java", lambda: "/usr/bin/java")
    with pytest.raises(SpiceUnavailableError, match=r"stanford-corenlp-3\.6\.0") as info:
        caption_scores(SAME_PREDS, SAME_REFS, spice=True)
    assert isinstance(info.value, MicroVLMError)
    assert not list(tmp_path.iterdir())  # nothing was downloaded or written


def test_spice_without_java_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(caption_module, "find_java", lambda: None)
    with pytest.raises(SpiceUnavailableError, match="Java"):
        caption_scores(SAME_PREDS, SAME_REFS, spice=True)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("A cat sits on the mat.", "a cat sits on the mat"),
        ("Two dogs don't play, really!", "two dogs do n't play really"),
        ("The cat's x-ray (3.5 kg)", "the cat 's x-ray 3.5 kg"),
        ('He said "hi" -- twice; ok?', "he said hi twice ok"),
    ],
)
def test_simple_tokenizer_follows_ptb(text: str, tokens: str) -> None:
    assert simple_tokenize(text) == tokens


def test_input_checks() -> None:
    with pytest.raises(ValueError, match="2 predictions for 1"):
        caption_scores(["a", "b"], [["a"]], use_java=False)
    with pytest.raises(ValueError, match="no reference captions"):
        caption_scores(["a"], [[]], use_java=False)
    assert caption_scores([], [], use_java=False) == {"count": 0.0}
