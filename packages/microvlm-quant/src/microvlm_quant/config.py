"""Configuration of the quantiser plugins. Imports only ``attrs`` (registration stays light)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import attrs

from microvlm.recipes import validators as v

if TYPE_CHECKING:
    from microvlm_quant.nf4 import NF4Quantizer

ComputeDtype = Literal["auto", "float32", "bfloat16", "float16"]
QuantType = Literal["nf4", "fp4"]


@attrs.frozen
class NF4Config:
    """``nf4``: 4-bit weights through bitsandbytes, the base of ``adapter = "qlora"`` (Dettmers et al. 2023).

    Linear layers (except the output head) store 4-bit codes plus one scale per block of 64
    weights; matrix products de-quantise to ``compute_dtype``.
    """

    compute_dtype: ComputeDtype = attrs.field(default="auto", validator=v.one_of(ComputeDtype))  # auto: LLM's
    double_quant: bool = True  # quantise the per-block scales too (~0.37 bit/weight saved)
    quant_type: QuantType = attrs.field(default="nf4", validator=v.one_of(QuantType))  # the 4-bit code book


def build_nf4(config: NF4Config, **_: Any) -> NF4Quantizer:
    """Quantiser factory: ``factory(config)`` -> :class:`microvlm_quant.nf4.NF4Quantizer`."""
    from microvlm_quant.nf4 import NF4Quantizer

    return NF4Quantizer(config)
