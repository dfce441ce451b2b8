"""Process-group set-up for DDP: ``torchrun`` (or ``microvlm run --nproc N``) sets the env.

Every collective here is called by all processes at the same point of the loop (the
runner's control flow depends only on numbers that are the same on every rank), so no rank
waits on a collective the others never reach.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import attrs
import torch


@attrs.frozen
class DistInfo:
    """Where this process stands in a distributed run (rank 0 of 1 when alone)."""

    rank: int = 0  # global rank
    world: int = 1  # number of processes
    local_rank: int = 0  # rank on this machine (GPU index)
    owns_group: bool = False  # from_env created the process group (close() destroys it)

    @classmethod
    def from_env(cls) -> DistInfo:
        """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK; join the process group if world > 1.

        NCCL on GPU, gloo on CPU.
        """
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        if world == 1 or torch.distributed.is_initialized():
            return cls(rank, world, local_rank)
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        torch.distributed.init_process_group(backend=backend)
        return cls(rank, world, local_rank, owns_group=True)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        """True when collectives go to other processes."""
        return self.world > 1 and torch.distributed.is_initialized()

    def _device(self) -> torch.device:
        # NCCL only moves CUDA tensors; gloo takes CPU ones.
        if torch.distributed.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum of a few numbers over all processes (float64)."""
        if not self.active:
            return [float(v) for v in values]
        t = torch.tensor(list(values), dtype=torch.float64, device=self._device())
        torch.distributed.all_reduce(t)
        return [float(v) for v in t.cpu()]

    def any(self, flag: bool) -> bool:
        """True on every process if ``flag`` is true on any of them."""
        return self.sum([1.0 if flag else 0.0])[0] > 0

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every process's ``tensor`` (same shape and dtype everywhere), stacked: ``[world, ...]``."""
        if not self.active:
            return tensor[None].clone()
        local = tensor.to(self._device())
        parts = [torch.empty_like(local) for _ in range(self.world)]
        torch.distributed.all_gather(parts, local)
        return torch.stack(parts).cpu()

    def close(self) -> None:
        """Leave the process group if :meth:`from_env` joined it (the end of a run)."""
        if self.owns_group and self.active:
            torch.distributed.destroy_process_group()
