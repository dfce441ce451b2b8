"""The Q-Former bridge: a small set of learned queries that read the image patches.

A stack of transformer layers over ``Q`` learned query embeddings. Each layer runs
self-attention among the queries, cross-attention from the queries to the image patch
features (on every ``cross_attention_freq``-th layer) and an MLP. The output is a fixed
number of vectors ``[B, Q, D_q]`` however many patches the encoder produced, which the
projection then maps into the LLM's embedding space.

References:
- Li et al. 2023, "BLIP-2: Bootstrapping Language-Image Pre-training with Frozen Image
  Encoders and Large Language Models" (https://arxiv.org/abs/2301.12597), section 3.1.
- LAVIS ``lavis/models/blip2_models/Qformer.py`` (the BERT-based reference implementation:
  cross-attention on layers ``i % cross_attention_freq == 0``, keys/values projected
  straight from the encoder width, ``ln_vision`` on the image features).
- Karpathy's nanoGPT ``model.py`` for the layout of this file.

Differences from BLIP-2: no text branch (the LLM does the language side), so the layers
hold only the query path; pre-norm by default (see :class:`QFormerConfig`).

Notation: B batch, N image patches, Q queries, D_v encoder width, D hidden width (D_q),
h heads, hs = D / h head size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from microvlm.models.qformer_config import QFormerConfig


def _trunc_normal(tensor: torch.Tensor, std: float = 0.02) -> None:
    """Normal(0, std) truncated at +-2 std, as the original BERT (torch's default cut is +-2 absolute)."""
    nn.init.trunc_normal_(tensor, std=std, a=-2 * std, b=2 * std)


@dataclass(frozen=True)
class QFormerOutput:
    """What :meth:`QFormer.forward` returns."""

    queries: torch.Tensor  # [B, Q, D_q] query features
    cross_attentions: list[torch.Tensor] | None = None  # per cross-attn layer [B, h, Q, N]; if asked


class Attention(nn.Module):
    """Multi-head attention of ``x`` over ``context`` (self-attention when they are the same).

    Keys and values are projected from the context's own width ``kv_dim``, so cross-attention
    reads the encoder features without a separate input projection (as in LAVIS).
    """

    def __init__(self, dim: int, kv_dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        assert dim % num_heads == 0, f"dim {dim} is not divisible by num_heads {num_heads}"
        self.num_heads = num_heads
        self.head_size = dim // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(dim, dim)
        self.kv_proj = nn.Linear(kv_dim, 2 * dim)
        self.out_proj = nn.Linear(dim, dim)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        context_mask: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` [B, Q, D], ``context`` [B, M, D_kv], ``context_mask`` [B, M] (True = attend).

        Returns the output [B, Q, D] and, if asked, the attention probabilities [B, h, Q, M]
        (before attention dropout).
        """
        B, Q, D = x.shape
        M = context.shape[1]
        h, hs = self.num_heads, self.head_size
        q = self.q_proj(x).view(B, Q, h, hs).transpose(1, 2)  # (B, Q, D) -> (B, h, Q, hs)
        k, v = self.kv_proj(context).split(D, dim=-1)  # (B, M, 2D) -> 2 x (B, M, D)
        k = k.view(B, M, h, hs).transpose(1, 2)  # (B, M, D) -> (B, h, M, hs)
        v = v.view(B, M, h, hs).transpose(1, 2)  # (B, M, D) -> (B, h, M, hs)
        mask = None if context_mask is None else context_mask[:, None, None, :]  # (B, M) -> (B, 1, 1, M)
        dropout_p = self.dropout if self.training else 0.0

        probs = None
        if return_attention:
            # SDPA does not return its weights: compute the same thing explicitly.
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(hs)  # (B,h,Q,hs) @ (B,h,hs,M) -> (B,h,Q,M)
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            probs = scores.softmax(dim=-1)  # (B, h, Q, M), rows sum to 1 over M
            y = F.dropout(probs, dropout_p, self.training) @ v  # (B,h,Q,M) @ (B,h,M,hs) -> (B,h,Q,hs)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)  # (B, h, Q, hs)
        y = y.transpose(1, 2).reshape(B, Q, D)  # (B, h, Q, hs) -> (B, Q, h*hs)
        return self.resid_dropout(self.out_proj(y)), probs


class MLP(nn.Module):
    """Position-wise feed-forward: Linear -> GELU -> Linear -> Dropout."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(F.gelu(self.fc1(x))))  # (B, Q, D) -> (B, Q, 4D) -> (B, Q, D)


class QFormerLayer(nn.Module):
    """Self-attention over the queries, optional cross-attention to the image, MLP.

    Pre-norm: ``x = x + f(ln(x))``; post-norm: ``x = ln(x + f(x))``.
    """

    def __init__(self, config: QFormerConfig, encoder_dim: int, has_cross_attention: bool) -> None:
        super().__init__()
        D, eps, p = config.hidden_size, config.layer_norm_eps, config.dropout
        self.pre_norm = config.norm == "pre"
        self.self_attn = Attention(D, D, config.num_heads, p)
        self.ln_self = nn.LayerNorm(D, eps=eps)
        self.cross_attn = Attention(D, encoder_dim, config.num_heads, p) if has_cross_attention else None
        self.ln_cross = nn.LayerNorm(D, eps=eps) if has_cross_attention else None
        self.mlp = MLP(D, config.mlp_hidden_size, p)
        self.ln_mlp = nn.LayerNorm(D, eps=eps)

    def _in(self, x: torch.Tensor, ln: nn.LayerNorm) -> torch.Tensor:
        return ln(x) if self.pre_norm else x

    def _out(self, x: torch.Tensor, y: torch.Tensor, ln: nn.LayerNorm) -> torch.Tensor:
        return x + y if self.pre_norm else ln(x + y)

    def forward(
        self,
        x: torch.Tensor,
        image: torch.Tensor,
        image_mask: torch.Tensor | None,
        return_attention: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` [B, Q, D], ``image`` [B, N, D_v] -> ([B, Q, D], cross-attention [B, h, Q, N] | None)."""
        h = self._in(x, self.ln_self)
        y, _ = self.self_attn(h, h)
        x = self._out(x, y, self.ln_self)
        probs = None
        if self.cross_attn is not None:
            y, probs = self.cross_attn(self._in(x, self.ln_cross), image, image_mask, return_attention)
            x = self._out(x, y, self.ln_cross)
        x = self._out(x, self.mlp(self._in(x, self.ln_mlp)), self.ln_mlp)
        return x, probs


class QFormer(nn.Module):
    """Image patch features ``[B, N, D_v]`` -> query features ``[B, Q, D_q]``.

    Build it with ``QFormer(config, encoder_dim=D_v)`` (what the ``qformer`` bridge plugin
    does). ``out_dim`` is ``D_q = config.hidden_size``.
    """

    def __init__(self, config: QFormerConfig, encoder_dim: int) -> None:
        super().__init__()
        if encoder_dim < 1:
            raise ValueError(f"encoder_dim must be >= 1, got {encoder_dim}")
        self.config = config
        self.encoder_dim = encoder_dim
        self.out_dim = config.hidden_size
        self.num_queries = config.num_queries
        self.pre_norm = config.norm == "pre"
        D, eps = config.hidden_size, config.layer_norm_eps
        cross = set(config.cross_attention_layers)
        self.query_embeds = nn.Parameter(torch.zeros(1, config.num_queries, D))  # (1, Q, D)
        self.ln_image = nn.LayerNorm(encoder_dim, eps=eps)  # BLIP-2's ln_vision
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(
            QFormerLayer(config, encoder_dim, has_cross_attention=i in cross)
            for i in range(config.num_layers)
        )
        # Post-norm normalises the query embeddings (as BERT's embedding LayerNorm);
        # pre-norm normalises the output of the last layer instead.
        self.ln_queries = nn.LayerNorm(D, eps=eps)
        self.apply(self._init_weights)
        _trunc_normal(self.query_embeds)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """BERT's initialisation: normal(std 0.02) truncated at 2 std, zero biases, unit LayerNorms."""
        if isinstance(module, nn.Linear):
            _trunc_normal(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    @property
    def num_cross_attention_layers(self) -> int:
        return sum(layer.cross_attn is not None for layer in self.layers)

    def forward(
        self,
        image_feats: torch.Tensor,
        image_mask: torch.Tensor | None = None,
        return_attentions: bool = False,
    ) -> QFormerOutput:
        """Read the image with the learned queries.

        :param image_feats: ``[B, N, D_v]`` patch features from the encoder.
        :param image_mask: ``[B, N]`` bool, True for patches to attend to (False = padding);
            every row must keep at least one patch. ``None`` attends to all.
        :param return_attentions: also return each cross-attention layer's probabilities
            ``[B, h, Q, N]`` (computed explicitly, a little slower than SDPA).
        """
        B, N, D_v = image_feats.shape
        assert D_v == self.encoder_dim, (
            f"image features are {D_v}-d, this Q-Former was built for {self.encoder_dim}"
        )
        if image_mask is not None:
            assert image_mask.shape == (B, N), f"image_mask is {tuple(image_mask.shape)}, expected {(B, N)}"
            assert image_mask.dtype == torch.bool, (
                f"image_mask must be bool (True = attend), got {image_mask.dtype}"
            )
            if not bool(image_mask.any(dim=-1).all()):
                raise ValueError(
                    "image_mask masks every patch of some image; each row needs at least one True"
                )

        image = self.ln_image(image_feats)  # (B, N, D_v)
        x = self.query_embeds.expand(B, -1, -1)  # (1, Q, D) -> (B, Q, D)
        if not self.pre_norm:
            x = self.ln_queries(x)
        x = self.dropout(x)

        maps: list[torch.Tensor] = []
        for layer in self.layers:
            x, probs = layer(x, image, image_mask, return_attentions)
            if probs is not None:
                maps.append(probs)
        if self.pre_norm:
            x = self.ln_queries(x)
        return QFormerOutput(queries=x, cross_attentions=maps if return_attentions else None)


def build_qformer(config: QFormerConfig, *, encoder_dim: int, **_: Any) -> QFormer:
    """Bridge factory: ``factory(config, encoder_dim=D_v)`` -> :class:`QFormer`."""
    return QFormer(config, encoder_dim=encoder_dim)


__all__ = ["QFormer", "QFormerConfig", "QFormerOutput", "build_qformer"]
