"""The resumable state of a run: position, plus the files that hold the rest."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import attrs

from microvlm.config import Recipe
from microvlm.train import checkpoint as ckpt

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
    ) -> Path:
        """A step checkpoint with everything exact resume needs; prunes old ones."""
        state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": ckpt.rng_state(),
        }
        path = ckpt.save_checkpoint(
            ckpt.step_dir(out, self.step), model.trainable_state_dict(), state, self.meta(recipe, plugins)
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
            model.trainable_state_dict(),
            None,
            self.meta(recipe, plugins),
            extra_files={"model.toml": model_table},
        )
        logger.info("saved %s", path)
        return path

    @classmethod
    def resume(cls, out: Path, model: Any, optimizer: Any, scheduler: Any) -> RunState | None:
        """Restore from the newest step checkpoint in ``out``; None if there is none."""
        from microvlm.train.loop import apply_weights

        found = ckpt.step_checkpoints(out)
        if not found:
            return None
        _, path = found[-1]
        apply_weights(model, ckpt.load_weights(path), str(path))
        state = ckpt.load_state(path)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        ckpt.set_rng_state(state["rng"])
        meta = ckpt.load_meta(path)
        logger.warning("resuming from %s (step %d)", path, meta["step"])
        return cls(meta["step"], meta["epoch"], meta["micro_step"])


__all__ = ["RunState"]
