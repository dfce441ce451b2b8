"""Counting bad data: :class:`BadDataMonitor` judges each dataset's share of skipped samples.

:class:`~microvlm.train.data.EpochDataset` replaces a bad sample and the batch carries the skip
(:attr:`~microvlm.train.data.Batch.bad`); this module counts those skips by dataset and reason,
logs them at the end of every epoch and of training, stops the run above
``run.max_bad_fraction``, and gives its counts to checkpoints (:meth:`BadDataMonitor.state_dict`)
so that a resumed run judges the same numbers as one never interrupted.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from microvlm.data.sources import MAX_EXAMPLES, reasons_text
from microvlm.errors import MicroVLMError

if TYPE_CHECKING:
    from microvlm.data.sources import Source
    from microvlm.train.data import Batch

logger = logging.getLogger("microvlm.train.data")  # where users (and their log filters) find these


class BadDataMonitor:
    """Counts skipped samples per dataset and reason; stops a run with too many.

    The runner calls :meth:`update` with every batch, :meth:`end_epoch` after the last batch of an
    epoch and once more when training ends (it logs the counts and returns them as metrics), and
    saves :meth:`state_dict` in its checkpoints so that a resumed epoch's counts include the part
    before the interruption.

    A dataset is over the limit when more than ``max_fraction`` of its samples read so far were
    bad — checked once it has ``min_seen`` samples in the epoch, and at the end of every epoch.
    Records its builder left out while loading are checked once, at construction, against the
    samples it kept.

    In a distributed run (``world`` > 1) each process counts the batches it reads and checks
    nothing itself: the runner's per-step collective (:func:`microvlm.train.loop.stop_flags`) sums
    every process's :meth:`counts` and :meth:`check_totals` judges those sums, so the limit applies
    to the data as a whole and every process stops at the same step with the same message.
    """

    def __init__(
        self, sources: Sequence[Source], max_fraction: float = 0.01, min_seen: int = 1000, world: int = 1
    ) -> None:
        self.world = world  # processes; more than one: only check_totals() judges (their sums)
        self.totals: list[float] | None = None  # the last sums check_totals() saw (distributed)
        self.names = [s.name for s in sources]
        self.max_fraction = max_fraction
        self.min_seen = min_seen
        self.seen = [0] * len(sources)  # items of each source this epoch
        self.reasons: list[Counter[str]] = [Counter() for _ in sources]  # this epoch
        self.examples: list[list[str]] = [[] for _ in sources]  # "where (reason)", this epoch
        self.total: Counter[str] = Counter()  # reason -> skips in the whole run
        for source in sources:
            skipped = sum(source.skipped.values())
            if skipped:
                # annotation records read (COCO: its captions and images), not samples (an image
                # with five captions is one sample): skips and reads in the same unit
                read = max(source.records, skipped) if source.records else len(source.samples) + skipped
                logger.warning(
                    "%s: %d of %d records left out while loading (%s)",
                    source.name,
                    skipped,
                    read,
                    reasons_text(source.skipped),
                )
                if skipped / read > max_fraction:
                    raise MicroVLMError(
                        f"{source.name}: {skipped} of {read} records could not be read "
                        f"({reasons_text(source.skipped)}), more than run.max_bad_fraction = "
                        f"{max_fraction:g}. Examples: {'; '.join(source.skipped_examples)}. Repair or "
                        f"re-download these files, or raise run.max_bad_fraction."
                    )

    def update(self, batch: Batch) -> None:
        """Count a batch's rows and skips; raises when a dataset is over the limit."""
        for k in batch.sources:
            self.seen[k] += 1
        touched = set()
        for bad in batch.bad:
            self.reasons[bad.source][bad.reason] += 1
            self.total[bad.reason] += 1
            if len(self.examples[bad.source]) < MAX_EXAMPLES:
                self.examples[bad.source].append(f"{bad.where} ({bad.reason})")
            touched.add(bad.source)
        if self.world > 1:
            return
        for k in touched:
            if self.seen[k] >= self.min_seen:
                self._check(k, self.seen[k], sum(self.reasons[k].values()))

    def counts(self) -> list[float]:
        """This epoch's ``[seen_0, ..., seen_K-1, bad_0, ..., bad_K-1]``: what a distributed run sums."""
        return [float(n) for n in self.seen] + [float(sum(r.values())) for r in self.reasons]

    def check_totals(self, totals: Sequence[float], epoch_end: bool = False) -> None:
        """Raise when a dataset is over the limit in ``totals``, the sum of every process's :meth:`counts`.

        Checked once a dataset has ``min_seen`` samples in all, and always at ``epoch_end``. Every
        process gets the same sums, so every process raises at the same step.
        """
        K = len(self.names)
        if len(totals) != 2 * K:
            raise ValueError(f"expected {2 * K} summed counts, got {len(totals)}")
        self.totals = [float(v) for v in totals]
        for k in range(K):
            seen, bad = int(totals[k]), int(totals[K + k])
            if bad and (epoch_end or seen >= self.min_seen):
                self._check(k, seen, bad)

    def _check(self, k: int, seen: int, bad: int) -> None:
        if not seen or bad / seen <= self.max_fraction:
            return
        here = sum(self.reasons[k].values())
        world = self.world
        if world == 1:
            detail = f"({reasons_text(self.reasons[k])}). Examples: {'; '.join(self.examples[k])}."
        elif here:
            detail = (
                f"by the {world} training processes. This process skipped {here} "
                f"({reasons_text(self.reasons[k])}), e.g. {'; '.join(self.examples[k])}."
            )
        else:
            detail = (
                f"by the {world} training processes; the logs of the others name the files "
                f"(this process read none of them)."
            )
        raise MicroVLMError(
            f"{self.names[k]}: {bad} of {seen} samples read this epoch were skipped {detail} "
            f"That is more than run.max_bad_fraction = {self.max_fraction:g}: repair or re-download "
            f"these files, or raise run.max_bad_fraction."
        )

    def metrics(self) -> dict[str, float]:
        """This epoch's counts: ``data/skipped``, ``data/skipped/<reason>``, ``data/skipped_fraction``."""
        epoch: Counter[str] = Counter()
        for reasons in self.reasons:
            epoch.update(reasons)
        seen = sum(self.seen)
        out = {"data/skipped": float(sum(epoch.values()))}
        if self.totals is not None:  # distributed: every process's samples (reasons: this process's)
            K = len(self.names)
            seen = int(sum(self.totals[:K]))
            out["data/skipped"] = float(sum(self.totals[K:]))
        out.update({f"data/skipped/{reason}": float(n) for reason, n in sorted(epoch.items())})
        out["data/skipped_fraction"] = out["data/skipped"] / seen if seen else 0.0
        return out

    def end_epoch(self, epoch: int) -> dict[str, float]:
        """Log the epoch's counts, check every dataset against the limit, reset; returns :meth:`metrics`."""
        metrics = self.metrics()
        for k, name in enumerate(self.names):
            bad = sum(self.reasons[k].values())
            if bad:
                logger.warning(
                    "epoch %d: %s: skipped %d of %d samples (%s); e.g. %s",
                    epoch,
                    name,
                    bad,
                    self.seen[k],
                    reasons_text(self.reasons[k]),
                    "; ".join(self.examples[k]),
                )
            if self.world == 1:
                self._check(k, self.seen[k], bad)
        if not metrics["data/skipped"]:
            logger.info("epoch %d: no bad samples", epoch)
        self.seen = [0] * len(self.names)
        self.reasons = [Counter() for _ in self.names]
        self.examples = [[] for _ in self.names]
        self.totals = None
        return metrics

    def state_dict(self) -> dict[str, Any]:
        """This epoch's counts (JSON-serialisable), for a checkpoint."""
        return {
            "names": list(self.names),
            "seen": list(self.seen),
            "reasons": [dict(r) for r in self.reasons],
            "examples": [list(e) for e in self.examples],
            "total": dict(self.total),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Take back :meth:`state_dict`'s counts; when the recipe's data entries changed since,
        the counts cannot be matched to them: a warning, and this epoch's counts start at zero."""
        names = list(state.get("names", self.names))
        if len(state["seen"]) != len(self.names) or names != self.names:
            logger.warning(
                "the bad-data counts in the checkpoint are for the data entries %s, the recipe has %s: "
                "this epoch's counts start at zero",
                names,
                self.names,
            )
            return
        self.seen = [int(n) for n in state["seen"]]
        self.reasons = [Counter({str(k): int(n) for k, n in r.items()}) for r in state["reasons"]]
        self.examples = [[str(e) for e in found][:MAX_EXAMPLES] for found in state["examples"]]
        self.total = Counter({str(k): int(n) for k, n in state["total"].items()})


def merge_counts(states: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Several processes' :meth:`BadDataMonitor.state_dict` as one (the sums; the first examples)."""
    first = states[0]
    K = len(first["seen"])
    reasons: list[Counter[str]] = [Counter() for _ in range(K)]
    total: Counter[str] = Counter()
    for state in states:
        for k in range(K):
            reasons[k].update(state["reasons"][k])
        total.update(state["total"])
    merged = {
        "seen": [sum(int(s["seen"][k]) for s in states) for k in range(K)],
        "reasons": [dict(r) for r in reasons],
        "examples": [[e for s in states for e in s["examples"][k]][:MAX_EXAMPLES] for k in range(K)],
        "total": dict(total),
    }
    if "names" in first:
        merged["names"] = list(first["names"])
    return merged


__all__ = ["MAX_EXAMPLES", "BadDataMonitor", "merge_counts", "reasons_text"]
