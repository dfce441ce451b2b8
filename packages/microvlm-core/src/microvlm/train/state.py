"""The resumable state of a run: position, plus the files that hold the rest."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import attrs
import torch

from microvlm.config import Recipe
from microvlm.models.weights import weights_to_save
from microvlm.train import checkpoint as ckpt
from microvlm.train.dist import DistInfo

logger = logging.getLogger(__name__)


@attrs.define
class RunState:
    """Where training is: optimizer steps done, epoch, micro-batches done in that epoch."""

    step: int = 0
    epoch: int = 0
    micro_step: int = 0

    def meta(self, recipe: Recipe, plugins: Any) -> dict[str, Any]:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "micro_step": self.micro_step,
            "run": recipe.run.name,
            "recipe": recipe.source,
            "plugins": plugins.distributions(),
        }

    def save(
        self,
        out: Path,
        model: Any,
        optimizer: Any,
        scheduler: Any,
        recipe: Recipe,
        plugins: Any,
        keep_last: int,
        rank_rng: dict[str, Any] | None = None,
    ) -> Path:
        """A step checkpoint with everything exact resume needs; prunes old ones.

        :param rank_rng: :func:`gather_rank_rng` of a distributed run (rank 0 writes alone).
        """
        rng = ckpt.rng_state()
        if rank_rng:
            rng["by_rank"] = rank_rng
        state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng,
        }
        path = ckpt.save_checkpoint(
            ckpt.step_dir(out, self.step), weights_to_save(model), state, self.meta(recipe, plugins)
        )
        ckpt.prune(out, keep_last)
        logger.info("saved %s", path)
        return path

    def save_final(self, path: Path, model: Any, recipe: Recipe, plugins: Any) -> Path:
        """``checkpoint_final``: trainable weights + the model table to rebuild the model."""
        import tomli_w

        from microvlm.recipe import recipe_to_table

        model_table = tomli_w.dumps({"model": recipe_to_table(recipe)["model"]})
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
        cls, out: Path, model: Any, optimizer: Any, scheduler: Any, dist: DistInfo | None = None
    ) -> RunState | None:
        """Restore from the newest step checkpoint in ``out``; None if there is none.

        In a distributed run each rank takes back its own torch generator states when the
        checkpoint was written by as many processes.
        """
        from microvlm.models.weights import apply_weights

        found = ckpt.step_checkpoints(out)
        if not found:
            return None
        _, path = found[-1]
        apply_weights(model, ckpt.load_weights(path), str(path))
        state = ckpt.load_state(path)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        ckpt.set_rng_state(state["rng"])
        _set_rank_rng(state["rng"].get("by_rank"), dist or DistInfo(), path)
        meta = ckpt.load_meta(path)
        logger.warning("resuming from %s (step %d)", path, meta["step"])
        return cls(meta["step"], meta["epoch"], meta["micro_step"])


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


__all__ = ["RunState", "gather_rank_rng"]
