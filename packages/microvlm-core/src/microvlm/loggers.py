"""Core's metric sinks: ``console`` (through :mod:`logging`) and ``jsonl`` (one JSON per line).

A logger is built as ``factory(config, run_dir=Path, run_config=dict)`` and has
``log(metrics, step)`` and ``close()``. Metrics are flat ``name -> number`` dicts.
"""

from __future__ import annotations

import json
import logging
import math
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

    Appending (not truncating) keeps the history of a resumed run in one file.
    """

    def __init__(self, config: JsonlLoggerConfig, *, run_dir: str | Path, **_: Any) -> None:
        self.path = Path(run_dir) / config.filename
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def log(self, metrics: dict[str, float], step: int) -> None:
        record = {"step": step, "time": round(time.time(), 3)}
        record.update({k: _jsonable(v) for k, v in metrics.items()})
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf
    if hasattr(value, "item"):  # numpy / torch scalars
        return _jsonable(value.item())
    return value
