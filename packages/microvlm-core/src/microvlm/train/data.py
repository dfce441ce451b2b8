"""Training data: recipe ``[[data]]`` entries -> a seeded, weighted, restorable sample order.

Each entry pairs a dataset builder with a task. An epoch's order is a list of
``(entry, sample index)`` drawn from the entries in proportion to their weights and
shuffled with a generator seeded by ``(seed, epoch)``: the same recipe gives the same
order, and a position ``(epoch, step)`` is all that resuming needs. Images are decoded and
examples built in DataLoader workers, each item with RNGs seeded by ``(seed, epoch, index)``
(Python's for the task, torch's for random image transforms), so the result does not depend
on the number of workers or processes.

Every dataset is indexed, web shards included: a builder that supports ``len()`` and
``builder[i]`` is used as it is (web shards keep an index of where each image's bytes are in
its tar, not the bytes), any other is read into a list once. That is what makes the order a
pure function of the seed and resuming exact, which a streaming pipeline with shuffle buffers
cannot give.

**Bad data.** A sample whose image is missing, truncated or not an image, or whose record
cannot be made into an example, is skipped: :class:`EpochDataset` takes in its place a sample
of the same dataset drawn by a generator seeded with the bad sample's index, so batches keep
their size (every DDP rank runs the same steps) and skipping is a pure function of the data —
a resumed run skips exactly what the uninterrupted one did. Each skip travels with its batch
(:attr:`Batch.bad`) to the main process, where :class:`~microvlm.train.bad_data.BadDataMonitor` counts skips
by dataset and reason, logs them at the end of an epoch, and stops the run with a
:class:`~microvlm.errors.MicroVLMError` naming the dataset and examples of the bad files when a
dataset's share of bad samples exceeds ``run.max_bad_fraction``. Records a builder left out
while loading (e.g. a damaged web shard) count too.
"""

from __future__ import annotations

import logging
import random
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
import torch

from microvlm.contracts.samples import ImageError
from microvlm.data import Example
from microvlm.data.sources import Source
from microvlm.data.text import TextBatch, collate_text
from microvlm.errors import MicroVLMError
from microvlm.train.bad_data import BadDataMonitor, merge_counts

logger = logging.getLogger(__name__)

MAX_REPLACEMENTS = 16  # samples tried in place of a bad one before the dataset is declared unreadable


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


# -------------------------------------------------------------------------------------
# Items and batches
# -------------------------------------------------------------------------------------


@attrs.frozen
class BadItem:
    """A sample that could not be made into a training item (it was replaced, see the module doc)."""

    source: int  # index of its Source
    index: int  # its index in the source's samples
    reason: str  # "missing" | "truncated" | "not_image" | "unreadable" (the image) | "malformed" (the record)
    where: str  # the image file (``shard.tar[member]`` for web shards) or the sample id
    message: str  # the error, for logs


@attrs.frozen
class Item:
    """One position of the epoch: the image tensor, the example, and the skip it replaced, if any."""

    image: torch.Tensor  # (3, H, W)
    example: Example
    source: int  # index of the Source the row comes from
    bad: BadItem | None = None  # the sample at this position, when it was bad and replaced


class _Bad(Exception):
    def __init__(self, reason: str, where: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.where, self.message = reason, where, message


def _seed(*parts: Any) -> int:
    return zlib.crc32(":".join(map(str, parts)).encode())


class EpochDataset(torch.utils.data.Dataset):
    """Map-style view of one epoch's order: item ``j`` -> :class:`Item` (image tensor + example)."""

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

    def __getitem__(self, j: int) -> Item:
        k, i = self.order[j]
        try:
            image, example = self._make(k, i, j)
            return Item(image, example, k)
        except _Bad as exc:
            bad = BadItem(k, i, exc.reason, exc.where, exc.message)
        source = self.sources[k]
        probe = random.Random(f"replace:{k}:{i}")  # a function of the bad sample only
        for _ in range(MAX_REPLACEMENTS):
            try:
                image, example = self._make(k, probe.randrange(len(source.samples)), j)
                return Item(image, example, k, bad)
            except _Bad:
                continue
        raise MicroVLMError(
            f"{source.name}: sample {i} and {MAX_REPLACEMENTS} others drawn in its place are all "
            f"unreadable; first: {bad.where}: {bad.message}. Check the dataset's files and its "
            f"pairing with the task."
        )

    def _make(self, k: int, i: int, j: int) -> tuple[torch.Tensor, Example]:
        """Sample ``i`` of source ``k`` made for position ``j``; a bad sample raises :class:`_Bad`."""
        source = self.sources[k]
        try:
            sample = source.samples[i]
        except (MicroVLMError, ValueError, KeyError, TypeError) as exc:  # a record the builder cannot type
            raise _Bad("malformed", f"{source.name} sample {i}", str(exc)) from exc
        rng = random.Random(f"{self.seed}:{self.epoch}:{j}")
        try:
            example = source.task.example(sample, rng, self.tokenizer)
            image = sample.image.open()
        except ImageError as exc:
            raise _Bad(exc.reason, exc.where or sample.image.where, str(exc)) from exc
        except OSError as exc:
            raise _Bad("unreadable", sample.image.where, str(exc)) from exc
        except (MicroVLMError, ValueError, KeyError, TypeError) as exc:  # the task cannot use the record
            raise _Bad("malformed", f"{sample.dataset or source.name} {sample.id}", str(exc)) from exc
        # Random transforms draw from the CPU generator, seeded per item (not per worker) and
        # restored after, so the caller's stream is untouched (torch.manual_seed would also
        # reseed CUDA's generators, which fork_rng(devices=[]) does not restore).
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(_seed(self.seed, self.epoch, j))
            return self.processor(image), example


@attrs.define
class Batch:
    """A collated micro-batch. Unpacks as ``images, text = batch``, as the pair it extends."""

    images: torch.Tensor  # (B, 3, H, W)
    text: TextBatch
    sources: tuple[int, ...]  # source index of each row
    bad: tuple[BadItem, ...] = ()  # samples of this batch's positions that were skipped and replaced

    def __iter__(self) -> Iterator[Any]:
        return iter((self.images, self.text))


class Collate:
    """Stack images and tokenize examples (picklable, for worker processes)."""

    def __init__(self, tokenizer: Any, max_tokens: int) -> None:
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens

    def __call__(self, items: Sequence[Item]) -> Batch:
        images = torch.stack([item.image for item in items])  # (B, 3, H, W)
        text = collate_text([item.example for item in items], self.tokenizer, self.max_tokens)
        return Batch(
            images,
            text,
            tuple(item.source for item in items),
            tuple(item.bad for item in items if item.bad is not None),
        )


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


__all__ = [  # BadDataMonitor and merge_counts live in bad_data; imported from here too
    "BadDataMonitor",
    "Batch",
    "Collate",
    "EpochDataset",
    "Item",
    "StepSampler",
    "epoch_order",
    "merge_counts",
]
