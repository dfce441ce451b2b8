"""Progress bar, metric loggers and the loss curve of a run (rank 0 only)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from microvlm.recipes.config import Recipe
from microvlm.train.dist import DistInfo

if TYPE_CHECKING:
    from microvlm.plugins.manager import Plugins

logger = logging.getLogger(__name__)


def env_loggers(recipe: Recipe, plugins: Plugins) -> list[Any]:
    """Loggers the environment turns on: ``wandb`` (with its defaults) when ``WANDB_PROJECT``
    is set and the recipe does not list it already."""
    from microvlm.recipes.config import ComponentSpec

    if not os.environ.get("WANDB_PROJECT") or any(s.name == "wandb" for s in recipe.loggers):
        return []
    return [ComponentSpec("wandb", plugins.get("logger", "wandb").config_cls())]


class Reporter:
    """Collects per-step numbers; every ``log_every`` steps sends averages to the loggers.

    Logged: ``loss`` (mean over the target tokens of the interval's micro-batches, on all
    processes), ``lr``, ``grad_norm``, ``samples_per_s`` and ``target_tokens`` (all processes).
    Collectives happen at every log step, on every rank; loggers and the bar live on rank 0.
    """

    def __init__(
        self, recipe: Recipe, plugins: Plugins, dist: DistInfo, total_steps: int, progress: bool = True
    ) -> None:
        self.recipe = recipe
        self.run = recipe.run
        self.dist = dist
        self.total = total_steps
        self.history: list[tuple[int, float]] = []
        self.loggers: list[Any] = []
        self._progress = None
        self._task = None
        self._reset()
        if not dist.is_main:
            return
        from microvlm.recipes.load import recipe_to_table

        out = Path(self.run.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        run_config = recipe_to_table(recipe)
        for spec in (*recipe.loggers, *env_loggers(recipe, plugins)):
            self.loggers.append(
                plugins.build("logger", spec.name, spec.config, run_dir=out, run_config=run_config)
            )
        if progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn(f"[bold]{self.run.name}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
            )

    def _reset(self) -> None:
        self._loss_sum = 0.0
        self._tokens = 0
        self._samples = 0
        self._t0 = time.perf_counter()

    def __enter__(self) -> Reporter:
        if self._progress is not None:
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
        for lg in self.loggers:
            lg.close()

    def start(self, step: int, rows: dict[str, int] | None = None) -> None:
        """Begin at optimizer step ``step``: metric files drop what was logged after it (``rows``:
        :meth:`rows` saved in the checkpoint resumed from), so a resumed run's file reads as if
        the run had never stopped."""
        for lg in self.loggers:
            if callable(getattr(lg, "resume", None)):  # optional in the logger protocol
                lg.resume(step, (rows or {}).get(self._key(lg)))
        if self._progress is not None:
            self._task = self._progress.add_task("train", total=self.total, completed=step, info="")

    def _key(self, lg: Any) -> str:
        """A logger's name in checkpoints: its file relative to the run folder (which may move)."""
        path = getattr(lg, "path", None)
        if path is None:
            return type(lg).__name__
        try:
            return str(Path(path).relative_to(self.run.output_dir))
        except ValueError:
            return str(path)

    def rows(self) -> dict[str, int]:
        """Rows each metrics file holds now (for a step checkpoint; see :meth:`start`)."""
        return {self._key(lg): lg.rows for lg in self.loggers if isinstance(getattr(lg, "rows", None), int)}

    def loss_curve(self) -> list[tuple[int, float]]:
        """The whole run's ``(step, loss)``: from a metrics file that keeps history across resumes
        (``metrics.jsonl``), else what this process logged."""
        from microvlm.loggers.sinks import JsonlLogger

        for lg in self.loggers:
            if isinstance(lg, JsonlLogger):
                return lg.history("loss")
        return list(self.history)

    def accumulate(self, loss: float, tokens: int, samples: int) -> None:
        self._loss_sum += loss * tokens
        self._tokens += tokens
        self._samples += samples

    def step(self, step: int, lr: float, grad_norm: float) -> None:
        if step % self.run.log_every and step != self.total:
            if self._progress is not None:
                self._progress.update(self._task, completed=step)
            return
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        # Sums over every process, so the loss is the mean over all target tokens of the
        # interval however unevenly they fell on the ranks.
        loss_sum, tokens, samples = self.dist.sum([self._loss_sum, self._tokens, self._samples])
        loss = loss_sum / max(tokens, 1.0)
        metrics = {
            "loss": loss,
            "lr": lr,
            "grad_norm": grad_norm,
            "samples_per_s": samples / elapsed,
            "target_tokens": int(tokens),
        }
        self._reset()
        if not self.dist.is_main:
            return
        self.history.append((step, loss))
        for lg in self.loggers:
            lg.log(metrics, step)
        if self._progress is not None:
            info = f"loss {loss:.4f}  lr {lr:.2e}  {metrics['samples_per_s']:.1f} samples/s"
            self._progress.update(self._task, completed=step, info=info)

    def log_eval(self, metrics: dict[str, float], step: int) -> None:
        if self.dist.is_main and metrics:
            for lg in self.loggers:
                lg.log(metrics, step)

    def finish(self, out: Path) -> Path | None:
        """Write ``loss.png`` (the whole run's loss against step) into the run folder."""
        curve = self.loss_curve()
        if not curve:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps, losses = zip(*curve, strict=True)
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        ax.plot(steps, losses, marker="." if len(steps) < 50 else None)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("training loss (target tokens)")
        ax.set_title(self.run.name)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out / "loss.png"
        fig.savefig(path)
        plt.close(fig)
        return path
