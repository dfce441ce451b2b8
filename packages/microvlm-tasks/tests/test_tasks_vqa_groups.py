"""vqa's questions_per_sequence: questions about one image trained in one sequence."""

from __future__ import annotations

import random

import pytest

from microvlm.data import ImageRef, Sample
from microvlm.recipes.structure import ConfigErrors, structure
from microvlm_tasks.config import VQAConfig
from microvlm_tasks.vqa import build_vqa, group_by_image


class _Tok:
    eos_token = "<|endoftext|>"


def _q(i: int, image: ImageRef) -> Sample:
    return Sample(str(i), image, "vqa", question=f"question {i}?", answers=(f"answer {i}",) * 10)


A, B = ImageRef(path="a.jpg"), ImageRef(path="b.jpg")
A_SHARD = ImageRef(path="shard.tar", member="a.jpg", offset=512, length=10)
INLINE = ImageRef(data=b"jpeg bytes")


def test_questions_are_grouped_per_image_in_first_seen_order() -> None:
    samples = [_q(1, A), _q(2, A), _q(3, B), _q(4, A), _q(5, INLINE), _q(6, B), _q(7, A_SHARD)]
    grouped = group_by_image(samples, 2)
    assert [(s.id, [g.id for g in s.group]) for s in grouped] == [
        ("1", ["2"]),  # a.jpg: its first two questions ...
        ("4", []),  # ... then the rest, still at most two to a sample
        ("3", ["6"]),  # b.jpg
        ("5", []),  # inline bytes cannot be matched to other samples: alone
        ("7", []),  # a member of a tar file is not the file a.jpg
    ]
    assert sorted(int(s.id) for g in grouped for s in (g, *g.group)) == list(range(1, 8))  # none lost
    ones = group_by_image(samples, 1)  # one to a sample, but still ordered image by image
    assert [s.id for s in ones] == ["1", "2", "4", "3", "6", "5", "7"] and not any(s.group for s in ones)


def test_one_question_per_sequence_leaves_the_samples_alone() -> None:
    samples = [_q(1, A), _q(2, A)]
    assert build_vqa(VQAConfig()).training_samples(samples) is samples
    grouped = build_vqa(VQAConfig(questions_per_sequence=4)).training_samples(samples)
    assert len(grouped) == 1 and [s.id for s in grouped[0].group] == ["2"]


def test_a_grouped_sample_trains_every_question_each_with_its_answer() -> None:
    task = build_vqa(VQAConfig(questions_per_sequence=3))
    [sample] = task.training_samples([_q(1, A), _q(2, A), _q(3, A)])
    orders = set()
    for seed in range(12):
        example = task.example(sample, random.Random(seed), _Tok())
        texts = [(s.text, s.target) for s in example.segments]
        assert len(texts) == 6
        pairs = list(zip(texts[0::2], texts[1::2], strict=True))
        for (prompt, p_target), (answer, a_target) in pairs:  # [prompt][ answer<eos>] per question
            i = prompt.removeprefix("Question: question ").removesuffix("? Answer:")
            assert (p_target, a_target) == (False, True) and answer == f" answer {i}<|endoftext|>"
        orders.add(tuple(prompt for (prompt, _), _ in pairs))
        assert example == task.example(sample, random.Random(seed), _Tok())  # the rng decides the order
    assert len(orders) > 1  # each question is sometimes the first, right after the image
    assert all(len(set(order)) == 3 for order in orders)


def test_questions_per_sequence_is_validated() -> None:
    with pytest.raises(ConfigErrors, match="questions_per_sequence"):
        structure({"questions_per_sequence": 0}, VQAConfig)
