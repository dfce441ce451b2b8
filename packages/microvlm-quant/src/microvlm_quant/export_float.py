"""The ``fp16`` and ``bf16`` exporters: LoRA merged, every weight in half precision.

``llm/`` is a plain Hugging Face model folder (config.json, model.safetensors, tokenizer and
generation config) that ``transformers.AutoModelForCausalLM.from_pretrained`` loads as it is;
the encoder, bridge and projection are in ``model.safetensors`` at the same dtype. A tied
lm_head is stored once (as transformers itself saves Qwen2.5: ``tie_word_embeddings``).

:meth:`FloatExporter.load` rebuilds the model without the network and without remote code,
and by default computes in float32 (``cpu_compute = "float32"``; ``"stored"`` keeps fp16/bf16
in memory, half the RAM). Measured on this CPU (AMD EPYC, AVX2, no AVX-512 / native half
arithmetic; torch 2.14, 1 thread), ``F.linear`` of a Qwen2.5-0.5B MLP shape 4864x896, best of
10: fp32 1.43 / 4.66 ms at M = 1 / 8 tokens, fp16 0.93 / 6.37 ms, bf16 0.97 / 12.0 ms. Half
precision reads half the bytes (faster at M = 1, memory-bound) but its kernels are slower as
soon as there is arithmetic to do (M = 8: fp16 1.4x, bf16 2.6x the fp32 time), and fp32
accumulation avoids half-precision overflow in the norms; so float32 is the default.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from microvlm.contracts.quant import ExportReport
from microvlm.io.layout import CheckpointError
from microvlm.models.pretrained import LLM_DIR, all_tensors, load_model_weights
from microvlm_quant.export_common import (
    DTYPES,
    check_tensors,
    group,
    merged_llm,
    part_tensors,
    read_table,
    read_tensors,
    weights_file,
    write_llm_files,
    write_table,
)
from microvlm_quant.export_config import FloatExportConfig

logger = logging.getLogger(__name__)


def _cast(tensors: Mapping[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Floating tensors to ``dtype`` (contiguous); integer buffers as they are. ``meta`` stays ``meta``."""
    return {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}


def _cpu(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.cpu() for k, v in tensors.items()}


class FloatExporter:
    """Exports to fp16 or bf16 (``dtype``) and loads such a folder back."""

    def __init__(self, config: FloatExportConfig, dtype: str) -> None:
        self.config = config
        self.dtype = dtype  # "float16" / "bfloat16"
        self.short = {"float16": "fp16", "bfloat16": "bf16"}[dtype]

    def _stored(
        self, model: Any, *, shapes_only: bool
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], ExportReport]:
        """The tensors of ``llm/model.safetensors`` and of ``model.safetensors`` as written, and
        the report of them; ``shapes_only``: as ``meta`` tensors (what :meth:`estimate` counts)."""
        dtype = DTYPES[self.dtype]
        merged = merged_llm(model.llm, shapes_only=shapes_only)
        llm = _cast(merged.tensors, dtype)
        rest = _cast(part_tensors(model, shapes_only=shapes_only), dtype)
        linear_names = {f"{n}.weight" for n in merged.linears}
        embedding_names = {f"{merged.embedding}.weight"}
        small = {k: v for k, v in llm.items() if k not in linear_names | embedding_names}
        groups = [
            group("llm.linear", {k: llm[k] for k in linear_names}, self.short),
            group("llm.embeddings", {k: llm[k] for k in embedding_names}, self.short),
        ]
        for part in ("encoder", "bridge", "projection"):
            group_tensors = {k: v for k, v in rest.items() if k.startswith(f"{part}.")}
            groups.append(group(part, group_tensors, self.short))
        groups.append(group("norms+biases", small, self.short))
        notes = (*merged.notes, f"{LLM_DIR}/ loads with AutoModelForCausalLM")
        return llm, rest, ExportReport(tuple(groups), notes)

    def export(self, model: Any, directory: Path) -> ExportReport:
        from safetensors.torch import save_file

        directory = Path(directory)
        llm, rest, report = self._stored(model, shapes_only=False)
        llm_dir = write_llm_files(model.llm, directory, self.dtype)
        save_file(_cpu(llm), str(llm_dir / "model.safetensors"), metadata={"format": "pt"})
        save_file(_cpu(rest), str(weights_file(directory)), metadata={"format": "pt"})
        write_table(model, directory, init="pretrained", dtype=self.dtype)
        return report

    def estimate(self, model: Any) -> ExportReport:
        """:meth:`export`'s report from shapes alone (the same code on ``meta`` tensors)."""
        return self._stored(model, shapes_only=True)[2]

    def load(self, directory: Path, *, plugins: Any, options: Mapping[str, Any] | None = None) -> Any:
        from microvlm.models.vlm import MicroVLM
        from microvlm.recipes.load import build_model_config

        directory = Path(directory)
        for file in (weights_file(directory), directory / LLM_DIR / "model.safetensors"):
            check_tensors(file)
        compute = self.dtype if self.config.cpu_compute == "stored" else "float32"
        table = read_table(directory, options, **{"llm.init": "pretrained", "llm.dtype": compute})
        model = MicroVLM.from_config(build_model_config(table, plugins, str(directory)), plugins)
        rest = read_tensors(weights_file(directory))
        own = {k for k in all_tensors(model) if not k.startswith("llm.")}
        load_model_weights(model, rest, str(weights_file(directory)))
        missing = sorted(own - set(rest))
        if missing:
            raise CheckpointError(f"{weights_file(directory)}: lacks {len(missing)} tensors: {missing[:8]}")
        model.requires_grad_(False)
        return model.eval()


__all__ = ["FloatExporter"]
