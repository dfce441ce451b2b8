"""The training runner behind ``microvlm run``: one stage, or a pipeline of stages."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from microvlm.recipes.config import Pipeline, Recipe

if TYPE_CHECKING:
    from microvlm.plugins.manager import Plugins

logger = logging.getLogger(__name__)


def run(recipe: Recipe | Pipeline, plugins: Plugins, progress: bool = True) -> Path:
    """Train a recipe; a pipeline trains its stages in order and returns the last checkpoint.

    A pipeline stage whose ``checkpoint_final`` already exists is skipped, so rerunning the
    pipeline after a failure continues with the stage that did not finish. Under ``torchrun``
    every process calls this; ranks other than 0 log errors only.
    """
    import time

    from microvlm.eval.final_eval import RESULTS, add_wall_seconds
    from microvlm.train.dist import DistInfo

    start, started_at = time.perf_counter(), time.time()
    dist = DistInfo.from_env()
    package_logger = logging.getLogger("microvlm")
    level = package_logger.level
    if not dist.is_main:
        package_logger.setLevel(logging.ERROR)
    try:
        final = _run(recipe, plugins, dist, progress)
    finally:
        package_logger.setLevel(level)
    results = final.parent / RESULTS
    if dist.is_main and results.is_file() and results.stat().st_mtime >= started_at:
        add_wall_seconds(results, time.perf_counter() - start)  # the whole command, every stage
    dist.close()
    return final


def _run(recipe: Recipe | Pipeline, plugins: Plugins, dist: Any, progress: bool) -> Path:
    from microvlm.io.layout import FINAL
    from microvlm.train.loop import train_stage

    if isinstance(recipe, Recipe):
        return train_stage(recipe, plugins, dist, progress=progress)
    final = Path()
    for i, stage in enumerate(recipe.stages, 1):
        final = Path(stage.recipe.run.output_dir) / FINAL
        if final.is_dir():
            logger.warning(
                "stage %d (%s) is complete: %s exists; delete it to retrain", i, stage.recipe.run.name, final
            )
            continue
        logger.warning("stage %d of %d: %s", i, len(recipe.stages), stage.recipe.run.name)
        final = train_stage(stage.recipe, plugins, dist, progress=progress)
    return final


__all__ = ["run"]
