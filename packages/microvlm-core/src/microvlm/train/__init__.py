"""The training runner behind ``microvlm run``: one stage, or a pipeline of stages."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from microvlm.config import Pipeline, Recipe

logger = logging.getLogger(__name__)


def run(recipe: Recipe | Pipeline, plugins: Any, progress: bool = True) -> Path:
    """Train a recipe; a pipeline trains its stages in order and returns the last checkpoint.

    A pipeline stage whose ``checkpoint_final`` already exists is skipped, so rerunning the
    pipeline after a failure continues with the stage that did not finish.
    """
    from microvlm.train.checkpoint import FINAL
    from microvlm.train.loop import train_stage

    if isinstance(recipe, Recipe):
        return train_stage(recipe, plugins, progress=progress)
    final = Path()
    for i, stage in enumerate(recipe.stages, 1):
        final = Path(stage.recipe.run.output_dir) / FINAL
        if final.is_dir():
            logger.warning(
                "stage %d (%s) is complete: %s exists; delete it to retrain", i, stage.recipe.run.name, final
            )
            continue
        logger.warning("stage %d of %d: %s", i, len(recipe.stages), stage.recipe.run.name)
        final = train_stage(stage.recipe, plugins, progress=progress)
    return final


__all__ = ["run"]
