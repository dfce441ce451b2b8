"""The results table printed after a run: one row per metric of ``results.json``."""

from __future__ import annotations

import json
from pathlib import Path


def print_results(path: Path) -> None:
    """The results table of a ``results.json`` (VQA with its baseline, captions, grounding)."""
    from rich.console import Console
    from rich.table import Table

    from microvlm.cli.literal import add_literal_row, literal

    summary = json.loads(path.read_text())
    table = Table("task", "metric", "value", "majority baseline", title=literal(path))
    for task, metrics in summary.items():
        if task in ("entries", "wall_seconds") or not isinstance(metrics, dict):
            continue
        if "by_question_type" in metrics:
            add_literal_row(
                table, task, "accuracy", _fmt(metrics.get("accuracy")), _fmt(metrics.get("majority_baseline"))
            )
            for kind, values in sorted(metrics["by_question_type"].items()):
                add_literal_row(
                    table,
                    "",
                    f"  {kind}",
                    _fmt(values.get("accuracy")),
                    _fmt(values.get("majority_baseline")),
                )
            continue
        for name, value in metrics.items():
            if isinstance(value, (int, float)):
                add_literal_row(table, task, name, _fmt(value), "")
    if "wall_seconds" in summary:
        add_literal_row(table, "", "wall seconds", f"{summary['wall_seconds']:.0f}", "")
    Console().print(table)


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
