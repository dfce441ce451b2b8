"""The resumable state of a run: position, plus the files that hold the rest."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import torch

from microvlm.errors import MicroVLMError
from microvlm.io import layout
from microvlm.models.weights import weights_to_save
from microvlm.recipes.config import Recipe, RunConfig
from microvlm.train import checkpoint as ckpt
from microvlm.train.data import BadDataMonitor, merge_counts
from microvlm.train.dist import DistInfo
from microvlm.train.settings import (
    apply_hyperparameters,
    fresh_hyperparameters,
    report_changes,
    settings_record,
)

if TYPE_CHECKING:
    from microvlm.plugins.manager import Plugins

logger = logging.getLogger(__name__)


@attrs.define
class RunState:
    """Where training is: optimizer steps done, epoch, micro-batches done in that epoch.

    ``micro_step`` counts one process's micro-batches; the checkpoint also records the
    position in the epoch's sample order (``epoch_samples``) so that a run resumed with another
    process count or batch size continues from the same sample.
    """

    step: int = 0
    epoch: int = 0
    micro_step: int = 0
    world: int = 1  # processes of the run that owns this state
    saved: dict[str, Any] = attrs.field(factory=dict, repr=False)  # trainer.json resumed from, if any

    def meta(self, recipe: Recipe, plugins: Plugins) -> dict[str, Any]:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "micro_step": self.micro_step,
            "epoch_samples": self.micro_step * recipe.run.batch_size * self.world,
            "world": self.world,
            "run": recipe.run.name,
            "recipe": recipe.source,
            "plugins": plugins.distributions(),
            "settings": settings_record(recipe.run),  # what a resumed run compares its own with
        }

    def save(
        self,
        out: Path,
        model: Any,
        optimizer: Any,
        scheduler: Any,
        recipe: Recipe,
        plugins: Plugins,
        keep_last: int,
        rank_rng: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        """A step checkpoint with everything exact resume needs; prunes old ones.

        :param rank_rng: :func:`gather_rank_rng` of a distributed run (rank 0 writes alone).
        :param extra: more JSON-serialisable entries for ``trainer.json`` (the bad-data counts of
            every process, :func:`gather_bad_data`), back in :attr:`saved` on resume.
        """
        rng = ckpt.rng_state()
        if rank_rng:
            rng["by_rank"] = rank_rng
        state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng,
        }
        meta = {**self.meta(recipe, plugins), **(extra or {})}
        path = ckpt.save_checkpoint(layout.step_dir(out, self.step), weights_to_save(model), state, meta)
        ckpt.prune(out, keep_last)
        logger.info("saved %s", path)
        return path

    def save_final(self, path: Path, model: Any, recipe: Recipe, plugins: Plugins) -> Path:
        """``checkpoint_final``: trainable weights + the model table to rebuild the model."""
        import tomli_w

        from microvlm.models.pretrained import model_table as table_of

        # the model's own config: a stage may change it on the way (a merged adapter, [qat])
        model_table = tomli_w.dumps({"model": table_of(model.config)})
        ckpt.save_checkpoint(
            path,
            weights_to_save(model),
            None,
            self.meta(recipe, plugins),
            extra_files={"model.toml": model_table},
        )
        logger.info("saved %s", path)
        return path

    @classmethod
    def resume(
        cls,
        out: Path,
        model: Any,
        optimizer: Any,
        scheduler: Any,
        dist: DistInfo | None = None,
        batch_size: int | None = None,
        grad_accum_steps: int = 1,
        run: RunConfig | None = None,
    ) -> RunState | None:
        """Restore from the newest step checkpoint in ``out``; None if there is none.

        In a distributed run each rank takes back its own torch generator states when the
        checkpoint was written by as many processes. With ``batch_size`` (this run's, per
        process) the position in the epoch is recomputed from the samples already used, so
        that changing the process count or the batch size neither repeats nor skips data
        (up to one optimizer step's worth when the new step size does not divide it).

        The optimizer and scheduler keep the settings they were built with (this run's: peak
        rate, warm-up, floor, length, weight decay), their rate set for the resumed step; the
        checkpoint brings the moments and the step count. With ``run``, each setting that changed
        since the checkpoint is logged (:mod:`microvlm.train.settings`).
        """
        dist = dist or DistInfo()
        from microvlm.models.weights import apply_weights

        found = ckpt.newest_intact(out)  # read whole before anything is applied
        if found is None:
            return None
        path, state, meta = found.path, found.state, found.meta
        if run is not None:
            report_changes(meta.get("settings"), run, path)  # raises when run.train changed
        apply_weights(model, found.weights, str(path))
        fresh = fresh_hyperparameters(optimizer, scheduler)
        try:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            apply_hyperparameters(optimizer, scheduler, fresh)
            ckpt.set_rng_state(state["rng"])
        except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as exc:
            raise MicroVLMError(
                f"{path / layout.STATE}: does not fit this run ({exc}); was run.train or the model changed "
                "since it was written? Use a new run.output_dir to start over."
            ) from None
        _set_rank_rng(state["rng"].get("by_rank"), dist, path)
        logger.warning("resuming from %s (step %d)", path, meta["step"])
        micro_step = meta["micro_step"]
        if batch_size is not None and "epoch_samples" in meta:
            micro_step = micro_step_at(meta["epoch_samples"], batch_size, dist.world, grad_accum_steps, path)
        return cls(meta["step"], meta["epoch"], micro_step, dist.world, meta)


def micro_step_at(samples: int, batch_size: int, world: int, grad_accum_steps: int, where: Any = "") -> int:
    """The micro-step of a run with ``world`` processes of ``batch_size`` that has used the first
    ``samples`` positions of the epoch order, at an optimizer-step boundary (rounded down)."""
    per_step = batch_size * world * grad_accum_steps
    micro = samples // per_step * grad_accum_steps
    done = micro * batch_size * world
    if done != samples:
        logger.warning(
            "%s: %d samples of this epoch were used; with %d process(es) x batch %d x %d accumulation "
            "steps the run continues at sample %d, so %d samples are seen a second time",
            where,
            samples,
            world,
            batch_size,
            grad_accum_steps,
            done,
            samples - done,
        )
    return micro


def gather_bad_data(dist: DistInfo, monitor: BadDataMonitor) -> list[dict[str, Any]]:
    """Every process's :meth:`BadDataMonitor.state_dict`, by rank (a collective when distributed)."""
    state = monitor.state_dict()
    if not dist.active:
        return [state]
    states: list[Any] = [None] * dist.world
    torch.distributed.all_gather_object(states, state)  # between this run's own processes only
    return states


def restore_bad_data(monitor: BadDataMonitor, saved: dict[str, Any], dist: DistInfo, where: Any) -> None:
    """Give ``monitor`` back the counts of the epoch's part before the checkpoint (``saved`` is its
    ``trainer.json``), so a resumed run judges the same numbers as one never interrupted.

    Each process takes back its own counts when as many wrote them; with another process count
    rank 0 takes the sum of all and the others start at zero (the limit judges the sum)."""
    states = saved.get("bad_data")
    if states is None:
        logger.warning(
            "%s holds no bad-data counts (an older checkpoint): this epoch's counts start at this step", where
        )
        return
    try:
        if len(states) == dist.world:
            monitor.load_state_dict(states[dist.rank])
        elif dist.is_main:
            monitor.load_state_dict(merge_counts(states))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MicroVLMError(f"{where}: the bad-data counts are malformed ({exc!r})") from None


def gather_rank_rng(dist: DistInfo) -> dict[str, torch.Tensor]:
    """The torch generator states of every process, ``[world, S]`` each (a collective).

    Ranks draw different numbers of random values (dropout over differently shaped batches),
    so their generators drift apart; exact resume needs each one's state.
    """
    states = {"torch": dist.gather(torch.get_rng_state())}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = dist.gather(torch.cuda.get_rng_state())
    return states


def _set_rank_rng(by_rank: dict[str, torch.Tensor] | None, dist: DistInfo, path: Path) -> None:
    if not by_rank:
        return
    if by_rank["torch"].shape[0] != dist.world:
        logger.warning(
            "%s was written by %d processes, this run has %d: random streams (dropout) restart from "
            "rank 0's state, so the run continues but not bitwise as before",
            path,
            by_rank["torch"].shape[0],
            dist.world,
        )
        return
    torch.set_rng_state(by_rank["torch"][dist.rank].clone())
    if "cuda" in by_rank and torch.cuda.is_available():
        torch.cuda.set_rng_state(by_rank["cuda"][dist.rank].clone())


__all__ = ["RunState", "gather_bad_data", "gather_rank_rng", "micro_step_at", "restore_bad_data"]
