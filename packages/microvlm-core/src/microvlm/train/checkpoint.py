"""Checkpoints: trainable weights in safetensors, trainer state loadable without unpickling.

A checkpoint is a directory::

    checkpoint_step000120/
      model.safetensors    trainable weights (bridge, projection, LoRA, ...), by parameter name
      trainer_state.pt     optimizer, scheduler and RNG states: tensors, numbers, strings,
                           lists and dicts only, read with torch.load(weights_only=True)
      trainer.json         step, epoch, position in the epoch's order, run name, plugin versions

Writes are atomic: everything goes to a temporary directory next to the target, each file
is fsynced, then the directory is renamed into place. A crash mid-write leaves the previous
checkpoint intact (and a ``.tmp-*`` folder that the next save removes); a full disk is said
as such (:class:`DiskFullError`), not as torch's ``enforce fail`` message.

Reading treats every file as untrusted: a damaged, truncated or foreign file raises
:class:`CheckpointError` naming the file (never torch's advice to unpickle it), and
:func:`newest_intact` resumes from the newest step checkpoint that reads back whole, saying
which newer ones it passed over and why.
"""

from __future__ import annotations

import json
import logging
import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import attrs
import torch

from microvlm.io.layout import (
    META,
    STATE,
    STEP_DIR,
    WEIGHTS,
    CheckpointError,
    atomic_directory,
    first_line,
    load_meta,
    load_weights,
)

logger = logging.getLogger(__name__)

_STATE_KEYS = ("optimizer", "scheduler", "rng")  # what a step checkpoint's trainer_state.pt holds
_META_COUNTS = ("step", "epoch", "micro_step")  # non-negative integers in a step's trainer.json


def rng_state() -> dict[str, Any]:
    """Every generator training touches, in weights_only-loadable form."""
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np

        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state["numpy"] = [kind, torch.from_numpy(keys.copy()), pos, has_gauss, cached]
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        import numpy as np

        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, keys.numpy(), pos, has_gauss, cached))


def save_checkpoint(
    target: Path,
    weights: dict[str, torch.Tensor],
    state: dict[str, Any] | None,
    meta: dict[str, Any],
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write a checkpoint directory atomically; replaces ``target`` if it exists."""
    from safetensors.torch import save_file

    target = Path(target)
    with atomic_directory(target) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()}, str(tmp / WEIGHTS))
        if state is not None:
            torch.save(state, tmp / STATE)
        (tmp / META).write_text(json.dumps(meta, indent=2) + "\n")
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
    return target


def _step_dirs(output_dir: Path) -> list[tuple[int, Path]]:
    """Every ``checkpoint_stepNNNNNN`` folder in ``output_dir``, complete or not, oldest first."""
    if not output_dir.is_dir():
        return []
    return sorted(
        (int(m.group(1)), p) for p in output_dir.iterdir() if p.is_dir() and (m := STEP_DIR.match(p.name))
    )


def step_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """Complete step checkpoints in ``output_dir``, oldest first."""
    return [(n, p) for n, p in _step_dirs(output_dir) if (p / META).is_file() and (p / WEIGHTS).is_file()]


def prune(output_dir: Path, keep_last: int) -> None:
    for _, path in step_checkpoints(output_dir)[:-keep_last]:
        shutil.rmtree(path, ignore_errors=True)


def load_state(path: Path) -> dict[str, Any]:
    """``trainer_state.pt``, read with ``weights_only=True``; :class:`CheckpointError` if it is
    damaged or holds anything but tensors, numbers, strings, lists and dicts."""
    file = Path(path) / STATE
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's message suggests weights_only=False: never pass that on
        raise CheckpointError(
            f"{file}: not a valid checkpoint file (damaged, or holding objects a microvlm checkpoint "
            "never contains); it is not loaded"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{file}: damaged or truncated ({first_line(exc)})") from None
    missing = [k for k in _STATE_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(f"{file}: incomplete, it lacks {', '.join(missing)}")
    return state


@attrs.frozen
class StepCheckpoint:
    """A step checkpoint read back whole, before anything of it is applied."""

    path: Path  # the checkpoint_stepNNNNNN directory
    weights: dict[str, torch.Tensor]  # model.safetensors
    state: dict[str, Any]  # trainer_state.pt: optimizer, scheduler, rng
    meta: dict[str, Any]  # trainer.json


def load_step_checkpoint(path: Path) -> StepCheckpoint:
    """Read every file of a step checkpoint and check what resuming relies on."""
    meta = load_meta(path)
    bad = [k for k in _META_COUNTS if type(meta.get(k)) is not int or meta[k] < 0]
    if bad:
        raise CheckpointError(f"{path / META}: {', '.join(bad)} must be non-negative integers")
    m = STEP_DIR.match(path.name)
    if m and int(m.group(1)) != meta["step"]:
        named = int(m.group(1))
        raise CheckpointError(f"{path / META}: says step {meta['step']}, the folder name says {named}")
    return StepCheckpoint(path, load_weights(path), load_state(path), meta)


def newest_intact(output_dir: Path) -> StepCheckpoint | None:
    """The newest step checkpoint in ``output_dir`` that reads back whole; None if there is none.

    Damaged ones (a truncated ``trainer_state.pt``, 0-byte weights, an invalid or incomplete
    ``trainer.json``, a missing file) are passed over with a warning saying why; when every
    checkpoint is damaged that is an error listing them, so nothing restarts from scratch
    silently.
    """
    damaged: list[str] = []
    for _, path in reversed(_step_dirs(output_dir)):
        try:
            found = load_step_checkpoint(path)
        except CheckpointError as exc:
            damaged.append(str(exc))
            logger.warning("%s: skipping this damaged checkpoint", exc)
            continue
        if damaged:
            logger.warning(
                "resuming from %s, the newest intact checkpoint (%d newer one(s) damaged, see above)",
                path,
                len(damaged),
            )
        return found
    if damaged:
        listed = "\n  ".join(damaged)
        raise CheckpointError(
            f"{output_dir}: no intact checkpoint to resume from:\n  {listed}\n"
            "Delete the damaged checkpoint folders to start over (or use another run.output_dir)."
        )
    return None
