"""Download progress and per-dataset success rates to Weights & Biases.

On when ``microvlm datasets download --wandb`` is given or ``WANDB_PROJECT`` is set
(:func:`wandb_wanted`); the project is ``WANDB_PROJECT``, else the seed's
``MicroVLM-E-datasets-logs``. wandb's own variables apply as usual: ``WANDB_MODE=offline``
writes the run under ``{root}/.logs/wandb/`` with no network (``wandb sync`` uploads it later),
``WANDB_MODE=disabled`` makes every call a no-op, ``WANDB_ENTITY`` picks the team. wandb is
microvlm-core's ``[wandb]`` extra (the training logger's, :mod:`microvlm.loggers.wandb_sink`,
whose install hint and credential scrubbing are reused here); without it, asking for W&B is a
:class:`~microvlm.errors.MicroVLMError` that says how to install it. Importing this module does
not import wandb.

What is logged (one W&B run per ``download`` command):

- ``progress/{dataset}/{file}``: the fraction of one file received (at most every
  ``min_interval_s`` per file, and always at its end); ``progress/bytes``: bytes received in all.
- ``{dataset}/success_rate``, ``{dataset}/successes``, ``{dataset}/rows``,
  ``{dataset}/failed_to_download``, ``{dataset}/failed_to_resize``: img2dataset's totals while
  it runs and at the end (:class:`.web.WebResult`).
- per dataset at its end: ``{dataset}/files``, ``{dataset}/bytes`` and, in the run summary,
  ``{dataset}/status``; at :meth:`DownloadLog.close`, a ``datasets`` table with one row per dataset.

Calls come from the download threads; a lock keeps them one at a time.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from microvlm.errors import MicroVLMError
from microvlm.loggers.wandb_sink import INSTALL_HINT, scrub

if TYPE_CHECKING:
    from microvlm_datasets.download.web import WebResult

DEFAULT_PROJECT = "MicroVLM-E-datasets-logs"  # the seed's project for dataset downloads
LOG_DIR = ".logs"  # under the data root: wandb writes {root}/.logs/wandb/
TABLE_COLUMNS = ["dataset", "status", "files", "bytes", "success_rate", "error"]


def wandb_wanted(flag: bool, environ: Mapping[str, str] | None = None) -> bool:
    """Whether to log: ``--wandb`` was given, or ``WANDB_PROJECT`` is set."""
    env = os.environ if environ is None else environ
    return flag or bool(env.get("WANDB_PROJECT"))


class ProgressLog:
    """What the download engine and :func:`.web.fetch_web` report to. This base sends nothing
    anywhere (W&B off); :class:`DownloadLog` sends the same points to a W&B run.

    :param min_interval_s: seconds between two progress points of one file.
    :param clock: seconds, for that throttle (tests pass a fake).
    """

    def __init__(self, *, min_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.min_interval_s = min_interval_s
        self.clock = clock
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], float] = {}  # (dataset, file) -> clock of its last point
        self._bytes: dict[tuple[str, str], int] = {}  # (dataset, file) -> bytes received
        self.rows: list[list[Any]] = []  # the datasets table, one row per finished dataset

    # what a sink does with the points; nothing here
    def _emit(self, metrics: dict[str, Any]) -> None:
        """Send one point."""

    def _summary(self, key: str, value: Any) -> None:
        """Set one value of the run's summary."""

    def file_progress(self, dataset: str, path: str, done: int, total: int | None) -> None:
        """``done`` of ``total`` bytes of one file (``total`` None when the server gives no size)."""
        key = (dataset, path)
        now = self.clock()
        with self._lock:
            self._bytes[key] = done
            finished = total is not None and done >= total
            if not finished and now - self._last.get(key, float("-inf")) < self.min_interval_s:
                return
            self._last[key] = now
            metrics: dict[str, Any] = {"progress/bytes": sum(self._bytes.values())}
            if total:
                metrics[f"progress/{dataset}/{path}"] = min(done / total, 1.0)
            self._emit(metrics)

    def web_stats(self, dataset: str, result: WebResult) -> None:
        """img2dataset's totals so far for ``dataset``."""
        metrics = {
            f"{dataset}/success_rate": result.success_rate,
            f"{dataset}/successes": result.successes,
            f"{dataset}/rows": result.rows,
            f"{dataset}/failed_to_download": result.failed_to_download,
            f"{dataset}/failed_to_resize": result.failed_to_resize,
        }
        with self._lock:
            self._emit(metrics)

    def dataset_done(
        self,
        dataset: str,
        *,
        status: str,
        files: int = 0,
        size: int = 0,
        success_rate: float | None = None,
        error: str = "",
    ) -> None:
        """One dataset finished (``status``: the engine's word for it, e.g. "complete", "failed")."""
        metrics: dict[str, Any] = {f"{dataset}/files": files, f"{dataset}/bytes": size}
        if success_rate is not None:
            metrics[f"{dataset}/success_rate"] = success_rate
        with self._lock:
            self._emit(metrics)
            self._summary(f"{dataset}/status", status)
            self.rows.append([dataset, status, files, size, success_rate, error])

    def close(self) -> None:
        """Finish: nothing more is logged after this."""


def _import_wandb() -> Any:
    try:
        import wandb
    except ImportError:
        raise MicroVLMError(
            f"W&B logging of downloads needs the wandb package, which is not installed: {INSTALL_HINT} "
            "(or drop --wandb / unset WANDB_PROJECT)"
        ) from None
    return wandb


class DownloadLog(ProgressLog):
    """One W&B run for one ``download`` command (see the module doc).

    :param root: the data root; the run's files go to ``{root}/.logs/wandb/``.
    :param config: the command's settings (datasets, jobs, ...), recorded as the run config
        without the keys that name credentials.
    :param project: W&B project; ``""`` = ``WANDB_PROJECT``, else :data:`DEFAULT_PROJECT`.
    """

    def __init__(
        self, root: str | Path, *, config: Mapping[str, Any] | None = None, project: str = "", **throttle: Any
    ) -> None:
        super().__init__(**throttle)
        self.wandb = _import_wandb()
        log_dir = Path(root) / LOG_DIR
        log_dir.mkdir(parents=True, exist_ok=True)
        self.project = project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT
        self.run = self.wandb.init(
            project=self.project,
            dir=str(log_dir),
            config=scrub(dict(config or {})),
            job_type="datasets-download",
        )

    def _emit(self, metrics: dict[str, Any]) -> None:
        self.run.log(metrics)

    def _summary(self, key: str, value: Any) -> None:
        self.run.summary[key] = value

    def close(self) -> None:
        """Log the datasets table and finish the run."""
        with self._lock:
            if self.rows:
                self._emit({"datasets": self.wandb.Table(columns=TABLE_COLUMNS, data=self.rows)})
            self.run.finish()


def open_log(enabled: bool, root: str | Path, *, config: Mapping[str, Any] | None = None) -> ProgressLog:
    """A :class:`DownloadLog` when :func:`wandb_wanted` says so, else a :class:`ProgressLog` (off)."""
    return DownloadLog(root, config=config) if wandb_wanted(enabled) else ProgressLog()


__all__ = ["DEFAULT_PROJECT", "DownloadLog", "ProgressLog", "open_log", "wandb_wanted"]
