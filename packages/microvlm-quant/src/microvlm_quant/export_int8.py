"""The ``int8`` and ``bitnet158`` exporters (issue #16).

``int8``: every ``nn.Linear`` of the LLM (LoRA merged first), of the Q-Former and of the
projection as int8 per output channel with fp32 scales (``quantize_int8``); the token table as
int8 with one scale per row, and a tied lm_head stored once (``Int8Embedding.as_linear`` at
load). ``bitnet158``: the LLM's decoder linears ternary instead (BitNet b1.58 absmean, one
fp32 ``gamma`` per matrix, packed five trits a byte = 1.6 bits per weight), run by
``TernaryLinear`` with 8-bit per-token activations; embeddings, an untied lm_head, the
Q-Former and the projection stay int8. A model whose linears are ``BitLinearQAT`` exports
its full-precision shadow weights ternarised, which is what its forward pass used.

Norms and biases stay fp32; the encoder (a small ViT, 5.5 M weights for DeiT-tiny) is stored
fp16 and computes in fp32. ``model.safetensors`` holds the tensors under their MicroVLM names
(``llm.model.model.layers.0.mlp.up_proj.qweight`` / ``.scale``, ``... .packed``), and its
metadata names the tied head. Ternarising a model that was not trained for it gives garbage
(BitNet b1.58 papers): export a QAT-trained model to ``bitnet158``.

Measured on the real-size architecture (random init: DeiT-tiny, the default Q-Former, Qwen2.5-0.5B
with LoRA r=8; this 2-core AMD EPYC, torch 2.14.1), all files of the folder:

=========  ========  ==========  ===================  ===================================
format     folder    x fp16      LLM linears          peak RSS after load + 16 tokens
=========  ========  ==========  ===================  ===================================
fp16       1105 MB   1           16 bits per weight   3807 MiB (fp32 compute), 1958 stored
int8       561 MB    0.507       8.03                 1345 MiB
bitnet158  273 MB    0.247       1.6000 (ternary)     1414 MiB
fp32       (built)   -           32                   3384 MiB
=========  ========  ==========  ===================  ===================================

The LLM's linears + embeddings alone: int8 0.502x fp16. RSS includes 512 MiB of Python + torch;
without it int8 is 0.29x fp32 and bitnet158 0.31x (its ``TernaryLinear`` holds the unpacked int8
trits, 1 byte per weight, beside the 1.6-bit packed form). Decode speed at batch 1 with one
thread (16 tokens, prefill included, one run on shared cores): int8 3.3, bitnet158 4.0, fp32 3.6 tokens/s:
these kernels read fewer bytes but do not beat fp32 matmuls on an AVX2 CPU (see
``microvlm_quant.int8`` and ``microvlm_quant.bitlinear`` for per-layer timings).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from microvlm.contracts.quant import ExportReport, TensorGroup
from microvlm_quant.export_common import (
    as_meta,
    merged_llm,
    nbytes,
    part_tensors,
    read_table,
    read_tensors,
    weights_file,
    write_llm_files,
    write_table,
)
from microvlm_quant.int8 import quantize_int8
from microvlm_quant.ternary import TRITS_PER_BYTE, pack_trits, ternarize

LLM = "llm.model."  # prefix of the HF model's names inside a MicroVLM without an adapter
INT8 = "int8 per-output-channel, fp32 scales"
INT8_ROWS = "int8 per-row, fp32 scales"
PART = "int8 linears per-output-channel, fp32 scales; norms, biases, queries fp32"
TERNARY = "ternary absmean per tensor, 5 trits per byte, fp32 scale"


class _Groups:
    """Parameters and bytes per report group, in the order first seen."""

    def __init__(self) -> None:
        self.counts: dict[str, list[Any]] = {}

    def add(self, name: str, storage: str, parameters: int, tensors: list[torch.Tensor]) -> None:
        entry = self.counts.setdefault(name, [0, 0, storage])
        entry[0] += parameters
        entry[1] += sum(nbytes(t) for t in tensors)

    def report(self) -> tuple[TensorGroup, ...]:
        return tuple(TensorGroup(n, p, b, s) for n, (p, b, s) in self.counts.items())


def _pack(trits: torch.Tensor) -> torch.Tensor:
    """``pack_trits``; on ``meta`` (an estimate) only its output: uint8 ``[ceil(n / 5)]``."""
    if trits.is_meta:
        return torch.empty(-(-trits.numel() // TRITS_PER_BYTE), dtype=torch.uint8, device="meta")
    return pack_trits(trits)


def _skipped(name: str, skip: tuple[str, ...]) -> bool:
    return name in skip or name.rpartition(".")[2] in skip


class Int8Exporter:
    """Exports to int8 (or, with ``ternary``, BitNet b1.58) and loads such a folder back."""

    def __init__(self, config: Any, ternary: bool = False) -> None:
        self.config = config
        self.ternary = ternary
        self.format = "microvlm-bitnet158" if ternary else "microvlm-int8"

    # -- export ----------------------------------------------------------------------

    def _linear(
        self, out: dict, groups: _Groups, key: str, weight: torch.Tensor, group: str, ternary: bool
    ) -> None:
        if ternary:
            trits, gamma = ternarize(weight)
            out[f"{key}.packed"], out[f"{key}.scale"] = _pack(trits), gamma.reshape(1)
            groups.add(group, TERNARY, weight.numel(), [out[f"{key}.packed"], out[f"{key}.scale"]])
        else:
            out[f"{key}.qweight"], out[f"{key}.scale"] = quantize_int8(weight)
            groups.add(group, INT8, weight.numel(), [out[f"{key}.qweight"], out[f"{key}.scale"]])

    def _stored(self, model: Any, *, shapes_only: bool) -> tuple[dict[str, torch.Tensor], str, ExportReport]:
        """The tensors of ``model.safetensors`` as written, its ``tied_head`` metadata and the
        report; ``shapes_only``: as ``meta`` tensors, where the quantisers only make shapes
        (what :meth:`estimate` counts)."""
        merged = merged_llm(model.llm, shapes_only=shapes_only)
        out: dict[str, torch.Tensor] = {}
        groups = _Groups()
        skip = tuple(getattr(self.config, "skip", ()))
        done: set[str] = set()
        for name in merged.linears:
            ternary = self.ternary and name != merged.head and not _skipped(name, skip)
            group = "llm.linear" if ternary or not self.ternary else "llm.linear.int8"
            if name == merged.head:
                group = "llm.lm_head"
            self._linear(out, groups, LLM + name, merged.tensors[f"{name}.weight"], group, ternary)
            done.add(f"{name}.weight")
        table = f"{merged.embedding}.weight"
        if self.config.embeddings == "int8":
            q, scale = quantize_int8(merged.tensors[table])
            out[f"{LLM}{merged.embedding}.qweight"], out[f"{LLM}{merged.embedding}.scale"] = q, scale
            groups.add("llm.embeddings", INT8_ROWS, q.numel(), [q, scale])
        else:
            out[LLM + table] = merged.tensors[table]
            groups.add("llm.embeddings", "fp32", merged.tensors[table].numel(), [merged.tensors[table]])
        done.add(table)
        for name, tensor in merged.tensors.items():
            if name not in done:
                out[LLM + name] = tensor
                groups.add("norms+biases", "fp32", tensor.numel(), [tensor])
        for part in ("bridge", "projection"):
            self._small_part(out, groups, getattr(model, part), part, shapes_only)
        for name, tensor in part_tensors(model, ("encoder",), shapes_only=shapes_only).items():
            out[name] = tensor.half() if tensor.is_floating_point() else tensor
            groups.add("encoder", "fp16", tensor.numel(), [out[name]])

        tied = f"{LLM}{merged.head}={LLM}{merged.embedding}" if merged.tied else ""
        notes = list(merged.notes)
        if self.ternary:
            notes.append(
                "decoder linears ternary (BitNet b1.58); embeddings, lm_head, Q-Former, projection int8"
            )
            notes.append("ternarising a model not trained for it (no QAT) gives garbage outputs")
        notes.append("norms and biases fp32; encoder stored fp16, computed fp32")
        return out, tied, ExportReport(groups.report(), tuple(notes))

    def export(self, model: Any, directory: Path) -> ExportReport:
        from safetensors.torch import save_file

        directory = Path(directory)
        out, tied, report = self._stored(model, shapes_only=False)
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in out.items()},
            str(weights_file(directory)),
            metadata={"format": self.format, "tied_head": tied},
        )
        write_llm_files(model.llm, directory, "float32")
        write_table(model, directory, init="random", dtype="float32")
        return report

    def estimate(self, model: Any) -> ExportReport:
        """:meth:`export`'s report from shapes alone (the same code on ``meta`` tensors)."""
        return self._stored(model, shapes_only=True)[2]

    def _small_part(
        self, out: dict, groups: _Groups, module: nn.Module, part: str, shapes_only: bool
    ) -> None:
        """The Q-Former or projection: its ``nn.Linear`` weights int8, everything else fp32."""
        linears = {f"{n}.weight" for n, m in module.named_modules() if isinstance(m, nn.Linear)}
        from microvlm.models.pretrained import all_tensors

        for name, source in all_tensors(module).items():
            key = f"{part}.{name}"
            tensor = as_meta(source) if shapes_only else source.detach()
            if name in linears:
                q, scale = quantize_int8(tensor)
                out[f"{key[: -len('.weight')]}.qweight"], out[f"{key[: -len('.weight')]}.scale"] = q, scale
                groups.add(part, PART, q.numel(), [q, scale])
            else:
                out[key] = tensor.float() if tensor.is_floating_point() else tensor
                groups.add(part, PART, tensor.numel(), [out[key]])

    # -- load ------------------------------------------------------------------------

    def load(self, directory: Path, *, plugins: Any, options: Mapping[str, Any] | None = None) -> Any:
        from safetensors import safe_open

        from microvlm.models.vlm import MicroVLM
        from microvlm.recipes.load import build_model_config
        from microvlm_quant.export_skeleton import materialise

        directory = Path(directory)
        file = weights_file(directory)
        tensors = read_tensors(file)
        with safe_open(str(file), "pt") as f:
            tied = (f.metadata() or {}).get("tied_head", "")
        head, _, embedding = tied.partition("=")
        table = read_table(directory, options, **{"llm.init": "random", "llm.dtype": "float32"})
        model = MicroVLM.from_config(
            build_model_config(table, plugins, str(directory)), plugins, device="meta"
        )
        if not embedding:
            base = model.llm.base_model
            names = {id(m): n for n, m in base.named_modules()}
            embedding = LLM + names[id(base.get_input_embeddings())]
        return materialise(model, tensors, str(file), head=head, embedding=embedding)


__all__ = ["Int8Exporter"]
