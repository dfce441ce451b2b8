"""pretrain, captioning and vqa on hand-made samples; every registered task from its defaults."""

from __future__ import annotations

import json
import random

import attrs
import pytest

import microvlm
from microvlm.contracts.data import Task
from microvlm.data import Box, ImageRef, Sample, Turn
from microvlm.errors import MicroVLMError
from microvlm.recipes.structure import ConfigErrors, structure
from microvlm_tasks.captioning import build_captioning, build_pretrain
from microvlm_tasks.config import CaptioningConfig, PretrainConfig, VQAConfig
from microvlm_tasks.metrics import caption as caption_module
from microvlm_tasks.vqa import build_vqa, majority_answer

IMAGE = ImageRef(path="img.jpg", size=(64, 48))
CAPTIONS = ("a red square on a blue background", "a square that is red", "one red square")


class _Tok:
    eos_token = "<|endoftext|>"


def _caption_sample(**kw) -> Sample:
    return Sample(**{"id": "c1", "image": IMAGE, "captions": CAPTIONS, **kw})


def _vqa_sample(**kw) -> Sample:
    answers = ("red",) * 2 + ("blue",) * 7 + ("dark blue",)
    fields = {"id": "q1", "image": IMAGE, "question": "What color is the square?", "answers": answers}
    return Sample(**{**fields, **kw})


# -- pretrain / captioning ----------------------------------------------------------


def test_pretrain_has_no_prompt_and_the_caption_as_target() -> None:
    task = build_pretrain(PretrainConfig())
    example = task.example(_caption_sample(), random.Random(0), _Tok())
    assert len(example.segments) == 1 and example.segments[0].target
    assert example.prompt == ""
    caption = example.target.removesuffix("<|endoftext|>")
    assert example.target.endswith("<|endoftext|>") and caption in CAPTIONS  # no separator without a prompt
    assert task.eval_prompt(_caption_sample()) == ""
    assert task.max_new_tokens == 40


def test_captioning_prompt_then_caption_with_eos() -> None:
    task = build_captioning(CaptioningConfig())
    example = task.example(_caption_sample(), random.Random(0), _Tok())
    assert (example.segments[0].text, example.segments[0].target) == ("Describe this image.", False)
    assert example.target.startswith(" ") and example.target.endswith("<|endoftext|>")
    assert example.target[1:].removesuffix("<|endoftext|>") in CAPTIONS
    assert task.eval_prompt(_caption_sample()) == "Describe this image."
    assert task.references(_caption_sample()) == list(CAPTIONS)
    assert not task.example(_caption_sample(), random.Random(0)).target.endswith("<|endoftext|>")


def test_captioning_choices_follow_the_rng() -> None:
    task = build_captioning(CaptioningConfig(prompts=("Describe this image.", "Caption:")))
    first = [task.example(_caption_sample(), random.Random(seed)).target for seed in range(20)]
    again = [task.example(_caption_sample(), random.Random(seed)).target for seed in range(20)]
    assert first == again  # same seeds, same examples
    assert {t.strip() for t in first} == set(CAPTIONS)  # every caption gets drawn
    prompts = {task.example(_caption_sample(), random.Random(s)).prompt for s in range(20)}
    assert prompts == {"Describe this image.", "Caption:"}


def test_caption_score_without_java_and_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(caption_module, "find_java", lambda: None)  # fast; the Java path is tested elsewhere
    task = build_captioning(CaptioningConfig())
    samples = [_caption_sample(id="a"), _caption_sample(id="b", captions=("two green circles",))]
    preds = ["a red square on a blue background\nQuestion: ...", "two green circles"]
    scores = task.score(preds, samples)
    assert scores["tokenizer"] == "simple" and "meteor" not in scores
    assert scores["bleu_1"] == pytest.approx(1.0, abs=1e-6)  # only the first line counts
    assert scores["cider"] > 0
    assert scores["count"] == 2.0
    rows = task.per_sample(preds, samples)
    assert rows[0] == {"id": "a", "prediction": CAPTIONS[0], "references": list(CAPTIONS)}


def test_caption_sample_without_captions_fails_clearly() -> None:
    with pytest.raises(MicroVLMError, match="has no captions"):
        build_pretrain(PretrainConfig()).example(_caption_sample(captions=()), random.Random(0))


# -- vqa ----------------------------------------------------------------------------


def test_vqa_majority_answer_and_prompts() -> None:
    task = build_vqa(VQAConfig())
    example = task.example(_vqa_sample(), random.Random(0), _Tok())
    assert example.prompt == "Question: What color is the square? Answer:"
    assert example.target == " blue<|endoftext|>"  # 7 of 10 said "blue"
    assert task.eval_prompt(_vqa_sample()) == "Question: What color is the square? Answer:"  # as trained
    assert task.max_new_tokens == 10


def test_vqa_target_prefers_multiple_choice_answer_and_breaks_ties_by_order() -> None:
    assert majority_answer(_vqa_sample(meta={"multiple_choice_answer": "navy"})) == "navy"
    assert majority_answer(_vqa_sample(answers=("no", "yes", "yes", "no"))) == "no"  # tie: first seen
    with pytest.raises(MicroVLMError, match="has no answers"):
        majority_answer(_vqa_sample(answers=()))


def test_vqa_score_hand_computed() -> None:
    task = build_vqa(VQAConfig())
    samples = [
        _vqa_sample(id="a", answer_type="other"),
        _vqa_sample(id="b", answers=("2",) * 10, answer_type="number"),
        _vqa_sample(id="c", answers=("yes",) * 10, answer_type="yes/no"),
    ]
    preds = [" Red.", "two\nQuestion: next", "no"]
    # a: "red" from 2 of 10 humans -> 0.6 (see test_tasks_vqa_metric). b: the ten humans agree, so
    # (official 2021 rule) nothing is normalised and "two" != "2" -> 0. c: 0.
    scores = task.score(preds, samples)
    assert scores["accuracy"] == pytest.approx((0.6 + 0.0 + 0.0) / 3)
    assert scores["accuracy_other"] == pytest.approx(0.6)
    assert scores["accuracy_number"] == 0.0
    assert scores["accuracy_yes_no"] == 0.0
    rows = task.per_sample(preds, samples)
    assert rows[1]["prediction"] == "two" and rows[1]["normalized"] == "two" and rows[1]["accuracy"] == 0.0
    assert task.per_sample([" Two."], samples[:1])[0]["normalized"] == "2"  # humans disagree: processed
    assert rows[0]["references"] == list(samples[0].answers)
    with pytest.raises(ValueError, match="2 predictions for 3"):
        task.score(preds[:2], samples)


def test_vqa_needs_a_question() -> None:
    with pytest.raises(MicroVLMError, match="no question"):
        build_vqa(VQAConfig()).eval_prompt(_vqa_sample(question=" "))


def test_vqa_templates_are_checked() -> None:
    with pytest.raises(ValueError, match=r"must contain \{question\}"):
        VQAConfig(prompt="Answer:")
    with pytest.raises(ValueError, match="unknown placeholder"):
        VQAConfig(eval_prompt="Q: {question} {answer}")
    with pytest.raises(ValueError, match="unknown placeholder"):
        CaptioningConfig(prompts=("Describe {thing}.",))
    with pytest.raises(ValueError, match="at least one"):
        CaptioningConfig(prompts=())
    assert VQAConfig(prompt="{{Q}} {question}").prompt == "{{Q}} {question}"  # escaped braces are fine


def test_configs_structure_strictly_from_recipe_tables() -> None:
    config = structure({"prompts": ["Describe this image.", "Caption:"], "spice": False}, CaptioningConfig)
    assert config.prompts == ("Describe this image.", "Caption:")
    with pytest.raises(ConfigErrors, match="unknown key"):
        structure({"promt": "x"}, PretrainConfig)
    with pytest.raises(ConfigErrors, match="expected an integer"):
        structure({"max_new_tokens": "10"}, VQAConfig)


# -- every registered task ----------------------------------------------------------

PLUGINS = microvlm.load_plugins(allow=["microvlm-tasks"])
SAMPLE_FOR = {
    "pretrain": _caption_sample(),
    "captioning": _caption_sample(),
    "vqa": _vqa_sample(),
    "aokvqa_da": _vqa_sample(choices=("red", "blue"), meta={"correct_choice_idx": 1}),
    "aokvqa_mc": _vqa_sample(choices=("red", "blue"), meta={"correct_choice_idx": 1}),
    "grounding": Sample(id="g1", image=IMAGE, expression="the square", box=Box(8, 8, 40, 40)),
    "instruct": Sample(
        id="i1",
        image=IMAGE,
        conversation=(Turn("user", "What is shown?"), Turn("assistant", "A red square.")),
    ),
}


@pytest.mark.parametrize("name", PLUGINS.names("task"))
def test_every_task_builds_from_defaults_and_runs(name: str) -> None:
    component = PLUGINS.get("task", name)
    assert attrs.has(component.config_cls) and component.description
    task = component.build()
    assert isinstance(task, Task)
    assert task.name == name and task.max_new_tokens > 0
    sample = SAMPLE_FOR[name]
    example = task.example(sample, random.Random(0), _Tok())
    assert any(s.target for s in example.segments) and example.target.strip()
    assert isinstance(task.eval_prompt(sample), str)
    refs = task.references(sample)
    assert refs and all(isinstance(r, str) and r for r in refs)
    rows = task.per_sample([refs[0]], [sample])
    assert rows[0]["id"] == sample.id
    assert json.loads(json.dumps(rows))[0]["references"] == refs  # JSONL-ready
