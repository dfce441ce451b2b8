"""Contracts of the model's three parts: image encoder, bridge and language model.

What :class:`microvlm.models.vlm.MicroVLM` calls on each part, with shapes. ``B`` batch, ``N``
patch tokens, ``D_v`` encoder width, ``Q`` queries, ``D_q`` bridge width, ``T`` text tokens,
``D_l`` language-model width. Every part is a ``torch.nn.Module`` (so ``.to()``, ``.train()``,
``.parameters()`` and ``state_dict()`` work); the protocols list only what MicroVLM needs
beyond that. They are structural (``typing.Protocol``): a plugin does not inherit from them;
:func:`microvlm.contracts.kinds.missing_members` and the conformance kit
(:mod:`microvlm.testing.conformance`) check an object against them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch


@runtime_checkable
class Encoder(Protocol):
    """Images ``[B, 3, H, W]`` (normalised as ``data_config`` says) -> patch features ``[B, N, D_v]``.

    Built as ``factory(config)``.
    """

    #: ``D_v``, the width of each output token.
    out_dim: int
    #: How images must be prepared, as timm's ``resolve_data_config`` gives it: ``input_size``
    #: ``(3, H, W)``, ``mean`` and ``std`` (per channel, on 0..1 pixels), ``interpolation``
    #: (``"bicubic"``, ...), ``crop_pct``. :mod:`microvlm.models.processors` reads it.
    data_config: Mapping[str, Any]
    #: ``(rows, cols)`` of the patch grid when the output tokens are one per image patch in row
    #: order after ``N - rows * cols`` leading tokens (CLS, distillation), else ``None``.
    #: Attention maps are drawn on this grid.
    patch_grid: tuple[int, int] | None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` float -> ``[B, N, D_v]``."""
        ...


@runtime_checkable
class BridgeOutput(Protocol):
    """What a bridge returns."""

    #: ``[B, Q, D_q]``: the query features the projection maps to the language model's width.
    queries: torch.Tensor
    #: When asked for (``return_attentions=True``) and the bridge has them: per cross-attention
    #: layer, ``[B, heads, Q, N]`` weights of each query over the encoder tokens (rows sum to 1).
    #: ``None`` otherwise.
    cross_attentions: Sequence[torch.Tensor] | None


@runtime_checkable
class Bridge(Protocol):
    """Patch features ``[B, N, D_v]`` -> a fixed number of query features ``[B, Q, D_q]``.

    Built as ``factory(config, encoder_dim=D_v)``.
    """

    #: ``D_q``, the width of each query feature.
    out_dim: int
    #: ``Q``, how many image tokens the language model receives per image.
    num_queries: int

    def __call__(self, features: torch.Tensor, return_attentions: bool = False) -> BridgeOutput:
        """``[B, N, D_v]`` -> :class:`BridgeOutput` with ``queries`` ``[B, Q, D_q]``."""
        ...


@runtime_checkable
class LanguageModel(Protocol):
    """A causal language model that reads soft image tokens through ``inputs_embeds``.

    Built as ``factory(config, plugins=..., device=None)``; ``device="meta"`` builds shapes only
    (parameter counting). The decoder's own weights are frozen unless its config says otherwise;
    adapters (LoRA) are what trains.
    """

    #: ``D_l``, the width of the token embeddings.
    hidden_size: int
    #: The tokenizer (a transformers ``PreTrainedTokenizerBase``): ``__call__``, ``decode``,
    #: ``pad_token_id``, ``eos_token``; chats use its chat template.
    tokenizer: Any
    #: What is quantised at load (e.g. ``{"quantizer": "nf4", ...}``), ``None`` when nothing is.
    quantization: Mapping[str, Any] | None

    @property
    def max_positions(self) -> int | None:
        """How many positions the decoder attends over (image + prompt + answer); None: no limit."""
        ...

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the decoder's weights (compute dtype for quantised ones)."""
        ...

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token ids ``[B, T]`` -> embeddings ``[B, T, D_l]``."""
        ...

    def hidden_states(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        past_key_values: Any = None,
        use_cache: bool = False,
        position_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, Any]:
        """``(last decoder states [B, T, D_l], KV cache or None)`` for ``inputs_embeds``
        ``[B, T, D_l]``; ``attention_mask`` ``[B, T_past + T]`` (1 = real token); position ids
        default to ``cumsum(attention_mask) - 1`` so left padding does not shift positions. No
        logits are computed."""
        ...

    def loss(self, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy of the states ``[M, D_l]`` of the labelled positions
        against ``labels`` ``[M]``, computed without keeping ``[M, vocab]`` logits for backward
        where it can."""
        ...

    def generate(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        """New token ids ``[B, T_new]`` after the prompt ``[B, T, D_l]`` (left-padded);
        ``kwargs`` are transformers' generation settings (``max_new_tokens``, ``do_sample``, ...)."""
        ...

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """The trainable adapter tensors (LoRA), by name; empty without an adapter."""
        ...

    def load_adapter_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Put tensors from :meth:`adapter_state_dict` back."""
        ...

    def save_adapter(self, directory: str | Path) -> Path:
        """Write the adapter in its library's own format (peft's ``adapter_config.json``)."""
        ...


__all__ = ["Bridge", "BridgeOutput", "Encoder", "LanguageModel"]
