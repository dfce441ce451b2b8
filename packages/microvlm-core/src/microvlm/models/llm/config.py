"""Configuration of the ``hf_causal_lm`` language model, and its factory.

This module imports only ``attrs`` and core's validators so that ``microvlm.core_components`` can
register the LLM without importing torch or transformers; :func:`build_hf_causal_lm` imports the
loader inside.

``init = "random"`` builds the architecture from its config alone, with no weights. For a
local directory the config is its ``config.json``. For ``model = "Qwen/Qwen2.5-0.5B"`` (the
default) the config is the copy shipped next to this module (``qwen2.5-0.5b-config.json``), so
the full-size architecture (494 M parameters) builds with no network; other hub ids need the
hub or the Hugging Face cache.
"""

from __future__ import annotations

from typing import Literal

import attrs

from microvlm.recipes import validators as v

Init = Literal["pretrained", "random"]
Dtype = Literal["auto", "float32", "bfloat16", "float16"]
Adapter = Literal["none", "lora", "qlora"]

#: Hub ids whose config ships with microvlm-core (file next to this module), for ``init = "random"``.
SHIPPED_CONFIGS = {"Qwen/Qwen2.5-0.5B": "qwen2.5-0.5b-config.json"}

DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


_SOURCE = v.with_hint(v.non_empty, "give a hub id or a local directory")
_MODULE_NAMES = v.with_hint(v.names, 'e.g. ["q_proj", "v_proj"]')


def _uses_quantizer(config: HFCausalLMConfig) -> bool:
    return config.adapter == "qlora"


@attrs.frozen
class HFCausalLMConfig:
    """``[model.llm] name = "hf_causal_lm"``: a transformers ``AutoModelForCausalLM``.

    The base weights are frozen. ``adapter = "lora"`` adds trainable LoRA matrices (peft) to
    ``lora_target_modules``; ``"qlora"`` loads the base in 4 bits through the quantizer plugin
    named by ``quantizer`` (``nf4``, from microvlm-quant) before adding LoRA.
    """

    model: str = attrs.field(default="Qwen/Qwen2.5-0.5B", validator=_SOURCE)  # hub id or local directory
    tokenizer: str = ""  # hub id or local directory of the tokenizer; "" = same as model
    revision: str = attrs.field(default="main", validator=v.non_empty)  # hub branch, tag or commit
    init: Init = attrs.field(default="pretrained", validator=v.one_of(Init))  # "random": no weights loaded
    dtype: Dtype = attrs.field(default="auto", validator=v.one_of(Dtype))  # auto: bf16 on bf16 GPU, else fp32
    gradient_checkpointing: bool = False  # recompute decoder activations in backward (less memory)
    adapter: Adapter = attrs.field(default="none", validator=v.one_of(Adapter))  # trainable part of the LLM
    lora_r: int = attrs.field(default=64, validator=v.positive)  # LoRA rank r
    lora_alpha: int = attrs.field(
        default=16, validator=v.positive
    )  # LoRA scale numerator: update x alpha / r
    lora_dropout: float = attrs.field(default=0.05, validator=v.probability)  # dropout on the LoRA input
    lora_target_modules: tuple[str, ...] = attrs.field(  # module names (suffixes) that get LoRA
        default=DEFAULT_TARGET_MODULES, validator=_MODULE_NAMES
    )
    trust_remote_code: bool = False  # run model code from the hub repo; only for repos you trust
    quantizer: str = attrs.field(  # quantizer plugin for qlora
        default="nf4",
        validator=v.non_empty,
        metadata=v.component_name("quantizer", used_when=_uses_quantizer),
    )

    @property
    def tokenizer_source(self) -> str:
        """Where the tokenizer comes from: ``tokenizer``, or ``model`` when empty."""
        return self.tokenizer or self.model
