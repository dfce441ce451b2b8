"""The evaluation at the end of a stage: generation on ``[[eval.data]]``, ``results.json``.

``results.json`` in the stage's output folder keeps, under each task's name, what the task's
:meth:`~microvlm.contracts.data.Task.summarize` made of its metrics, and the rows of the
results table the CLI prints (so the table needs no knowledge of any task)::

    {"vqa": {"accuracy": 0.97, "majority_baseline": 0.41, "by_question_type": {...}},
     "captioning": {"CIDEr": 2.1, "BLEU-4": 0.6, ...},
     "entries": {"shapes/vqa": {every metric the task reported}, ...},
     "table": [{"task": "vqa", "metric": "accuracy", "value": 0.97, "baseline": 0.41,
                "baseline_name": "majority baseline"}, ...],
     "wall_seconds": 512.3}

A task's summary sits under its name, or under ``dataset/task`` when two entries share a task.
Predictions and the full metrics go to ``<output_dir>/eval/``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from microvlm.contracts.data import Metric, Task
from microvlm.recipes.config import Recipe

if TYPE_CHECKING:
    from microvlm.plugins.manager import Plugins

logger = logging.getLogger(__name__)

RESULTS = "results.json"
#: Keys of ``results.json`` that are not a task's summary.
ENTRIES, TABLE, WALL_SECONDS = "entries", "table", "wall_seconds"


def summarize(results: Mapping[str, Mapping[str, Metric]], tasks: Mapping[str, Task]) -> dict[str, Any]:
    """Entry metrics (``"dataset/task" -> metrics``) -> the summary of ``results.json``, each
    entry summarised by its task (``tasks``, by the same entry names)."""
    summary: dict[str, Any] = {}
    table: list[dict[str, Any]] = []
    for entry, metrics in results.items():
        name = entry.rsplit("/", 1)[-1]
        key = entry if name in summary or name in (ENTRIES, TABLE, WALL_SECONDS) else name
        done = tasks[entry].summarize(metrics)
        summary[key] = dict(done.results)
        table += [
            {
                "task": key,
                "metric": row.metric,
                "value": row.value,
                "baseline": row.baseline,
                "baseline_name": done.baseline_name,
            }
            for row in done.rows
        ]
    summary[ENTRIES] = {entry: dict(metrics) for entry, metrics in results.items()}
    summary[TABLE] = table
    return summary


def final_evaluation(model: Any, recipe: Recipe, plugins: Plugins, progress: bool = True) -> Path | None:
    """Evaluate ``model`` on the recipe's ``[[eval.data]]`` and write ``results.json``."""
    from microvlm.eval.evaluate import entry_name, evaluate

    if not recipe.eval.data:
        return None
    out = Path(recipe.run.output_dir)
    was_training = model.training
    try:
        results = evaluate(
            model,
            recipe.eval.data,
            plugins,
            batch_size=recipe.eval.batch_size,
            limit=recipe.eval.max_samples,
            output_dir=out / "eval",
            progress=progress,
        )
    finally:
        model.train(was_training)
    tasks = {entry_name(e): plugins.build("task", e.task.name, e.task.config) for e in recipe.eval.data}
    path = out / RESULTS
    path.write_text(json.dumps(summarize(results, tasks), indent=2) + "\n")
    logger.info("wrote %s", path)
    return path


def add_wall_seconds(path: Path, seconds: float) -> dict[str, Any]:
    """Record the command's wall time in ``results.json``; returns the updated summary."""
    summary = json.loads(path.read_text())
    summary[WALL_SECONDS] = round(seconds, 1)
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary
