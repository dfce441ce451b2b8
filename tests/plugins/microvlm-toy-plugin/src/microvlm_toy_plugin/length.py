"""A third-party task, ``toy_length``: caption an image, scored on whether the caption has as
many words as the reference. It brings its own metric (``length_match``) and its own
baseline (``always one word``) to ``results.json`` and the results table through the Task
contract (:class:`microvlm.contracts.data.Task`), with no change to MicroVLM's code."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from microvlm import hookimpl
from microvlm.contracts.data import Metric, ResultRow, TaskSummary
from microvlm.data import Example, Sample, Segment


@attrs.frozen
class LengthConfig:
    prompt: str = "Describe the image."  # text before the caption
    max_new_tokens: int = 8  # generation budget, tokens


def _words(text: str) -> int:
    return len(text.split())


class LengthTask:
    """``[prompt][" " + caption + eos]``; a prediction matches when its word count is the
    first reference caption's."""

    name = "toy_length"

    def __init__(self, config: LengthConfig) -> None:
        self.config = config

    @property
    def max_new_tokens(self) -> int:
        return self.config.max_new_tokens

    def example(self, sample: Sample, rng: random.Random, tokenizer: Any = None) -> Example:
        eos = (getattr(tokenizer, "eos_token", None) or "") if tokenizer is not None else ""
        caption = rng.choice(sample.captions)
        return Example((Segment(self.config.prompt), Segment(" " + caption + eos, target=True)))

    def eval_prompt(self, sample: Sample, tokenizer: Any = None) -> str:
        return self.config.prompt

    def references(self, sample: Sample) -> list[str]:
        return list(sample.captions)

    def score(self, predictions: Sequence[str], samples: Sequence[Sample]) -> dict[str, Metric]:
        wanted = [_words(s.captions[0]) for s in samples]
        n = max(len(samples), 1)
        hits = sum(_words(p) == w for p, w in zip(predictions, wanted, strict=True))
        return {"length_match": hits / n, "one_word_baseline": sum(w == 1 for w in wanted) / n}

    def per_sample(self, predictions: Sequence[str], samples: Sequence[Sample]) -> list[dict[str, Any]]:
        return [
            {"id": s.id, "prediction": p, "references": list(s.captions), "words": _words(p)}
            for p, s in zip(predictions, samples, strict=True)
        ]

    def summarize(self, metrics: Mapping[str, Metric]) -> TaskSummary:
        row = ResultRow("length_match", metrics.get("length_match"), metrics.get("one_word_baseline"))
        return TaskSummary(dict(metrics), (row,), baseline_name="always one word")

    def training_samples(self, samples: Sequence[Sample]) -> Sequence[Sample]:
        return samples


@hookimpl
def register_tasks(register):
    register("toy_length", LengthTask, LengthConfig, description="caption length match (fixture task)")
