"""The results table printed after a run: the rows each task put in ``results.json``.

The rows come from the tasks (:meth:`microvlm.contracts.data.Task.summarize`, stored under
``"table"`` by :mod:`microvlm.eval.final_eval`), so a new task gets its own rows and baseline
without a change here. A ``results.json`` written before rows were stored shows every
number of each task's summary instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from microvlm.eval.final_eval import ENTRIES, TABLE, WALL_SECONDS


def print_results(path: Path) -> None:
    """The results table of a ``results.json``: task, metric, value and the task's baseline."""
    from rich.console import Console
    from rich.table import Table

    from microvlm.cli.literal import add_literal_row, literal

    summary = json.loads(path.read_text())
    rows = list(summary[TABLE]) if isinstance(summary.get(TABLE), list) else list(_numbers(summary))
    names = sorted({r.get("baseline_name") or "baseline" for r in rows if r.get("baseline") is not None})
    table = Table("task", "metric", "value", names[0] if len(names) == 1 else "baseline", title=literal(path))
    shown = ""
    for row in rows:
        task = str(row.get("task", ""))
        metric = str(row.get("metric", ""))
        baseline = row.get("baseline")
        cell = "" if baseline is None else _fmt(baseline)
        if baseline is not None and len(names) > 1:
            cell += f" ({row.get('baseline_name') or 'baseline'})"  # several baselines, one column
        indented = metric != metric.lstrip() and task == shown  # a breakdown under its task's row
        add_literal_row(table, "" if indented else task, metric, _fmt(row.get("value")), cell)
        shown = task
    if WALL_SECONDS in summary:
        add_literal_row(table, "", "wall seconds", f"{summary[WALL_SECONDS]:.0f}", "")
    Console().print(table)


def _numbers(summary: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Rows of a ``results.json`` without stored rows: every number of every task's summary."""
    for task, metrics in summary.items():
        if task in (ENTRIES, TABLE, WALL_SECONDS) or not isinstance(metrics, dict):
            continue
        for name, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                yield {"task": task, "metric": name, "value": value}


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
