"""Checkpoints: trainable weights in safetensors, trainer state loadable without unpickling.

A checkpoint is a directory::

    checkpoint_step000120/
      model.safetensors    trainable weights (bridge, projection, LoRA, ...), by parameter name
      trainer_state.pt     optimizer, scheduler and RNG states: tensors, numbers, strings,
                           lists and dicts only, read with torch.load(weights_only=True)
      trainer.json         step, epoch, position in the epoch's order, run name, plugin versions

Writes are atomic: everything goes to a temporary directory next to the target, each file
is fsynced, then the directory is renamed into place. A crash mid-write leaves the previous
checkpoint intact (and a ``.tmp-*`` folder that the next save removes).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from microvlm.errors import MicroVLMError

logger = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
STATE = "trainer_state.pt"
META = "trainer.json"
FINAL = "checkpoint_final"
_STEP_DIR = re.compile(r"^checkpoint_step(\d+)$")


def step_dir(output_dir: Path, step: int) -> Path:
    return output_dir / f"checkpoint_step{step:06d}"


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


def _fsync_file(path: Path) -> None:
    with path.open("rb+") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    if os.name == "nt":  # pragma: no cover - directories cannot be fsynced on Windows
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a temporary folder next to ``target``; when the block succeeds, fsync every file
    in it, then rename it to ``target`` (replacing a previous one). On failure the temporary
    folder is removed and ``target`` is untouched. Leftovers of crashed writers are removed
    first."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".tmp-{target.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = target.parent / f".tmp-{target.name}-{os.getpid()}"
    tmp.mkdir()
    try:
        yield tmp
        for path in sorted(tmp.rglob("*"), key=lambda p: len(p.parts), reverse=True):  # deepest first
            (_fsync_file if path.is_file() else _fsync_dir)(path)
        _fsync_dir(tmp)
        if target.exists():  # replace: move the old one aside first, then drop it
            old = target.parent / f".old-{target.name}-{os.getpid()}"
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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


def step_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """Complete step checkpoints in ``output_dir``, oldest first."""
    found = []
    if output_dir.is_dir():
        for p in output_dir.iterdir():
            m = _STEP_DIR.match(p.name)
            if m and (p / META).is_file() and (p / WEIGHTS).is_file():
                found.append((int(m.group(1)), p))
    return sorted(found)


def prune(output_dir: Path, keep_last: int) -> None:
    for _, path in step_checkpoints(output_dir)[:-keep_last]:
        shutil.rmtree(path, ignore_errors=True)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory from what a user typed (the seed's ``…/checkpoint_final.pth`` too)."""
    p = Path(path)
    if p.is_dir() and (p / WEIGHTS).is_file():
        return p
    if p.suffix == ".pth" and p.with_suffix("").is_dir():
        return resolve_checkpoint(p.with_suffix(""))
    if p.is_file() and p.name == WEIGHTS:
        return p.parent
    if p.is_file() and p.suffix == ".pth":
        raise MicroVLMError(
            f"{p}: .pth checkpoints are pickles and are not loaded (unsafe); "
            "use a checkpoint directory with model.safetensors"
        )
    raise MicroVLMError(f"{p}: no checkpoint here (expected a directory with {WEIGHTS})")


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(resolve_checkpoint(path) / WEIGHTS))


def load_state(path: Path) -> dict[str, Any]:
    return torch.load(path / STATE, map_location="cpu", weights_only=True)


def load_meta(path: Path) -> dict[str, Any]:
    return json.loads((path / META).read_text())
