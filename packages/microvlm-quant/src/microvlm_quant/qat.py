"""``[qat] name = "bitnet158"``: quantisation-aware training for the BitNet b1.58 exporter.

Post-training ternarisation of a model that was not trained for it destroys it (Ma et al.
2024, arXiv:2402.17764; llama.cpp documents its TQ1_0/TQ2_0 ternary types as usable only on
models trained ternary). So a training stage fine-tunes with the forward pass the export will
run: every decoder linear of the language model becomes a
:class:`~microvlm_quant.bitlinear.BitLinearQAT` — absmean ternary weights and 8-bit absmax
activations per token, trained through a straight-through estimator over the full-precision
shadow weights — and the quantisation is phased in, ``lam`` rising linearly from 0 to 1 over
``warmup_steps`` optimizer steps, as in Hugging Face's "Fine-tuning LLMs to 1.58bit" (2024),
where a gradual warm-up kept a pretrained model from collapsing when quantisation switched on.

The set of layers is the exporter's: every ``nn.Linear`` of the LLM but its output head (the
head and the embeddings are exported int8). A LoRA adapter is merged into the base first (LoRA
over a ternary base would not survive the export's ternarisation of the merged weight), so the
recipe trains ``"llm"`` (the shadow weights) rather than ``"lora"``. Parameter names do not
change, so step checkpoints resume, DDP wraps the same parameters, and the final checkpoint
loads as a plain model (its forward then runs the full-precision shadow weights; export it
with ``microvlm export --1_58bit`` to run it ternary).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from microvlm.recipes import validators as v

HEAD = "lm_head"  # transformers' name of the output projection: exported int8, not ternary


@attrs.frozen
class BitNetQATConfig:
    """``[qat] name = "bitnet158"``."""

    warmup_steps: int = attrs.field(default=100, validator=v.positive)  # lam 0 -> 1 over these steps
    skip: tuple[str, ...] = ()  # more LLM linears kept in full precision (qualified or last names)


class BitNetQAT:
    """The :class:`microvlm.contracts.quant.QATScheme` behind ``[qat] name = "bitnet158"``."""

    def __init__(self, config: BitNetQATConfig) -> None:
        self.config = config

    def prepare(self, model: Any) -> int:
        from microvlm_quant.bitlinear import replace_linears

        model.merge_adapter()
        return replace_linears(model.llm.base_model, skip={HEAD, *self.config.skip})

    def strength(self, step: int) -> float:
        """``lam`` for optimizer step ``step`` (from 0): 0 at the first step, 1 from ``warmup_steps``."""
        return min(1.0, step / self.config.warmup_steps)

    def set_step(self, model: Any, step: int) -> Mapping[str, float]:
        from microvlm_quant.bitlinear import set_lambda

        lam = self.strength(step)
        set_lambda(model, lam)
        return {"qat/lambda": lam}

    def finish(self, model: Any) -> None:
        from microvlm_quant.bitlinear import set_lambda

        set_lambda(model, 1.0)


def build_bitnet_qat(config: BitNetQATConfig, **_: Any) -> BitNetQAT:
    """QAT factory: ``factory(config)`` -> :class:`BitNetQAT`."""
    return BitNetQAT(config)


__all__ = ["BitNetQAT", "BitNetQATConfig", "build_bitnet_qat"]
