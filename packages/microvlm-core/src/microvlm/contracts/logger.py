"""Contract of metric sinks (console, ``metrics.jsonl``, experiment trackers)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable


@runtime_checkable
class Logger(Protocol):
    """Built as ``factory(config, run_dir=..., run_config=...)`` on the main process only.

    Optional members, used when present: ``resume(step)`` (continue a run after a restart),
    ``path`` (the file or URL it writes, shown at the end of a run) and ``rows`` (how many
    records it has written, kept in checkpoints so a resumed run does not duplicate them).
    """

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        """Record ``metrics`` (name -> number) at optimizer step ``step``."""
        ...

    def close(self) -> None:
        """Flush and release; called once, also after a failure."""
        ...


__all__ = ["Logger"]
