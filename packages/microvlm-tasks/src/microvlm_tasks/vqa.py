"""``vqa``: a question in, a short answer out; the official VQA accuracy (2021 rule) at evaluation.

Training target: the dataset's ``multiple_choice_answer`` when the builder kept it in
``sample.meta``, else the answer most annotators gave (ties: the one given first).
Prompt ``Question: {question} Answer:`` for training and, by default, for evaluation too
(a fine-tuned model answers best in the form it learned); both are configurable, e.g.
BLIP-2's zero-shot ``Question: {question} Short answer:``.

With ``questions_per_sequence = N`` (training only) the questions about one image are trained
N to a sequence, ``[image][Q1 A1 eos][Q2 A2 eos]...``, as LLaVA-1.5 merges VQAv2: the image is
encoded once and its tokens sit in the sequence once for all N answers.

``results.json`` keeps ``accuracy``, ``majority_baseline`` and ``by_question_type``
(``{kind: {"accuracy": ..., "majority_baseline": ...}}``); the results table shows accuracy
and one indented row per question type, each beside the majority-answer baseline.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from microvlm.contracts.data import Metric, ResultRow, TaskSummary
from microvlm.data import Example, Sample, Segment
from microvlm.errors import MicroVLMError
from microvlm_tasks.base import check_lengths, first_line, prompt_and_target
from microvlm_tasks.config import VQAConfig


def majority_answer(sample: Sample) -> str:
    """``meta["multiple_choice_answer"]`` if present, else the most frequent answer."""
    chosen = sample.meta.get("multiple_choice_answer") if sample.meta else None
    if isinstance(chosen, str) and chosen.strip():
        return chosen.strip()
    counts = Counter(a.strip() for a in sample.answers if a.strip())
    if not counts:
        raise MicroVLMError(
            f"vqa: sample {sample.id!r} of dataset {sample.dataset or '?'} has no answers; "
            "pair this task with a VQA dataset"
        )
    return counts.most_common(1)[0][0]  # most_common keeps first-seen order among ties


def group_by_image(samples: Sequence[Sample], per_sequence: int) -> list[Sample]:
    """Questions about the same image, up to ``per_sequence`` to a sample: the first carries the
    others in ``group``. Images in the order they first appear, each image's questions in the
    dataset's order, so the result is the same every time. Images held inline (no path) cannot
    be matched and stay one question per sample.
    """
    if per_sequence < 1:
        raise ValueError(f"per_sequence must be >= 1, got {per_sequence}")
    by_image: dict[tuple[str, str, int], list[Sample]] = {}  # in order of first appearance
    for i, sample in enumerate(samples):
        image = sample.image
        key = (image.path, image.member, image.offset) if image.path else ("", f"inline {i}", 0)
        by_image.setdefault(key, []).append(sample)
    out: list[Sample] = []
    for questions in by_image.values():
        for i in range(0, len(questions), per_sequence):
            first, *rest = questions[i : i + per_sequence]
            out.append(attrs.evolve(first, group=tuple(rest)))
    return out


class VQATask:
    """See the module docstring."""

    name = "vqa"

    def __init__(self, config: VQAConfig) -> None:
        self.config = config

    @property
    def max_new_tokens(self) -> int:
        return self.config.max_new_tokens

    def _question(self, sample: Sample) -> str:
        if not sample.question.strip():
            raise MicroVLMError(
                f"vqa: sample {sample.id!r} of dataset {sample.dataset or '?'} has no question"
            )
        return sample.question.strip()

    def example(self, sample: Sample, rng: random.Random, tokenizer: Any = None) -> Example:
        """``[prompt][answer + eos]``; for a grouped sample, one such pair per question, in an
        order drawn from ``rng`` (so each question of the group is sometimes first, right after
        the image, as at evaluation)."""
        questions = [sample, *sample.group]
        if len(questions) > 1:
            rng.shuffle(questions)
        segments: list[Segment] = []
        for one in questions:
            prompt = self.config.prompt.format(question=self._question(one))
            pair = prompt_and_target(prompt, majority_answer(one), self.config.separator, tokenizer)
            segments += pair.segments
        return Example(tuple(segments))

    def training_samples(self, samples: Sequence[Sample]) -> Sequence[Sample]:
        """With ``questions_per_sequence`` N > 1: the questions about one image, N to a sample
        (see :func:`group_by_image`); otherwise ``samples`` as they are."""
        n = self.config.questions_per_sequence
        return samples if n <= 1 else group_by_image(samples, n)

    def eval_prompt(self, sample: Sample, tokenizer: Any = None) -> str:
        return self.config.eval_prompt.format(question=self._question(sample))

    def references(self, sample: Sample) -> list[str]:
        if not sample.answers:
            raise MicroVLMError(f"vqa: sample {sample.id!r} has no reference answers to score against")
        return list(sample.answers)

    def score(self, predictions: Sequence[str], samples: Sequence[Sample]) -> dict[str, float | str]:
        from microvlm_tasks.metrics.vqa import vqa_scores

        check_lengths(self.name, predictions, samples)
        references = [self.references(s) for s in samples]
        result: dict[str, float | str] = dict(
            vqa_scores([first_line(p) for p in predictions], references, [s.answer_type for s in samples])
        )
        result.update(_by_question_type(predictions, samples, references))
        return result

    def per_sample(self, predictions: Sequence[str], samples: Sequence[Sample]) -> list[dict[str, Any]]:
        from microvlm_tasks.metrics.vqa import compared_answers, vqa_accuracy

        check_lengths(self.name, predictions, samples)
        rows = []
        for p, s in zip(predictions, samples, strict=True):
            answer = first_line(p)
            rows.append(
                {
                    "id": s.id,
                    "question": s.question,
                    "prediction": answer,
                    "normalized": compared_answers(answer, self.references(s))[0],
                    "references": self.references(s),
                    "answer_type": s.answer_type,
                    "accuracy": vqa_accuracy(answer, self.references(s)),
                }
            )
        return rows

    def summarize(self, metrics: Mapping[str, Metric]) -> TaskSummary:
        """Accuracy, the majority baseline and the per-question-type breakdown of :meth:`score`."""
        types = by_question_type(metrics)
        accuracy, baseline = metrics.get("accuracy"), metrics.get("majority_baseline")
        rows = [ResultRow("accuracy", accuracy, baseline)]
        for kind, values in sorted(types.items()):
            rows.append(ResultRow(f"  {kind}", values.get("accuracy"), values.get("majority_baseline")))
        results = {"accuracy": accuracy, "majority_baseline": baseline, "by_question_type": types}
        return TaskSummary(results, tuple(rows), baseline_name="majority baseline")


def by_question_type(metrics: Mapping[str, Metric]) -> dict[str, dict[str, Metric]]:
    """``question_type/<kind>/<what>`` metrics (see :meth:`VQATask.score`) -> ``{kind: {what: value}}``."""
    out: dict[str, dict[str, Metric]] = {}
    for name, value in metrics.items():
        if name.startswith("question_type/"):
            _, kind, what = name.split("/", 2)
            out.setdefault(kind, {})[what] = value
    return out


def build_vqa(config: VQAConfig) -> VQATask:
    """Factory of ``vqa``."""
    return VQATask(config)


def question_type_key(kind: str) -> str:
    """A question type as it appears in metric names: "what color is the" -> "what_color_is_the"."""
    return re.sub(r"[^a-z0-9]+", "_", kind.lower()).strip("_") or "all"


def _by_question_type(
    predictions: Sequence[str], samples: Sequence[Sample], references: Sequence[Sequence[str]]
) -> dict[str, float]:
    """Accuracy per question type beside the majority-answer baseline for the same questions.

    The baseline answers every question of a type with that type's most frequent target
    among the evaluated questions (so it even knows the test answer distribution): the gap
    between ``accuracy`` and ``majority_baseline`` is what the model learned beyond priors.
    The type is the dataset's ``question_type`` (VQAv2's first words, e.g. "how many"),
    else the answer type.
    """
    from microvlm_tasks.metrics.vqa import vqa_accuracy

    types = [str((s.meta or {}).get("question_type") or s.answer_type or "all") for s in samples]
    majority = {
        kind: Counter(
            majority_answer(s) for s, k in zip(samples, types, strict=True) if k == kind
        ).most_common(1)[0][0]
        for kind in set(types)
    }
    model_acc: dict[str, list[float]] = {}
    base_acc: dict[str, list[float]] = {}
    for p, refs, kind in zip(predictions, references, types, strict=True):
        model_acc.setdefault(kind, []).append(vqa_accuracy(first_line(p), refs))
        base_acc.setdefault(kind, []).append(vqa_accuracy(majority[kind], refs))
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    out = {"majority_baseline": mean([a for xs in base_acc.values() for a in xs])}
    for kind in sorted(model_acc):
        key = question_type_key(kind)
        out[f"question_type/{key}/accuracy"] = mean(model_acc[kind])
        out[f"question_type/{key}/majority_baseline"] = mean(base_acc[kind])
    return out
