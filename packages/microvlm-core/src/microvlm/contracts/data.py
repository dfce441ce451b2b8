"""Contracts of the data side: dataset builders (files -> samples) and tasks (samples -> text,
predictions -> metrics -> the rows a task contributes to ``results.json`` and results tables).

Neither side imports the other: both speak :mod:`microvlm.data` (``Sample``, ``Example``). The
protocols are structural; a plugin does not inherit from them. Checked by
:func:`microvlm.contracts.kinds.missing_members` when a component is built, and by the
conformance kit (:mod:`microvlm.testing.conformance`) in a plugin's own tests.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

if TYPE_CHECKING:
    from microvlm.contracts.samples import Example, Sample

#: A metric value: a number, or a string note about how the numbers were computed.
Metric = float | int | str | None


@runtime_checkable
class DatasetBuilder(Protocol):
    """An indexed source of :class:`~microvlm.data.Sample` read from files on disk.

    Built as ``factory(config)``; reading the annotations may wait until ``len()`` is first
    called (before DataLoader workers fork). ``builder[i]`` must not decode the image: samples
    carry an :class:`~microvlm.data.ImageRef` that a worker opens.
    """

    #: Records left out while loading, by reason (``{"missing image": 3}``); empty when none.
    skipped: Mapping[str, int]
    #: Where some of those records are, by reason (a file and line, a shard and member).
    skipped_examples: Mapping[str, Sequence[str]]
    #: Annotation records read while loading, kept or skipped; 0 when the builder cannot tell.
    records_read: int

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


@runtime_checkable
class DataSource(Protocol):
    """Where one dataset's files come from: what ``microvlm datasets download`` fetches and
    ``microvlm datasets status`` reports on. Built as ``factory(config)``.

    Only what core and the status report need; the downloader's own fields (URLs, hub
    repositories, checksums) are the providing package's business (microvlm-datasets'
    ``DatasetSource``).
    """

    #: The registered name (``"coco2017"``), used by ``download --datasets NAME``.
    name: str
    #: Folder under the data root the files land in, relative (``"coco"``): the default folder
    #: of the builders it feeds, so a downloaded dataset reads with no further step.
    folder: str
    #: One line for ``--help`` and ``microvlm plugins``.
    description: str
    #: The licence's name or the page stating the terms of use.
    licence: str
    #: What a person must do first: ``""`` nothing, ``"huggingface"`` a hub token (and accepted
    #: terms), ``"kaggle"`` a Kaggle login, ``"manual"`` steps that are printed.
    login: str


@attrs.frozen
class ResultRow:
    """One printed row of a results table (``microvlm run``, ``microvlm demo``, ``microvlm eval``)."""

    metric: str  # "accuracy", or an indented breakdown such as "  colour"
    value: Metric  # the model's figure
    baseline: Metric = None  # a trivial baseline to read it against (e.g. the majority answer)


@attrs.frozen
class TaskSummary:
    """What a task contributes to ``results.json`` and to the printed results table."""

    #: Kept in ``results.json`` under the task's name (JSON-able values only).
    results: Mapping[str, Any]
    #: The table rows, in order; ``baseline_name`` heads their baseline column.
    rows: tuple[ResultRow, ...] = ()
    baseline_name: str = "baseline"


@runtime_checkable
class Task(Protocol):
    """Sample -> training text; sample -> evaluation prompt; predictions -> metrics -> summary.

    Built as ``factory(config)``.
    """

    #: The registered name (``"vqa"``) and the frozen config the task was built with.
    name: str
    config: Any

    @property
    def max_new_tokens(self) -> int:
        """A generation budget that fits the task's answers (VQA 10, captions 40, chats 256)."""
        ...

    def example(self, sample: Sample, rng: random.Random, tokenizer: Any = None) -> Example:
        """Training text for one sample: segments after the image tokens, ``target`` ones carry
        the loss. Every random choice comes from ``rng``; with a tokenizer, targets end with its
        end-of-sequence (or end-of-turn) text so the model learns to stop."""
        ...

    def eval_prompt(self, sample: Sample, tokenizer: Any = None) -> str:
        """The text generation is conditioned on at evaluation (after the image tokens)."""
        ...

    def references(self, sample: Sample) -> list[str]:
        """What a prediction is compared with (captions, human answers, the box as text)."""
        ...

    def score(self, predictions: Sequence[str], samples: Sequence[Sample]) -> dict[str, Metric]:
        """Corpus metrics of ``predictions[i]`` (decoded, without prompt or special tokens) for
        ``samples[i]``: rates in [0, 1], CIDEr on its 0-10 scale; strings are notes."""
        ...

    def per_sample(self, predictions: Sequence[str], samples: Sequence[Sample]) -> list[dict[str, Any]]:
        """One JSON-able row per sample for the predictions JSONL (id, prompt, prediction,
        references, and the sample's own score where there is one)."""
        ...

    def summarize(self, metrics: Mapping[str, Metric]) -> TaskSummary:
        """The metrics :meth:`score` returned -> what ``results.json`` keeps and the table shows."""
        ...

    def training_samples(self, samples: Sequence[Sample]) -> Sequence[Sample]:
        """Called once per training ``[[data]]`` entry (never for evaluation): the samples to
        train on. Most tasks return them unchanged; vqa can put several questions about one
        image into one sample."""
        ...


def default_summary(metrics: Mapping[str, Metric]) -> TaskSummary:
    """Every metric as it is, one row per number: for tasks with nothing to add."""
    rows = tuple(ResultRow(k, v) for k, v in metrics.items() if isinstance(v, (int, float)))
    return TaskSummary(dict(metrics), rows)


__all__ = ["DataSource", "DatasetBuilder", "Metric", "ResultRow", "Task", "TaskSummary", "default_summary"]
