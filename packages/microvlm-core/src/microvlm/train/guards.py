"""Non-finite numbers in training: stop with the step, the numbers and the likely cause.

Before each optimizer step :meth:`NonFiniteGuard.check` looks at the learning rate, the step's
loss and the gradient norm. A non-finite learning rate stops the run at once (every step would
be the same). A NaN/inf loss or gradient norm stops it too, before the optimizer touches the
weights (the newest checkpoint and the weights in memory stay as they were), unless
``run.max_nonfinite_steps`` allows skipping it: then the optimizer step is skipped (the step
still counts, for the schedule and the data position), a warning is logged, the count goes to
the metrics (``nonfinite_steps``) and into step checkpoints, so a resumed run counts on.

In a distributed run the decision is the same on every process: the gradient norm is that of
the all-reduced gradients, and a non-finite loss on any rank is summed into one flag.
"""

from __future__ import annotations

import logging
import math

import torch

from microvlm.errors import MicroVLMError
from microvlm.recipes.config import RunConfig
from microvlm.train.dist import DistInfo

logger = logging.getLogger("microvlm.train.loop")


class NonFiniteGuard:
    """Judges each optimizer step's numbers; counts the steps it let the runner skip."""

    def __init__(self, run: RunConfig, dist: DistInfo, skipped: int = 0) -> None:
        self.run = run
        self.dist = dist
        self.skipped = skipped  # non-finite steps skipped so far in the run (resumed ones included)

    def check(self, step: int, loss: float, grad_norm: float, lrs: list[float]) -> bool:
        """Whether optimizer step ``step`` (1-based) must be skipped; raises when the run must stop.

        :param loss: this process's mean loss of the step's micro-batches.
        :param lrs: the learning rate of each parameter group for this step.
        """
        if not all(math.isfinite(lr) for lr in lrs):
            raise MicroVLMError(
                f"step {step}: the learning rate is {lrs[0]:g} (run.lr = {self.run.lr:g}, warm-up "
                f"{self.run.warmup_steps} steps, min_lr_ratio {self.run.min_lr_ratio:g}): it must be a "
                "finite number; set run.lr to a positive value such as 1e-4"
            )
        bad = not (math.isfinite(loss) and math.isfinite(grad_norm))
        if self.dist.world > 1:
            bad = self.dist.any(bad)  # a NaN loss on one rank: every rank skips or stops
        if not bad:
            return False
        self.skipped += 1
        allowed = self.run.max_nonfinite_steps
        if self.skipped > allowed:
            raise MicroVLMError(self._message(step, loss, grad_norm, lrs[0], allowed))
        logger.warning(
            "step %d: the loss is %g and the gradient norm %g: this optimizer step is skipped "
            "(%d of run.max_nonfinite_steps = %d)",
            step,
            loss,
            grad_norm,
            self.skipped,
            allowed,
        )
        return True

    def _message(self, step: int, loss: float, grad_norm: float, lr: float, allowed: int) -> str:
        run = self.run
        causes = [
            f"a learning rate too high for this model (run.lr = {run.lr:g}, {lr:g} at this step): "
            "try a 3-10x lower run.lr or a longer run.warmup_steps"
        ]
        if run.precision == "fp16":
            causes.append('fp16 overflow: use precision = "bf16" or "fp32"')
        if run.max_grad_norm <= 0:
            causes.append("unclipped gradients: set run.max_grad_norm (e.g. 1.0)")
        causes.append("inputs the model cannot handle (check the data)")
        if allowed:
            counted = (
                f"{self.skipped} steps had non-finite numbers, more than run.max_nonfinite_steps = {allowed}"
            )
        else:
            counted = (
                "run.max_nonfinite_steps = 0; set it to let a run skip a few such steps (they are counted "
                "and logged)"
            )
        return (
            f"step {step}: the loss is {loss:g} and the gradient norm {grad_norm:g}: training diverged. "
            f"Likely causes: {'; '.join(causes)}. The weights were not updated with this step and the "
            f"newest checkpoint is intact. {counted}."
        )


def check_weights(model: torch.nn.Module, step: int, run: RunConfig) -> None:
    """Raise when a trainable weight is NaN/inf after ``step`` (before a final checkpoint is written)."""
    bad = [n for n, p in model.named_parameters() if p.requires_grad and not bool(torch.isfinite(p).all())]
    if bad:
        raise MicroVLMError(
            f"after step {step} {len(bad)} trainable tensors hold NaN/inf (e.g. {bad[0]}): the optimizer "
            f"diverged; lower run.lr (now {run.lr:g}). No final checkpoint was written."
        )


__all__ = ["NonFiniteGuard", "check_weights"]
