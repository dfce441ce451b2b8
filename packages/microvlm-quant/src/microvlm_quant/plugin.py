"""Quantisers of microvlm-quant: hook implementations only; heavy imports live in the factories."""

from __future__ import annotations

from microvlm import hookimpl
from microvlm.plugins.manager import Register
from microvlm_quant.config import NF4Config, build_nf4


@hookimpl
def register_quantizers(register: Register) -> None:
    register("nf4", build_nf4, NF4Config, description="4-bit NF4 loading (bitsandbytes), the base of QLoRA")
