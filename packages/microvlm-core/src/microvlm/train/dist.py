"""Process-group set-up for DDP: ``torchrun`` (or ``microvlm run --nproc N``) sets the env."""

from __future__ import annotations

import os

import attrs
import torch


@attrs.frozen
class DistInfo:
    """Where this process stands in a distributed run (rank 0 of 1 when alone)."""

    rank: int = 0  # global rank
    world: int = 1  # number of processes
    local_rank: int = 0  # rank on this machine (GPU index)

    @classmethod
    def from_env(cls) -> DistInfo:
        """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK; join the process group if world > 1.

        NCCL on GPU, gloo on CPU.
        """
        world = int(os.environ.get("WORLD_SIZE", "1"))
        info = cls(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
        if world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(info.local_rank)
            torch.distributed.init_process_group(backend=backend)
        return info

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.barrier()

    def mean(self, value: float) -> float:
        """Average a number over all processes (for logging)."""
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return float(t) / self.world
