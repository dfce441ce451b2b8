"""The task interface: what the trainer and ``microvlm eval`` call on a task object.

A task plugin's factory is called as ``factory(config)`` and returns an object with:

``name: str``, ``config``
    The registered name (``"vqa"``) and the frozen config it was built with.
``max_new_tokens: int``
    A generation budget that fits the task's answers (VQA 10, captions 40, chats 256).
``example(sample, rng, tokenizer=None) -> microvlm.data.Example``
    Training text for one :class:`~microvlm.data.Sample`: segments that follow the image
    tokens, the ``target`` ones carrying the loss. ``rng`` (a :class:`random.Random`)
    makes every random choice (which caption, which prompt template), so a seeded data
    order gives the same examples. With a tokenizer, targets end with its ``eos_token``
    text (instruct: with the chat template's end-of-turn token), so the model learns to
    stop. ``"".join(s.text for s in example.segments)`` is the whole text.
``eval_prompt(sample, tokenizer=None) -> str``
    The text generation is conditioned on at evaluation (after the image tokens).
``references(sample) -> list[str]``
    What a prediction is compared with: captions, the human answers, the box as text,
    the final assistant reply.
``score(predictions, samples) -> dict[str, float | str]``
    Corpus metrics for ``predictions[i]`` generated for ``samples[i]``. Numbers are
    metrics (rates in [0, 1]; CIDEr on its usual 0-10 scale); string values are notes
    about how they were computed, e.g. ``"tokenizer": "simple"`` when Java is missing.
    Predictions are the decoded generations without the prompt and without special
    tokens; tasks strip whitespace (VQA, captions and boxes: up to the first line break).
``per_sample(predictions, samples) -> list[dict]``
    One JSON-able row per sample for a predictions JSONL: ``id``, ``prompt`` inputs,
    ``prediction``, ``references`` and the sample's own score where there is one.

Optional:

``training_samples(samples) -> Sequence[Sample]``
    Called once per training ``[[data]]`` entry (never for evaluation) with the dataset's
    samples; returns the ones to train on. The vqa task uses it to put several questions
    about one image into one sample (``Sample.group``, see ``questions_per_sequence``).

Image sizes (grounding) come from ``sample.image.size`` (width, height) when the dataset
gives it; otherwise the task reads the image header to learn the size.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from microvlm.data import Example, Sample, Segment


@runtime_checkable
class Task(Protocol):
    """Structural type of a task object (see the module docstring)."""

    name: str
    config: Any

    @property
    def max_new_tokens(self) -> int: ...

    def example(self, sample: Sample, rng: random.Random, tokenizer: Any = None) -> Example: ...

    def eval_prompt(self, sample: Sample, tokenizer: Any = None) -> str: ...

    def references(self, sample: Sample) -> list[str]: ...

    def score(self, predictions: Sequence[str], samples: Sequence[Sample]) -> dict[str, float | str]: ...

    def per_sample(self, predictions: Sequence[str], samples: Sequence[Sample]) -> list[dict[str, Any]]: ...


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
