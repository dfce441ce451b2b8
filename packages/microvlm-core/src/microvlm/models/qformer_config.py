"""Configuration of the Q-Former bridge.

This module imports only ``attrs`` so that :mod:`microvlm.core_components` can register the
bridge without importing torch; the factory, :func:`microvlm.models.qformer.build_qformer`,
is imported when the bridge is built.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs


def _at_least_one(_: Any, attribute: attrs.Attribute, value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be >= 1, got {value}")


def _heads_divide_hidden(instance: QFormerConfig, _: attrs.Attribute, value: int) -> None:
    if value < 1:
        raise ValueError(f"num_heads must be >= 1, got {value}")
    if instance.hidden_size % value != 0:
        raise ValueError(
            f"hidden_size ({instance.hidden_size}) must be divisible by num_heads ({value}); "
            f"e.g. hidden_size = {instance.hidden_size // value * value or value} or a num_heads "
            f"that divides {instance.hidden_size}"
        )


def _positive_float(_: Any, attribute: attrs.Attribute, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value}")


def _probability(_: Any, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{attribute.name} must be in [0, 1), got {value}")


@attrs.frozen
class QFormerConfig:
    """``[model.bridge] name = "qformer"``: learned queries that read the image patches.

    ``norm = "pre"`` (the default) normalises the input of each sub-layer and adds a final
    LayerNorm; ``"post"`` normalises after each residual sum, as BERT and BLIP-2 do (with a
    LayerNorm on the query embeddings). BLIP-2 is post-norm because it starts from BERT-base
    weights; here the Q-Former is trained from random init, where pre-norm trains stably
    without relying on learning-rate warm-up (Xiong et al. 2020, "On Layer Normalization in
    the Transformer Architecture"). Use ``"post"`` to mirror BLIP-2's layout.
    """

    num_queries: int = attrs.field(default=32, validator=_at_least_one)  # Q, learned query tokens
    num_layers: int = attrs.field(default=6, validator=_at_least_one)  # transformer layers
    hidden_size: int = attrs.field(default=768, validator=_at_least_one)  # D_q, query width (features)
    num_heads: int = attrs.field(default=12, validator=_heads_divide_hidden)  # attention heads; divide D_q
    mlp_ratio: float = attrs.field(default=4.0, validator=_positive_float)  # MLP width, x hidden_size
    dropout: float = attrs.field(default=0.1, validator=_probability)  # attention-prob and residual dropout
    cross_attention_freq: int = attrs.field(default=1, validator=_at_least_one)  # cross-attn every k-th layer
    norm: Literal["pre", "post"] = "pre"  # LayerNorm placement, see the class docstring
    layer_norm_eps: float = attrs.field(default=1e-6, validator=_positive_float)  # LayerNorm epsilon

    @property
    def mlp_hidden_size(self) -> int:
        """Width of the MLP's inner layer (features)."""
        return int(self.hidden_size * self.mlp_ratio)

    @property
    def cross_attention_layers(self) -> tuple[int, ...]:
        """Indices of the layers with cross-attention: 0, k, 2k, ... (as in LAVIS)."""
        return tuple(i for i in range(self.num_layers) if i % self.cross_attention_freq == 0)


__all__ = ["QFormerConfig"]
