"""Core's metric sinks: ``console`` (through :mod:`logging`) and ``jsonl`` (one JSON per line).

A logger is built as ``factory(config, run_dir=Path, run_config=dict)`` and has
``log(metrics, step)`` and ``close()``. Metrics are flat ``name -> number`` dicts.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import attrs

logger = logging.getLogger("microvlm.metrics")


@attrs.frozen
class ConsoleLoggerConfig:
    """``[[loggers]] name = "console"``."""

    level: str = "INFO"  # logging level of the metric lines
    precision: int = attrs.field(default=4)  # significant digits printed per value


@attrs.frozen
class JsonlLoggerConfig:
    """``[[loggers]] name = "jsonl"``."""

    filename: str = "metrics.jsonl"  # inside the run's output_dir


class ConsoleLogger:
    """Writes ``step 120 | loss 2.31 | lr 1e-4`` lines to the ``microvlm.metrics`` logger."""

    def __init__(self, config: ConsoleLoggerConfig, **_: Any) -> None:
        self.config = config
        self.level = logging.getLevelName(config.level.upper())
        if not isinstance(self.level, int):
            raise ValueError(f"console logger: unknown level {config.level!r}")

    def log(self, metrics: dict[str, float], step: int) -> None:
        digits = self.config.precision
        parts = [f"{k} {v:.{digits}g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()]
        logger.log(self.level, "step %d | %s", step, " | ".join(parts))

    def close(self) -> None:
        pass


class JsonlLogger:
    """Appends ``{"step": .., "time": .., **metrics}`` per call; flushed every line.

    Appending (not truncating) keeps the history of a resumed run in one file: the runner calls
    :meth:`resume` with the step it resumes from and the :attr:`rows` the file had when that
    checkpoint was written, so rows logged after it (before a kill) are not there twice.
    """

    def __init__(self, config: JsonlLoggerConfig, *, run_dir: str | Path, **_: Any) -> None:
        self.path = Path(run_dir) / config.filename
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows = len(self._lines())  # lines in the file, for checkpoints (see resume)
        self._file = self.path.open("a", encoding="utf-8")

    def _lines(self) -> list[str]:
        if not self.path.is_file():
            return []
        return self.path.read_text(encoding="utf-8", errors="replace").splitlines()

    def log(self, metrics: dict[str, float], step: int) -> None:
        record = {"step": step, "time": round(time.time(), 3)}
        record.update({k: _jsonable(v) for k, v in metrics.items()})
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        self.rows += 1

    def resume(self, step: int, rows: int | None = None) -> None:
        """Keep what was logged up to a checkpoint: the first ``rows`` lines (all when None) and
        of those only whole rows of steps up to ``step``; the file is replaced atomically."""
        kept = []
        for line in self._lines()[:rows]:
            try:
                record = json.loads(line)
            except ValueError:  # a line cut by a kill
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
                kept.append(line)
        self._file.close()
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        os.replace(tmp, self.path)
        self.rows = len(kept)
        self._file = self.path.open("a", encoding="utf-8")

    def history(self, key: str = "loss") -> list[tuple[int, float]]:
        """``(step, value)`` of every row with ``key``, from the whole file (resumed runs included)."""
        found = []
        for line in self._lines():
            try:
                record = json.loads(line)
                found.append((int(record["step"]), float(record[key])))
            except (ValueError, KeyError, TypeError):  # rows without it, cut lines
                continue
        return found

    def close(self) -> None:
        self._file.close()


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf
    if hasattr(value, "item"):  # numpy / torch scalars
        return _jsonable(value.item())
    return value
