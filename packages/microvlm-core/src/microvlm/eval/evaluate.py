"""Evaluation: batched greedy generation over dataset entries, scored by their tasks.

Each entry (a dataset paired with a task, as in a recipe's ``[[eval.data]]``) gives
prompts from ``task.eval_prompt``; the model answers them in batches; ``task.score``
turns the answers into metrics and ``task.per_sample`` into rows of a predictions JSONL.
Greedy decoding makes the result deterministic.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from microvlm.recipes.config import DataConfig

if TYPE_CHECKING:
    from microvlm.plugins.manager import Plugins

logger = logging.getLogger(__name__)


def with_split(entry: DataConfig, split: str | None) -> DataConfig:
    """The entry with its dataset's ``split`` replaced (datasets without one are kept)."""
    config = entry.dataset.config
    if split is None or not attrs.has(type(config)) or "split" not in attrs.fields_dict(type(config)):
        return entry
    return attrs.evolve(entry, dataset=attrs.evolve(entry.dataset, config=attrs.evolve(config, split=split)))


def entry_name(entry: DataConfig) -> str:
    return f"{entry.dataset.name}/{entry.task.name}"


def evaluate(
    model: Any,
    entries: Sequence[DataConfig],
    plugins: Plugins,
    *,
    batch_size: int = 8,
    limit: int = 0,
    max_new_tokens: int = 0,
    output_dir: str | Path | None = None,
    progress: bool = True,
) -> dict[str, dict[str, float | str]]:
    """Metrics per entry (``"vqav2/vqa" -> {"vqa_accuracy": ...}``); writes files if ``output_dir``.

    :param limit: evaluate the first ``limit`` samples of each entry (0 = all).
    :param max_new_tokens: generation budget; 0 = the task's own (``task.max_new_tokens``).
    """
    import torch

    from microvlm.data.sources import build_sources
    from microvlm.models.processors import ImageEvalProcessor

    out = Path(output_dir) if output_dir else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    processor = ImageEvalProcessor.from_data_config(model.encoder.data_config)
    tokenizer = model.tokenizer
    results: dict[str, dict[str, float | str]] = {}
    bar = _Bar(progress)
    with bar:
        for entry in entries:
            [source] = build_sources([entry], plugins, limit=limit)
            task, samples = source.task, list(source.samples)
            budget = max_new_tokens or task.max_new_tokens
            predictions: list[str] = []
            job = bar.add(entry_name(entry), len(samples))
            for start in range(0, len(samples), batch_size):
                chunk = samples[start : start + batch_size]
                images = torch.stack([processor(s.image.open()) for s in chunk])  # (B, 3, H, W)
                prompts = [task.eval_prompt(s, tokenizer) for s in chunk]
                predictions += model.generate({"image": images, "prompt": prompts}, max_new_tokens=budget)
                bar.advance(job, len(chunk))
            metrics = task.score(predictions, samples)
            metrics["samples"] = len(samples)
            results[entry_name(entry)] = metrics
            if out:
                path = out / f"predictions_{entry.dataset.name}_{entry.task.name}.jsonl"
                with path.open("w", encoding="utf-8") as f:
                    for row in task.per_sample(predictions, samples):
                        f.write(json.dumps(row, ensure_ascii=False) + "\n")
    if out:
        (out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


class _Bar:
    """A rich progress bar, or nothing."""

    def __init__(self, enabled: bool) -> None:
        self.progress = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
            )

    def __enter__(self) -> _Bar:
        if self.progress:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress:
            self.progress.__exit__(*exc)

    def add(self, name: str, total: int) -> Any:
        return self.progress.add_task(name, total=total) if self.progress else None

    def advance(self, job: Any, n: int) -> None:
        if self.progress:
            self.progress.advance(job, n)
