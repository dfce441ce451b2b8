"""The ``hf_causal_lm`` language-model plugin: a transformers causal LM, its tokenizer, LoRA.

Importing this package is light (attrs only); :class:`LanguageModel` and the loader import
torch and transformers when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from microvlm.models.llm.config import HFCausalLMConfig

if TYPE_CHECKING:
    from microvlm.models.llm.hf import build_hf_causal_lm
    from microvlm.models.llm.model import DecoderOutput, LanguageModel

__all__ = ["DecoderOutput", "HFCausalLMConfig", "LanguageModel", "build_hf_causal_lm"]


def __getattr__(name: str) -> Any:
    if name in ("LanguageModel", "DecoderOutput"):
        from microvlm.models.llm import model

        return getattr(model, name)
    if name == "build_hf_causal_lm":
        from microvlm.models.llm.hf import build_hf_causal_lm

        return build_hf_causal_lm
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
