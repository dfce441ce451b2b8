"""Configuration of the exporter plugins (``fp16``, ``bf16``, ``int8``, ``bitnet158``) and their
factories. Imports only ``attrs`` (registration stays light); the exporters load in the factories."""

from __future__ import annotations

from typing import Any, Literal

import attrs

from microvlm.recipes import validators as v

CpuCompute = Literal["float32", "stored"]
Embeddings = Literal["int8", "float32"]


@attrs.frozen
class FloatExportConfig:
    """``fp16`` / ``bf16``: LoRA merged, every weight in half precision; ``llm/`` is a plain HF folder."""

    cpu_compute: CpuCompute = attrs.field(default="float32", validator=v.one_of(CpuCompute))  # load dtype


@attrs.frozen
class Int8ExportConfig:
    """``int8``: per-output-channel int8 linears (LLM, Q-Former, projection), fp32 scales."""

    embeddings: Embeddings = attrs.field(default="int8", validator=v.one_of(Embeddings))  # token table


@attrs.frozen
class BitNetExportConfig:
    """``bitnet158``: LLM decoder linears ternary (absmean, 5 trits a byte), the rest int8."""

    embeddings: Embeddings = attrs.field(default="int8", validator=v.one_of(Embeddings))  # token table
    skip: tuple[str, ...] = ()  # decoder linears kept at int8: qualified or last-component names


def build_fp16(config: FloatExportConfig, **_: Any) -> Any:
    """Exporter factory: ``factory(config)`` -> an fp16 ``export_float.FloatExporter``."""
    from microvlm_quant.export_float import FloatExporter

    return FloatExporter(config, "float16")


def build_bf16(config: FloatExportConfig, **_: Any) -> Any:
    """Exporter factory: ``factory(config)`` -> a bf16 ``export_float.FloatExporter``."""
    from microvlm_quant.export_float import FloatExporter

    return FloatExporter(config, "bfloat16")


def build_int8(config: Int8ExportConfig, **_: Any) -> Any:
    """Exporter factory: ``factory(config)`` -> :class:`~microvlm_quant.export_int8.Int8Exporter`."""
    from microvlm_quant.export_int8 import Int8Exporter

    return Int8Exporter(config)


def build_bitnet158(config: BitNetExportConfig, **_: Any) -> Any:
    """Exporter factory: ``factory(config)`` -> :class:`~microvlm_quant.export_int8.Int8Exporter`
    with ternary decoder linears."""
    from microvlm_quant.export_int8 import Int8Exporter

    return Int8Exporter(config, ternary=True)
