"""Training data: recipe ``[[data]]`` entries -> a seeded, weighted, restorable sample order.

Each entry pairs a dataset builder with a task. An epoch's order is a list of
``(entry, sample index)`` drawn from the entries in proportion to their weights and
shuffled with a generator seeded by ``(seed, epoch)``: the same recipe gives the same
order, and a position ``(epoch, step)`` is all that resuming needs. Images are decoded and
examples built in DataLoader workers, each with an RNG seeded by ``(seed, epoch, index)``,
so the result does not depend on the number of workers or processes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
import torch

from microvlm.config import DataConfig
from microvlm.data import Example, Sample
from microvlm.errors import MicroVLMError
from microvlm.models.text import TextBatch, collate_text


@attrs.frozen
class Source:
    """One built ``[[data]]`` entry."""

    name: str  # "vqav2/vqa": dataset/task, for logs
    samples: Sequence[Sample]
    task: Any
    weight: float


def build_sources(entries: Sequence[DataConfig], plugins: Any, limit: int = 0) -> list[Source]:
    """Build every entry's dataset and task; ``limit`` > 0 keeps the first samples of each."""
    sources = []
    for entry in entries:
        builder = plugins.build("dataset", entry.dataset.name, entry.dataset.config)
        samples: list[Sample] = []
        for sample in builder:
            samples.append(sample)
            if limit and len(samples) >= limit:
                break
        name = f"{entry.dataset.name}/{entry.task.name}"
        if not samples:
            raise MicroVLMError(
                f"data entry {name}: the dataset yielded no samples; check its root and split"
            )
        task = plugins.build("task", entry.task.name, entry.task.config)
        sources.append(Source(name, samples, task, entry.weight))
    return sources


def epoch_order(sources: Sequence[Source], epoch: int, seed: int) -> list[tuple[int, int]]:
    """The ``(source, sample)`` order of one epoch.

    An epoch has as many samples as all sources together; source ``k`` contributes
    ``weight_k / sum(weights)`` of them, sampling without replacement while it can.
    """
    rng = random.Random(f"{seed}:{epoch}")
    total = sum(len(s.samples) for s in sources)
    weights = sum(s.weight for s in sources)
    order: list[tuple[int, int]] = []
    for k, source in enumerate(sources):
        want = max(1, round(total * source.weight / weights))
        n = len(source.samples)
        picks: list[int] = []
        while len(picks) < want:
            picks.extend(rng.sample(range(n), min(n, want - len(picks))))
        order.extend((k, i) for i in picks)
    rng.shuffle(order)
    return order


class EpochDataset(torch.utils.data.Dataset):
    """Map-style view of one epoch's order: item ``j`` -> image tensor + training example."""

    def __init__(
        self,
        sources: Sequence[Source],
        order: Sequence[tuple[int, int]],
        processor: Any,
        tokenizer: Any,
        seed: int,
        epoch: int,
    ) -> None:
        self.sources = sources
        self.order = order
        self.processor = processor
        self.tokenizer = tokenizer
        self.seed = seed
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, j: int) -> tuple[torch.Tensor, Example]:
        k, i = self.order[j]
        source = self.sources[k]
        sample = source.samples[i]
        rng = random.Random(f"{self.seed}:{self.epoch}:{j}")
        example = source.task.example(sample, rng, self.tokenizer)
        return self.processor(sample.image.open()), example


class Collate:
    """Stack images and tokenize examples (picklable, for worker processes)."""

    def __init__(self, tokenizer: Any, max_tokens: int) -> None:
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens

    def __call__(self, items: Sequence[tuple[torch.Tensor, Example]]) -> tuple[torch.Tensor, TextBatch]:
        images = torch.stack([image for image, _ in items])  # (B, 3, H, W)
        return images, collate_text([e for _, e in items], self.tokenizer, self.max_tokens)


class StepSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of one process: global batch ``s`` covers ``order[s*G:(s+1)*G]``, ``G = B*world``,
    and rank ``r`` takes its ``B`` consecutive items. Starts at ``start_step`` (resume).
    The last incomplete global batch is dropped so every rank runs the same number of steps."""

    def __init__(
        self,
        length: int,
        batch_size: int,
        rank: int = 0,
        world: int = 1,
        start_step: int = 0,
        multiple: int = 1,
    ) -> None:
        self.length = length
        self.batch_size = batch_size
        self.rank = rank
        self.world = world
        self.start_step = start_step
        self.multiple = multiple  # gradient accumulation: only whole optimizer steps

    def steps(self) -> int:
        full = self.length // (self.batch_size * self.world)
        return full - full % self.multiple

    def __len__(self) -> int:
        return max(0, self.steps() - self.start_step)

    def __iter__(self) -> Iterator[list[int]]:
        G = self.batch_size * self.world
        for s in range(self.start_step, self.steps()):
            first = s * G + self.rank * self.batch_size
            yield list(range(first, first + self.batch_size))
