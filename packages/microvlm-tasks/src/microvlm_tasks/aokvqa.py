"""``aokvqa_da`` and ``aokvqa_mc``: A-OKVQA's two settings, scored as its official evaluation.

Both read the fields the ``aokvqa`` dataset builder keeps: ``sample.answers`` (the ten
``direct_answers``), ``sample.choices`` and, in ``sample.meta``, ``correct_choice_idx`` and
``difficult_direct_answer``. Metrics: :mod:`microvlm_tasks.metrics.aokvqa`.

- ``aokvqa_da`` (direct answer): trained like ``vqa`` (prompt ``Question: {question} Answer:``,
  target the most frequent direct answer); evaluation leaves out ``difficult_direct_answer``
  questions and scores ``min(1, matches / 3)`` over the ten direct answers.
- ``aokvqa_mc`` (multiple choice): the choices are in the prompt
  (``Question: {question} Choices: {choices}. Answer:``), the target is the correct choice's
  text, and a prediction is right when it equals that text.

Two task names rather than one option, so that one recipe can evaluate both settings: results
are keyed ``dataset/task`` (``aokvqa/aokvqa_da``, ``aokvqa/aokvqa_mc``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from microvlm.data import Example, Sample
from microvlm.errors import MicroVLMError
from microvlm_tasks.base import TaskDefaults, check_lengths, first_line, prompt_and_target
from microvlm_tasks.config import AOKVQAChoiceConfig, AOKVQADirectConfig
from microvlm_tasks.vqa import majority_answer


def _question(task: str, sample: Sample) -> str:
    if not sample.question.strip():
        raise MicroVLMError(
            f"{task}: sample {sample.id!r} of dataset {sample.dataset or '?'} has no question"
        )
    return sample.question.strip()


def is_difficult(sample: Sample) -> bool:
    """``meta["difficult_direct_answer"]`` is true: left out of direct-answer accuracy."""
    return bool((sample.meta or {}).get("difficult_direct_answer") is True)


def correct_choice(task: str, sample: Sample) -> int:
    """``meta["correct_choice_idx"]``, checked against ``sample.choices``."""
    index = (sample.meta or {}).get("correct_choice_idx")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(sample.choices):
        raise MicroVLMError(
            f"{task}: sample {sample.id!r} of dataset {sample.dataset or '?'} has no correct_choice_idx "
            f"into its {len(sample.choices)} choices (the test split has none); pair this task with "
            "A-OKVQA train or val"
        )
    return index


class AOKVQADirectTask(TaskDefaults):
    """See the module docstring."""

    name = "aokvqa_da"

    def __init__(self, config: AOKVQADirectConfig) -> None:
        self.config = config

    @property
    def max_new_tokens(self) -> int:
        return self.config.max_new_tokens

    def example(self, sample: Sample, rng: random.Random, tokenizer: Any = None) -> Example:
        prompt = self.config.prompt.format(question=_question(self.name, sample))
        return prompt_and_target(prompt, majority_answer(sample), self.config.separator, tokenizer)

    def eval_prompt(self, sample: Sample, tokenizer: Any = None) -> str:
        return self.config.eval_prompt.format(question=_question(self.name, sample))

    def references(self, sample: Sample) -> list[str]:
        if not sample.answers:
            raise MicroVLMError(
                f"{self.name}: sample {sample.id!r} has no direct answers to score against "
                "(the test split has none)"
            )
        return list(sample.answers)

    def score(self, predictions: Sequence[str], samples: Sequence[Sample]) -> dict[str, float | str]:
        from microvlm_tasks.metrics.aokvqa import direct_answer_scores

        check_lengths(self.name, predictions, samples)
        return dict(
            direct_answer_scores(
                [first_line(p) for p in predictions],
                [self.references(s) for s in samples],
                [is_difficult(s) for s in samples],
            )
        )

    def per_sample(self, predictions: Sequence[str], samples: Sequence[Sample]) -> list[dict[str, Any]]:
        from microvlm_tasks.metrics.aokvqa import direct_answer_accuracy

        check_lengths(self.name, predictions, samples)
        rows = []
        for p, s in zip(predictions, samples, strict=True):
            answer, hard = first_line(p), is_difficult(s)
            rows.append(
                {
                    "id": s.id,
                    "question": s.question,
                    "prediction": answer,
                    "references": self.references(s),
                    "difficult_direct_answer": hard,
                    "accuracy": None if hard else direct_answer_accuracy(answer, self.references(s)),
                }
            )
        return rows


class AOKVQAChoiceTask(TaskDefaults):
    """See the module docstring."""

    name = "aokvqa_mc"

    def __init__(self, config: AOKVQAChoiceConfig) -> None:
        self.config = config

    @property
    def max_new_tokens(self) -> int:
        return self.config.max_new_tokens

    def _prompt(self, sample: Sample) -> str:
        if not sample.choices:
            raise MicroVLMError(
                f"{self.name}: sample {sample.id!r} has no choices; pair this task with A-OKVQA"
            )
        choices = self.config.choice_separator.join(sample.choices)
        return self.config.prompt.format(question=_question(self.name, sample), choices=choices)

    def example(self, sample: Sample, rng: random.Random, tokenizer: Any = None) -> Example:
        target = sample.choices[correct_choice(self.name, sample)]
        return prompt_and_target(self._prompt(sample), target, self.config.separator, tokenizer)

    def eval_prompt(self, sample: Sample, tokenizer: Any = None) -> str:
        return self._prompt(sample)

    def references(self, sample: Sample) -> list[str]:
        return [sample.choices[correct_choice(self.name, sample)]]

    def score(self, predictions: Sequence[str], samples: Sequence[Sample]) -> dict[str, float | str]:
        from microvlm_tasks.metrics.aokvqa import multiple_choice_scores

        check_lengths(self.name, predictions, samples)
        return dict(
            multiple_choice_scores(
                [first_line(p) for p in predictions],
                [list(s.choices) for s in samples],
                [correct_choice(self.name, s) for s in samples],
            )
        )

    def per_sample(self, predictions: Sequence[str], samples: Sequence[Sample]) -> list[dict[str, Any]]:
        check_lengths(self.name, predictions, samples)
        rows = []
        for p, s in zip(predictions, samples, strict=True):
            answer, (right,) = first_line(p), self.references(s)
            rows.append(
                {
                    "id": s.id,
                    "question": s.question,
                    "choices": list(s.choices),
                    "prediction": answer,
                    "references": [right],
                    "accuracy": float(answer == right),
                }
            )
        return rows


def build_aokvqa_da(config: AOKVQADirectConfig) -> AOKVQADirectTask:
    """Factory of ``aokvqa_da``."""
    return AOKVQADirectTask(config)


def build_aokvqa_mc(config: AOKVQAChoiceConfig) -> AOKVQAChoiceTask:
    """Factory of ``aokvqa_mc``."""
    return AOKVQAChoiceTask(config)
