"""Quantisers and exporters of microvlm-quant: hook implementations only; heavy imports live in
the factories."""

from __future__ import annotations

from microvlm import hookimpl
from microvlm.plugins.manager import Register
from microvlm_quant.config import NF4Config, build_nf4
from microvlm_quant.export_config import (
    BitNetExportConfig,
    FloatExportConfig,
    Int8ExportConfig,
    build_bf16,
    build_bitnet158,
    build_fp16,
    build_int8,
)
from microvlm_quant.qat import BitNetQATConfig, build_bitnet_qat


@hookimpl
def register_quantizers(register: Register) -> None:
    register("nf4", build_nf4, NF4Config, description="4-bit NF4 loading (bitsandbytes), the base of QLoRA")


@hookimpl
def register_exporters(register: Register) -> None:
    register(
        "fp16", build_fp16, FloatExportConfig, description="LoRA merged, fp16; llm/ is a plain HF folder"
    )
    register(
        "bf16", build_bf16, FloatExportConfig, description="LoRA merged, bf16; llm/ is a plain HF folder"
    )
    register("int8", build_int8, Int8ExportConfig, description="int8 per-channel linears and embeddings")
    register(
        "bitnet158",
        build_bitnet158,
        BitNetExportConfig,
        description="BitNet b1.58: ternary decoder linears at 1.6 bits, the rest int8",
    )


@hookimpl
def register_qat_schemes(register: Register) -> None:
    register(
        "bitnet158",
        build_bitnet_qat,
        BitNetQATConfig,
        description="BitNet b1.58 fake quantisation with a lambda warm-up, for the bitnet158 export",
    )
