"""Configuration of the Q-Former bridge.

This module imports only ``attrs`` and core's validators so that :mod:`microvlm.core_components`
can register the bridge without importing torch; the factory, :func:`microvlm.models.qformer.build_qformer`,
is imported when the bridge is built.
"""

from __future__ import annotations

from typing import Literal

import attrs

from microvlm.recipes import validators as v

_COUNT = v.at_least(1)


def _heads_divide_hidden(instance: QFormerConfig, attribute: attrs.Attribute, value: int) -> None:
    _COUNT(instance, attribute, value)
    if instance.hidden_size % value != 0:
        v.fail(
            instance,
            attribute,
            f"hidden_size ({instance.hidden_size}) must be divisible by num_heads ({value}); "
            f"e.g. hidden_size = {instance.hidden_size // value * value or value} or a num_heads "
            f"that divides {instance.hidden_size}",
        )


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

    num_queries: int = attrs.field(default=32, validator=_COUNT)  # Q, learned query tokens
    num_layers: int = attrs.field(default=6, validator=_COUNT)  # transformer layers
    hidden_size: int = attrs.field(default=768, validator=_COUNT)  # D_q, query width (features)
    num_heads: int = attrs.field(default=12, validator=_heads_divide_hidden)  # attention heads; divide D_q
    mlp_ratio: float = attrs.field(default=4.0, validator=v.positive)  # MLP width, x hidden_size
    dropout: float = attrs.field(default=0.1, validator=v.probability)  # attention-prob and residual dropout
    cross_attention_freq: int = attrs.field(default=1, validator=_COUNT)  # cross-attn every k-th layer
    norm: Literal["pre", "post"] = "pre"  # LayerNorm placement, see the class docstring
    layer_norm_eps: float = attrs.field(default=1e-6, validator=v.positive)  # LayerNorm epsilon

    @property
    def mlp_hidden_size(self) -> int:
        """Width of the MLP's inner layer (features)."""
        return int(self.hidden_size * self.mlp_ratio)

    @property
    def cross_attention_layers(self) -> tuple[int, ...]:
        """Indices of the layers with cross-attention: 0, k, 2k, ... (as in LAVIS)."""
        return tuple(i for i in range(self.num_layers) if i % self.cross_attention_freq == 0)


__all__ = ["QFormerConfig"]
