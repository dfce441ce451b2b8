"""The projection: bridge features ``[B, Q, D_q]`` -> LLM input embeddings ``[B, Q, D_l]``.

Two linear layers with a non-linearity between them, as LLaVA-1.5's ``mlp2x_gelu``
projector (Liu et al. 2023, "Improved Baselines with Visual Instruction Tuning") and
MiniGPT-4 / BLIP-2's ``llm_proj`` (which is a single linear layer).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from microvlm.recipes.config import ProjectionConfig

Activation = Literal["gelu", "silu", "relu"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "silu": nn.SiLU, "relu": nn.ReLU}


class Projection(nn.Module):
    """``Linear(D_q, H) -> activation -> Dropout -> Linear(H, D_l)``; ``H = hidden_dim or D_l``."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int = 0,
        activation: Activation = "gelu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(_ACTIVATIONS)}")
        if in_dim < 1 or out_dim < 1 or hidden_dim < 0:
            raise ValueError(
                f"bad projection sizes: in_dim={in_dim}, out_dim={out_dim}, hidden_dim={hidden_dim}"
            )
        hidden = hidden_dim or out_dim
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.hidden_dim = hidden
        self.fc1 = nn.Linear(in_dim, hidden)
        self.act = _ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, out_dim)
        self.apply(self._init_weights)

    @classmethod
    def from_config(cls, config: ProjectionConfig, in_dim: int, out_dim: int) -> Projection:
        """Build from ``[model.projection]``: ``in_dim`` = bridge width, ``out_dim`` = LLM width."""
        return cls(in_dim, out_dim, config.hidden_size, config.activation, config.dropout)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """Normal(std 0.02) weights truncated at 2 std and zero biases, as the Q-Former."""
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02, a=-0.04, b=0.04)
            nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [B, Q, D_q] -> [B, Q, D_l]."""
        assert x.shape[-1] == self.in_dim, f"input is {x.shape[-1]}-d, this projection expects {self.in_dim}"
        return self.fc2(self.dropout(self.act(self.fc1(x))))  # (B, Q, D_q) -> (B, Q, H) -> (B, Q, D_l)


__all__ = ["Activation", "Projection"]
