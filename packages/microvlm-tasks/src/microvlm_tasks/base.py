"""Helpers the tasks share: end-of-sequence text, short answers, prompt/target examples, and
:class:`TaskDefaults` for tasks with nothing to add to summaries or training samples.

What a task must provide (the trainer, ``microvlm eval`` and ``results.json`` call it) is the
:class:`microvlm.contracts.data.Task` protocol in core, so a third-party task package needs
only microvlm-core. Predictions are the decoded generations without the prompt and without
special tokens; tasks strip whitespace (VQA, captions and boxes: up to the first line break).

Image sizes (grounding) come from ``sample.image.size`` (width, height) when the dataset
gives it; otherwise the task reads the image header to learn the size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from microvlm.contracts.data import Metric, TaskSummary, default_summary
from microvlm.data import Example, Sample, Segment


class TaskDefaults:
    """``summarize`` and ``training_samples`` of :class:`~microvlm.contracts.data.Task` for a
    task with nothing to add: every metric as it is, and the samples trained on as built."""

    def summarize(self, metrics: Mapping[str, Metric]) -> TaskSummary:
        """Every metric under its own name, one table row per number (:func:`default_summary`)."""
        return default_summary(metrics)

    def training_samples(self, samples: Sequence[Sample]) -> Sequence[Sample]:
        """The entry's samples, unchanged."""
        return samples


def eos_text(tokenizer: Any) -> str:
    """The tokenizer's end-of-sequence token as text, ``""`` without a tokenizer or eos."""
    if tokenizer is None:
        return ""
    return getattr(tokenizer, "eos_token", None) or ""


def first_line(text: str) -> str:
    """A generated short answer: the text up to the first line break, stripped."""
    stripped = text.strip()
    return stripped.split("\n", 1)[0].strip()


def prompt_and_target(prompt: str, target: str, separator: str, tokenizer: Any) -> Example:
    """``[prompt][separator + target + eos]``; the separator only when the prompt is non-empty."""
    segments = []
    if prompt:
        segments.append(Segment(prompt))
        target = separator + target
    segments.append(Segment(target + eos_text(tokenizer), target=True))
    return Example(tuple(segments))


def check_lengths(task: str, predictions: Sequence[str], samples: Sequence[Sample]) -> None:
    if len(predictions) != len(samples):
        raise ValueError(f"{task}: {len(predictions)} predictions for {len(samples)} samples")
