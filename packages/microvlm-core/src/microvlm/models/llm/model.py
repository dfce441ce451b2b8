"""The language model as MicroVLM uses it: embeddings in, hidden states out, logits on demand.

:class:`LanguageModel` wraps a transformers causal LM (optionally wrapped by peft) and its
tokenizer. The MicroVLM assembly splices image query embeddings into the token embeddings,
runs the decoder on ``inputs_embeds`` and applies ``lm_head`` only where a label exists, so
the 151,936-wide vocabulary projection is never computed for unlabelled positions.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from microvlm.errors import MicroVLMError
from microvlm.models.llm.config import HFCausalLMConfig
from microvlm.models.llm.fused import frozen_head_cross_entropy, use_lean_mlps

logger = logging.getLogger(__name__)

ADAPTER_FILE = "adapter_model.safetensors"


@functools.cache
def _cache_argument(decoder_cls: type) -> str:
    """The decoder's name for the KV cache: ``cache`` (newer transformers 5.x) or ``past_key_values``."""
    parameters = inspect.signature(decoder_cls.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


class DecoderOutput(NamedTuple):
    """What :meth:`LanguageModel.hidden_states` returns; unpacks as ``hidden, cache``."""

    hidden_states: torch.Tensor  # [B, T, D_l], after the decoder's final norm
    past_key_values: Any  # the KV cache (transformers Cache) when use_cache, else None


class LanguageModel(nn.Module):
    """A frozen causal LM (plus LoRA when configured) and its tokenizer.

    Interface used by the MicroVLM assembly:

    - ``model``: the transformers model, or the peft model wrapping it when ``adapter`` is
      ``"lora"``/``"qlora"``; ``base_model`` is always the transformers model (with the LoRA
      layers injected, if any).
    - ``tokenizer``: loaded on first access (so an ``init = "random"`` model of a hub id can
      be built and counted offline); it always has a pad token. Set
      ``tokenizer.padding_side`` to ``"right"`` for training, ``"left"`` for batched generation.
    - ``hidden_size``: ``D_l``, the embedding width; ``vocab_size``: rows of the embedding.
    - ``embed(input_ids [B, T]) -> [B, T, D_l]``: the input token embeddings.
    - ``hidden_states(inputs_embeds [B, T, D_l], attention_mask [B, T_past + T],
      past_key_values=None, use_cache=False, position_ids=None) -> DecoderOutput``: the
      decoder's last hidden states ``[B, T, D_l]`` (and the KV cache when ``use_cache``),
      without computing logits. Position ids default to ``cumsum(attention_mask) - 1``, so a
      left-padded batch gets the same positions as its unpadded rows.
    - ``lm_head(hidden [..., D_l]) -> logits [..., V]``: apply it to the labelled positions only.
    - ``loss(hidden [M, D_l], labels [M]) -> loss``: ``lm_head`` + mean cross-entropy, without
      keeping ``[M, V]`` logits for backward when the head is frozen.
    - ``chat_template`` / ``apply_chat_template(messages, **kwargs)``: the tokenizer's.
    - ``trainable_parameters()``: the parameters with ``requires_grad`` (the LoRA matrices
      when an adapter is on, none otherwise); ``num_parameters()`` counts 4-bit weights by
      their logical size.
    - ``adapter_state_dict()`` / ``load_adapter_state_dict(sd)`` / ``save_adapter(dir)`` /
      ``load_adapter(dir)``: the LoRA weights alone, as safetensors.
    - ``quantization``: the scheme the base was loaded with (``quantizer.describe()``), or None.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        config: HFCausalLMConfig,
        tokenizer_loader: Callable[[], Any] | None = None,
        tokenizer: Any = None,
        quantization: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if tokenizer is None and tokenizer_loader is None:
            raise ValueError("LanguageModel needs a tokenizer or a tokenizer_loader")
        self.model = model
        self.config = config  # the HFCausalLMConfig it was built from
        use_lean_mlps(self.base_model)  # less activation memory through frozen MLPs, same function
        self.quantization = quantization
        self._tokenizer = tokenizer
        self._tokenizer_loader = tokenizer_loader

    # -- the underlying model ----------------------------------------------------------

    @property
    def is_peft(self) -> bool:
        """True when ``model`` is a peft model (an adapter is on)."""
        return hasattr(self.model, "get_base_model") and hasattr(self.model, "peft_config")

    def merge_adapter(self) -> bool:
        """Fold the LoRA matrices into the base weights (peft's ``merge_and_unload``) and drop the
        adapter; returns whether there was one. A 4-bit (QLoRA) base cannot take the merge."""
        if not self.is_peft:
            return False
        if self.quantization is not None:
            raise MicroVLMError(
                "a QLoRA model's 4-bit base cannot take its LoRA merged in place; load the checkpoint "
                'with --set llm.adapter="lora" (a float base) first'
            )
        self.model = self.model.merge_and_unload()
        self.config = attrs.evolve(self.config, adapter="none")
        return True

    @property
    def base_model(self) -> nn.Module:
        """The transformers causal LM, unwrapped from peft (LoRA layers stay injected)."""
        return self.model.get_base_model() if self.is_peft else self.model

    @property
    def hf_config(self) -> Any:
        """The transformers config of the model (``hidden_size``, ``vocab_size``, ...)."""
        return self.base_model.config

    @property
    def hidden_size(self) -> int:
        """``D_l``: width of the token embeddings and of the decoder's hidden states."""
        return int(self.base_model.get_input_embeddings().embedding_dim)

    @property
    def max_positions(self) -> int | None:
        """``max_position_embeddings`` of the decoder (image + prompt + answer), None without one."""
        value = getattr(self.hf_config, "max_position_embeddings", None)
        return int(value) if value else None

    @property
    def vocab_size(self) -> int:
        """Rows of the input embedding (may exceed ``len(tokenizer)``, as Qwen's does)."""
        return int(self.base_model.get_input_embeddings().num_embeddings)

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the input embeddings, which the decoder's inputs are cast to: the table's own,
        or, for a quantised table that states the dtype it outputs (a ``dtype`` attribute, as
        microvlm-quant's int8 embedding has), that one."""
        embedding = self.base_model.get_input_embeddings()
        stated = getattr(embedding, "dtype", None)
        return stated if isinstance(stated, torch.dtype) else embedding.weight.dtype

    # -- tokenizer ---------------------------------------------------------------------

    @property
    def tokenizer(self) -> Any:
        """The tokenizer, loaded on first access; raises :class:`MicroVLMError` if it cannot be."""
        if self._tokenizer is None:
            assert self._tokenizer_loader is not None
            self._tokenizer = self._tokenizer_loader()
        return self._tokenizer

    @property
    def chat_template(self) -> str | None:
        """The tokenizer's Jinja chat template (None if it has none)."""
        return self.tokenizer.chat_template

    def apply_chat_template(self, messages: Any, **kwargs: Any) -> Any:
        """``tokenizer.apply_chat_template``; e.g. ``tokenize=False, add_generation_prompt=True``."""
        if not self.chat_template:
            raise MicroVLMError(
                f"the tokenizer of {self.config.tokenizer_source!r} has no chat template; "
                "use a chat/instruct tokenizer or plain prompts"
            )
        return self.tokenizer.apply_chat_template(messages, **kwargs)

    # -- computation -------------------------------------------------------------------

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token ids ``[B, T]`` -> input embeddings ``[B, T, D_l]``."""
        return self.base_model.get_input_embeddings()(input_ids)

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        past_key_values: Any = None,
        use_cache: bool = False,
        position_ids: torch.Tensor | None = None,
    ) -> DecoderOutput:
        """Same as :meth:`hidden_states`."""
        T = inputs_embeds.shape[1]
        if position_ids is None and attention_mask is not None:
            # attention_mask: [B, T_past + T]; positions count real tokens only (left padding).
            positions = attention_mask.long().cumsum(-1) - 1
            positions = positions.masked_fill(attention_mask == 0, 1)
            position_ids = positions[:, -T:]  # [B, T]
        decoder = self.base_model.get_decoder()
        cache_arg = _cache_argument(type(decoder))
        out = decoder(
            inputs_embeds=inputs_embeds.to(self.dtype),
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=use_cache,
            return_dict=True,
            **{cache_arg: past_key_values},
        )
        cache = getattr(out, cache_arg, None) if use_cache else None
        return DecoderOutput(out.last_hidden_state, cache)

    def hidden_states(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        past_key_values: Any = None,
        use_cache: bool = False,
        position_ids: torch.Tensor | None = None,
    ) -> DecoderOutput:
        """Run the decoder on ``inputs_embeds [B, T, D_l]``; no logits are computed.

        :param attention_mask: ``[B, T_past + T]``, 1 for real tokens, 0 for padding.
        :param past_key_values: the cache returned by a previous call (generation).
        :param use_cache: return the updated KV cache.
        :param position_ids: ``[B, T]``; default ``cumsum(attention_mask) - 1``.
        :returns: ``DecoderOutput(hidden_states [B, T, D_l], past_key_values or None)``.
        """
        return self(inputs_embeds, attention_mask, past_key_values, use_cache, position_ids)

    def generate(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        """New token ids ``[B, T_new]`` after left-padded ``inputs_embeds`` ``[B, T, D_l]``
        (transformers' ``generate``: for ``inputs_embeds`` only the new ids come back)."""
        embeds = inputs_embeds.to(self.dtype)
        return self.model.generate(inputs_embeds=embeds, attention_mask=attention_mask, **kwargs)

    def lm_head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states ``[..., D_l]`` -> logits ``[..., V]`` (the output projection only)."""
        head = self.base_model.get_output_embeddings()
        return head(hidden.to(head.weight.dtype) if head.weight.is_floating_point() else hidden)

    def loss(self, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the logits of ``hidden [M, D_l]`` against ``labels [M]``.

        With a frozen floating-point head and a gradient to compute, the logits are made and
        dropped chunk by chunk (:func:`~microvlm.models.llm.fused.frozen_head_cross_entropy`): the
        ``[M, V]`` logits are never kept for backward. Otherwise ``lm_head`` + cross-entropy.
        """
        head = self.base_model.get_output_embeddings()
        weight = head.weight
        lean = (
            torch.is_grad_enabled()
            and hidden.requires_grad
            and not weight.requires_grad
            and weight.is_floating_point()
            and getattr(head, "bias", None) is None
            and type(head) is nn.Linear
        )
        if lean:
            return frozen_head_cross_entropy(hidden.to(weight.dtype), weight, labels, self.lm_head)
        return F.cross_entropy(self.lm_head(hidden).float(), labels)

    # -- parameters and adapters -------------------------------------------------------

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters with ``requires_grad``: the LoRA matrices, or none when adapter = "none"."""
        return [p for p in self.parameters() if p.requires_grad]

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Parameter count; a 4-bit weight counts as its original (unpacked) number of values."""
        total = 0
        for p in self.parameters():
            if trainable_only and not p.requires_grad:
                continue
            quant_state = getattr(p, "quant_state", None)
            total += quant_state.shape.numel() if quant_state is not None else p.numel()
        return total

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """The LoRA weights (peft's key names, adapter name stripped); empty without an adapter."""
        if not self.is_peft:
            return {}
        from peft import get_peft_model_state_dict

        return get_peft_model_state_dict(self.model, save_embedding_layers=False)

    def load_adapter_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load LoRA weights saved by :meth:`adapter_state_dict` (quantised base or not)."""
        if not self.is_peft:
            raise MicroVLMError(
                'this language model has no adapter; set adapter = "lora" to load LoRA weights'
            )
        from peft import set_peft_model_state_dict

        try:
            result = set_peft_model_state_dict(self.model, state_dict)
        except RuntimeError as exc:  # shape mismatch from load_state_dict
            raise MicroVLMError(
                f"LoRA weights do not fit this model (check lora_r and lora_target_modules): {exc}"
            ) from exc
        missing = [k for k in result.missing_keys if "lora_" in k]
        if result.unexpected_keys or missing:
            raise MicroVLMError(
                "LoRA weights do not match this model: "
                f"unexpected {sorted(result.unexpected_keys)[:5]}, missing {sorted(missing)[:5]}; "
                "check lora_r and lora_target_modules against the run that saved them"
            )

    def save_adapter(self, directory: str | Path) -> Path:
        """Write the LoRA weights to ``directory/adapter_model.safetensors``; returns the file."""
        from safetensors.torch import save_file

        path = Path(directory) / ADAPTER_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.adapter_state_dict().items()}
        save_file(tensors, str(path))
        return path

    def load_adapter(self, directory: str | Path) -> None:
        """Load LoRA weights written by :meth:`save_adapter` (a directory or the file itself)."""
        from safetensors.torch import load_file

        path = Path(directory)
        path = path / ADAPTER_FILE if path.is_dir() else path
        if not path.is_file():
            raise MicroVLMError(f"{path}: no LoRA weights here; save them with save_adapter(directory)")
        self.load_adapter_state_dict(load_file(str(path)))
