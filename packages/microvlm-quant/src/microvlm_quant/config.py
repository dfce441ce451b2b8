"""Configuration of the quantiser plugins. Imports only ``attrs`` (registration stays light)."""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Any, Literal

import attrs

from microvlm.errors import FieldValueError

if TYPE_CHECKING:
    from microvlm_quant.nf4 import NF4Quantizer

ComputeDtype = Literal["auto", "float32", "bfloat16", "float16"]
QuantType = Literal["nf4", "fp4"]


def _literal(tp: Any) -> Any:
    """Validator for a ``Literal[...]`` field (the recipe loader checks it too; this guards code)."""
    choices = typing.get_args(tp)

    def check(_: Any, attribute: attrs.Attribute, value: str) -> None:
        if value not in choices:
            shown = ", ".join(repr(c) for c in choices)
            raise FieldValueError(attribute.name, f"expected one of {shown}, got {value!r}")

    return check


@attrs.frozen
class NF4Config:
    """``nf4``: 4-bit weights through bitsandbytes, the base of ``adapter = "qlora"`` (Dettmers et al. 2023).

    Linear layers (except the output head) store 4-bit codes plus one scale per block of 64
    weights; matrix products de-quantise to ``compute_dtype``.
    """

    compute_dtype: ComputeDtype = attrs.field(default="auto", validator=_literal(ComputeDtype))  # auto: LLM's
    double_quant: bool = True  # quantise the per-block scales too (~0.37 bit/weight saved)
    quant_type: QuantType = attrs.field(default="nf4", validator=_literal(QuantType))  # the 4-bit code book


def build_nf4(config: NF4Config, **_: Any) -> NF4Quantizer:
    """Quantiser factory: ``factory(config)`` -> :class:`microvlm_quant.nf4.NF4Quantizer`."""
    from microvlm_quant.nf4 import NF4Quantizer

    return NF4Quantizer(config)
