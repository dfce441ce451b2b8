"""The evaluation at the end of a stage: generation on ``[[eval.data]]``, ``results.json``.

``results.json`` in the stage's output folder summarises the metrics per task::

    {"vqa": {"accuracy": 0.97, "majority_baseline": 0.41, "by_question_type": {...}},
     "captioning": {"CIDEr": 2.1, "BLEU-4": 0.6, ...},
     "grounding": {"acc@0.5": 0.93, "miou": 0.81, ...},
     "wall_seconds": 512.3,
     "entries": {"shapes/vqa": {every metric the task reported}, ...}}

Predictions and the full metrics go to ``<output_dir>/eval/``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from microvlm.recipes.config import Recipe

logger = logging.getLogger(__name__)

RESULTS = "results.json"
_CAPTION_NAMES = {
    "cider": "CIDEr",
    "bleu_1": "BLEU-1",
    "bleu_2": "BLEU-2",
    "bleu_3": "BLEU-3",
    "bleu_4": "BLEU-4",
    "meteor": "METEOR",
    "rouge_l": "ROUGE-L",
    "spice": "SPICE",
}


def by_question_type(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``question_type/<kind>/<what>`` metrics (the vqa task's) -> ``{kind: {what: value}}``."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in metrics.items():
        if name.startswith("question_type/"):
            _, kind, what = name.split("/", 2)
            out.setdefault(kind, {})[what] = value
    return out


def summarize(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Entry metrics (``"dataset/task" -> metrics``) -> the task-keyed summary of results.json."""
    summary: dict[str, Any] = {}
    for entry, metrics in results.items():
        task = entry.rsplit("/", 1)[-1]
        key = task if task not in summary else entry
        if task == "vqa":
            summary[key] = {
                "accuracy": metrics.get("accuracy"),
                "majority_baseline": metrics.get("majority_baseline"),
                "by_question_type": by_question_type(metrics),
            }
        elif task in ("captioning", "pretrain"):
            summary[key] = {_CAPTION_NAMES.get(k, k): v for k, v in metrics.items()}
        else:
            summary[key] = {k: v for k, v in metrics.items() if not k.startswith("question_type/")}
    summary["entries"] = results
    return summary


def final_evaluation(model: Any, recipe: Recipe, plugins: Any, progress: bool = True) -> Path | None:
    """Evaluate ``model`` on the recipe's ``[[eval.data]]`` and write ``results.json``."""
    from microvlm.eval.evaluate import evaluate

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
    path = out / RESULTS
    path.write_text(json.dumps(summarize(results), indent=2) + "\n")
    logger.info("wrote %s", path)
    return path


def add_wall_seconds(path: Path, seconds: float) -> dict[str, Any]:
    """Record the command's wall time in ``results.json``; returns the updated summary."""
    summary = json.loads(path.read_text())
    summary["wall_seconds"] = round(seconds, 1)
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary
