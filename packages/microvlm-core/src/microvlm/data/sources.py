"""Data sources: each recipe ``[[data]]`` entry built into its samples and its task.

Used by training (:mod:`microvlm.train.data` orders and batches them) and by evaluation
(:mod:`microvlm.eval.evaluate` scores a model on them) alike, so both read a dataset the same
way: an indexable builder (``len`` and ``builder[i]``) is used as it is, any other is read into
a list once; records the builder left out while loading travel with the source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from microvlm.contracts.data import Task
from microvlm.contracts.samples import Sample
from microvlm.errors import MicroVLMError
from microvlm.recipes.config import DataConfig

if TYPE_CHECKING:
    from microvlm.plugins.manager import Plugins

MAX_EXAMPLES = 5  # bad files named per dataset in logs and errors


@attrs.frozen
class Source:
    """One built ``[[data]]`` entry."""

    name: str  # "vqav2/vqa": dataset/task, for logs
    samples: Sequence[Sample]
    task: Task
    weight: float
    skipped: Mapping[str, int] = attrs.field(factory=dict)  # reason -> records left out while loading
    skipped_examples: tuple[str, ...] = ()  # where some of them are
    records: int = 0  # annotation records read while loading, kept or skipped (0: unknown)


class _Head(Sequence[Sample]):
    """The first ``n`` samples of an indexable builder, without copying them."""

    def __init__(self, samples: Sequence[Sample], n: int) -> None:
        self.samples = samples
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.n))]
        if not -self.n <= i < self.n:
            raise IndexError(f"sample {i} out of range ({self.n} samples)")
        return self.samples[i % self.n]


def _indexable(builder: Any) -> bool:
    indexable = hasattr(builder, "__len__") and hasattr(builder, "__getitem__")
    return indexable and not isinstance(builder, Mapping)


def build_sources(
    entries: Sequence[DataConfig], plugins: Plugins, limit: int = 0, *, train: bool = False
) -> list[Source]:
    """Build every entry's dataset and task; ``limit`` > 0 keeps the first samples of each.

    An indexable builder (``len`` and ``builder[i]``) is kept as the sample sequence; any
    other is read into a list. For training (``train``), the task's ``training_samples`` gets
    the entry's samples and returns the ones to train on (the vqa task can put several
    questions about one image into one sample); evaluation always sees them as built. What the
    builder left out (``skipped``, ``skipped_examples``, ``records_read``: members of the
    :class:`~microvlm.contracts.data.DatasetBuilder` contract) travels with the source.
    """
    sources = []
    for entry in entries:
        builder = plugins.build("dataset", entry.dataset.name, entry.dataset.config)
        samples: Sequence[Sample]
        if _indexable(builder):
            n = len(builder)  # loads the annotations / indexes the shards, here, before workers fork
            samples = _Head(builder, min(n, limit)) if limit and limit < n else builder
        else:
            materialised: list[Sample] = []
            for sample in builder:
                materialised.append(sample)
                if limit and len(materialised) >= limit:
                    break
            samples = materialised
        name = f"{entry.dataset.name}/{entry.task.name}"
        skipped = dict(builder.skipped)
        examples = tuple(where for found in builder.skipped_examples.values() for where in found)[
            :MAX_EXAMPLES
        ]
        if not len(samples):
            unreadable = f" ({reasons_text(skipped)} left out, e.g. {examples[0]})" if examples else ""
            raise MicroVLMError(
                f"data entry {name}: the dataset yielded no samples{unreadable}; check its root and split"
            )
        task = plugins.build("task", entry.task.name, entry.task.config)
        if train:
            samples = task.training_samples(samples)
        records = int(builder.records_read)  # COCO: captions and images
        sources.append(Source(name, samples, task, entry.weight, skipped, examples, records))
    return sources


def reasons_text(counts: Mapping[str, int]) -> str:
    """``"missing 3, truncated 1"``: skip counts by reason, most frequent first."""
    return ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
