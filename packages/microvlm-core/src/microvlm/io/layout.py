"""The checkpoint folder's file layout, atomic folder writes, and reading its untrusted files.

The bottom of core's storage: :mod:`microvlm.models` (``save_pretrained``, ``from_pretrained``)
and :mod:`microvlm.train` (step checkpoints, resume) both build on it. A checkpoint is a
directory::

    checkpoint_step000120/
      model.safetensors    weights by parameter name
      trainer_state.pt     optimizer, scheduler and RNG states (step checkpoints only)
      trainer.json         step, epoch, run name, plugin versions (or a save_pretrained record)

Writes are atomic (:func:`atomic_directory`): everything goes to a temporary directory next to
the target, each file is fsynced, then the directory is renamed into place; a full disk is said
as such (:class:`DiskFullError`). Reading treats every file as untrusted: a damaged file raises
:class:`CheckpointError` naming it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from microvlm.errors import MicroVLMError

if TYPE_CHECKING:
    import torch

WEIGHTS = "model.safetensors"
STATE = "trainer_state.pt"
META = "trainer.json"
FINAL = "checkpoint_final"
MANIFEST = "manifest.json"  # an export folder (microvlm export) is recognised by it
STEP_DIR = re.compile(r"^checkpoint_step(\d+)$")
_LOW_DISK = 64 * 2**20  # bytes: a write that fails with less free than this is taken as a full disk


class CheckpointError(MicroVLMError):
    """A checkpoint file that is damaged, incomplete, or not a checkpoint at all."""


class DiskFullError(MicroVLMError, OSError):
    """A checkpoint or export could not be written because its disk is full."""


def step_dir(output_dir: Path, step: int) -> Path:
    return output_dir / f"checkpoint_step{step:06d}"


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


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory from what a user typed (the seed's ``…/checkpoint_final.pth`` too)."""
    p = Path(path)
    if p.is_dir() and ((p / WEIGHTS).is_file() or (p / MANIFEST).is_file()):
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
    if p.suffix == ".pth":  # the seed's checkpoint_final.pth: checkpoints are folders now
        raise MicroVLMError(
            f"{p}: not found; checkpoints are folders now ({p.with_suffix('')}, with {WEIGHTS}), "
            "and .pth pickles are never loaded"
        )
    raise MicroVLMError(
        f"{p}: no checkpoint here (expected a directory with {WEIGHTS}, or an export with {MANIFEST})"
    )


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint's ``model.safetensors``; :class:`CheckpointError` if damaged."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    file = resolve_checkpoint(path) / WEIGHTS
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{file}: not a readable safetensors file ({first_line(exc)})") from None


def load_meta(path: Path) -> dict[str, Any]:
    """``trainer.json`` as a dict; :class:`CheckpointError` when it is not a JSON object."""
    file = Path(path) / META
    try:
        meta = json.loads(file.read_text("utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise CheckpointError(f"{file}: not valid JSON ({first_line(exc)})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{file}: expected a JSON object, found {type(meta).__name__}")
    return meta


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file (``hashlib`` algorithm name), read 1 MiB at a time."""
    import hashlib

    digest = hashlib.new(algorithm)
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
