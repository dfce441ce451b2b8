"""Run settings on resume: the recipe in hand decides, and each change since the checkpoint is said.

A step checkpoint records the ``[run]`` settings it was written with (``trainer.json``,
``settings``). Resuming with a changed recipe applies the new values from the resumed step on
and logs one warning per changed setting, saying what it does:

- ``lr``, ``warmup_steps``, ``min_lr_ratio``, ``epochs``, ``max_steps``: the learning rate
  follows the new schedule (peak, warm-up, floor, length) at the resumed step; the optimizer's
  moments are kept. ``weight_decay`` and ``max_grad_norm`` apply from there too.
- ``batch_size``, ``grad_accum_steps``: the run continues at the same sample of the epoch
  (:func:`~microvlm.train.state.micro_step_at`); each step's global batch differs from before.
- ``seed``: the data order of the rest of this epoch and of later epochs follows the new seed
  (this epoch may repeat or miss samples); random streams continue from the checkpoint.
- ``max_bad_fraction``, ``max_nonfinite_steps``: the new limits judge the counts so far too.
- ``precision``, ``device``, ``max_text_tokens``: apply; the numbers differ from an
  uninterrupted run's. ``gradient_checkpointing``, ``num_workers``, ``threads``, ``log_every``,
  ``save_every``, ``keep_last``, ``name``: apply, the numbers stay the same.
- ``init_from`` is ignored (the weights come from the checkpoint); a changed ``train`` (what
  the optimizer updates) cannot resume: that is an error.

Checkpoints written before settings were recorded resume with the recipe's values, unsaid.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import attrs

from microvlm.errors import MicroVLMError
from microvlm.recipes.config import RunConfig

logger = logging.getLogger("microvlm.train.state")

_SCHEDULE = "the learning rate follows the new schedule from this step on (optimizer moments are kept)"
_SAME_SAMPLE = (
    "the run continues at the same sample of the epoch; each step's global batch differs from before"
)
_DIFFERS = "applies from this step on; the numbers differ from an uninterrupted run's"
_SAME = "applies from this step on; the numbers stay the same"
RULES: dict[str, str] = {
    "lr": _SCHEDULE,
    "warmup_steps": _SCHEDULE,
    "min_lr_ratio": _SCHEDULE,
    "epochs": "the run's length changes; " + _SCHEDULE,
    "max_steps": "the run's length changes; " + _SCHEDULE,
    "weight_decay": "the new weight decay applies from this step on",
    "max_grad_norm": "gradients are clipped at the new norm from this step on",
    "batch_size": _SAME_SAMPLE,
    "grad_accum_steps": _SAME_SAMPLE,
    "seed": (
        "the data order of the rest of this epoch and of later epochs follows the new seed (this epoch "
        "may repeat or miss samples); random streams continue from the checkpoint"
    ),
    "max_bad_fraction": "the new limit judges this epoch's counts, those before the checkpoint included",
    "max_nonfinite_steps": "the new limit applies to the steps skipped so far too",
    "precision": _DIFFERS,
    "device": _DIFFERS,
    "max_text_tokens": "texts are cut at the new length from this step on; " + _DIFFERS,
    "init_from": "ignored: a resumed run's weights come from the checkpoint",
}
_NOT_COMPARED = ("output_dir", "resume")  # the checkpoint was found there; resuming is on


def settings_record(run: RunConfig) -> dict[str, Any]:
    """``run`` as JSON values, for a checkpoint's ``trainer.json``."""
    return attrs.asdict(run)  # tuples become lists


def _same(saved: Any, now: Any) -> bool:
    if isinstance(saved, list) or isinstance(now, (list, tuple)):
        return list(saved or []) == list(now or [])
    return bool(saved == now)


def report_changes(saved: Mapping[str, Any] | None, run: RunConfig, where: Any) -> None:
    """Warn about each ``[run]`` setting that differs from the checkpoint's ``saved`` settings;
    raise when ``train`` changed (the optimizer state is for other parameters)."""
    if not isinstance(saved, Mapping):
        return
    now = settings_record(run)
    changed = [k for k in now if k in saved and k not in _NOT_COMPARED and not _same(saved[k], now[k])]
    if "train" in changed:
        raise MicroVLMError(
            f"{where}: run.train was {list(saved['train'])} when this checkpoint was written, the recipe "
            f"says {list(run.train)}: the optimizer state is for other parameters, so the run cannot "
            f'resume. Restore run.train, or start a new run.output_dir with init_from = "{where}".'
        )
    for key in changed:
        logger.warning(
            "%s: run.%s changed from %r to %r since the checkpoint: %s",
            where,
            key,
            saved[key],
            now[key],
            RULES.get(key, _SAME),
        )


def fresh_hyperparameters(optimizer: Any, scheduler: Any) -> dict[str, Any]:
    """The recipe's optimizer settings and peak rates, read before a checkpoint overwrites them."""
    keys = ("lr", "initial_lr", "weight_decay")
    groups = [{k: g[k] for k in keys if k in g} for g in optimizer.param_groups]
    return {"groups": groups, "base_lrs": list(scheduler.base_lrs)}


def apply_hyperparameters(optimizer: Any, scheduler: Any, fresh: Mapping[str, Any]) -> None:
    """Put the recipe's settings back after loading a checkpoint's optimizer and scheduler states
    (which bring their own), and set each group's rate to the schedule's value at the resumed
    step: ``base_lr x factor(step)``, the very number the scheduler computes when nothing changed."""
    for group, values in zip(optimizer.param_groups, fresh["groups"], strict=True):
        group.update(values)
    scheduler.base_lrs = list(fresh["base_lrs"])
    step = scheduler.last_epoch
    for group, factor, base in zip(
        optimizer.param_groups, scheduler.lr_lambdas, scheduler.base_lrs, strict=True
    ):
        group["lr"] = base * factor(step)
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


__all__ = ["RULES", "apply_hyperparameters", "fresh_hyperparameters", "report_changes", "settings_record"]
