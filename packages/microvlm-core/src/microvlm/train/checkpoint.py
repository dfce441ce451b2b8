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

import contextlib
import errno
import json
import logging
import os
import pickle
import random
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import torch

from microvlm.errors import MicroVLMError

logger = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
STATE = "trainer_state.pt"
META = "trainer.json"
FINAL = "checkpoint_final"
_STEP_DIR = re.compile(r"^checkpoint_step(\d+)$")
_STATE_KEYS = ("optimizer", "scheduler", "rng")  # what a step checkpoint's trainer_state.pt holds
_META_COUNTS = ("step", "epoch", "micro_step")  # non-negative integers in a step's trainer.json
_LOW_DISK = 64 * 2**20  # bytes: a write that fails with less free than this is taken as a full disk


class CheckpointError(MicroVLMError):
    """A checkpoint file that is damaged, incomplete, or not a checkpoint at all."""


class DiskFullError(MicroVLMError, OSError):
    """A checkpoint or export could not be written because its disk is full."""


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
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        full = isinstance(exc, Exception) and not isinstance(exc, DiskFullError)
        if full and _disk_full(exc, target.parent):
            kept = "the previous version of it is intact" if target.exists() else "nothing was written"
            raise DiskFullError(
                f"{target}: not written, the disk is full ({_free(target.parent)} free in {target.parent}); "
                f"{kept}, and so are the checkpoints already there. Free some space and rerun the same "
                "command: training resumes from the newest checkpoint."
            ) from None
        raise


def _free(path: Path) -> str:
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return "unknown"
    return f"{free / 2**20:.1f} MiB"


def _disk_full(exc: BaseException, where: Path) -> bool:
    """Whether ``exc`` from writing under ``where`` means the disk is full.

    ``OSError`` says so with ``ENOSPC`` / ``EDQUOT``; torch's zip writer says only ``enforce
    fail at inline_container.cc`` or ``file write failed`` and safetensors an I/O error, so
    for those the free space decides."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if "No space left" in str(exc):
        return True
    if not isinstance(exc, (OSError, RuntimeError)) and type(exc).__name__ != "SafetensorError":
        return False
    try:
        return shutil.disk_usage(where).free < _LOW_DISK
    except OSError:
        return False


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
        (int(m.group(1)), p) for p in output_dir.iterdir() if p.is_dir() and (m := _STEP_DIR.match(p.name))
    )


def step_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """Complete step checkpoints in ``output_dir``, oldest first."""
    return [(n, p) for n, p in _step_dirs(output_dir) if (p / META).is_file() and (p / WEIGHTS).is_file()]


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
    """The tensors of a checkpoint's ``model.safetensors``; :class:`CheckpointError` if damaged."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    file = resolve_checkpoint(path) / WEIGHTS
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{file}: not a readable safetensors file ({_first_line(exc)})") from None


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
        raise CheckpointError(f"{file}: damaged or truncated ({_first_line(exc)})") from None
    missing = [k for k in _STATE_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(f"{file}: incomplete, it lacks {', '.join(missing)}")
    return state


def load_meta(path: Path) -> dict[str, Any]:
    """``trainer.json`` as a dict; :class:`CheckpointError` when it is not a JSON object."""
    file = Path(path) / META
    try:
        meta = json.loads(file.read_text("utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise CheckpointError(f"{file}: not valid JSON ({_first_line(exc)})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{file}: expected a JSON object, found {type(meta).__name__}")
    return meta


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


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
    m = _STEP_DIR.match(path.name)
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
