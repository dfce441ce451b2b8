"""What every exporter of microvlm-quant shares: the merged LLM weights, the folder's side files,
and reading an export back safely.

An export folder (core adds ``manifest.json`` after :meth:`export` returns)::

    model.toml                the [model] table that rebuilds the architecture offline
    model.safetensors         the weights (the fp16/bf16 exporters: all but the LLM's)
    preprocessor_config.json  the encoder's image ``data_config`` (input size, mean, std)
    llm/                      the LLM's config.json, generation_config.json, tokenizer files
                              (fp16/bf16: also its model.safetensors, a plain HF folder)

LoRA is merged with peft's own ``get_delta_weight`` (``W + B @ A * alpha / r``), without
changing the source model; a 4-bit (QLoRA) base is dequantised with bitsandbytes'
``dequantize_4bit`` first. Everything read back is untrusted: ``model.toml`` goes through
core's :func:`~microvlm.models.pretrained.distrust`, and a damaged safetensors file is a
:class:`~microvlm.io.layout.CheckpointError` naming it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from microvlm.contracts.quant import TensorGroup
from microvlm.errors import MicroVLMError
from microvlm.io.layout import WEIGHTS, CheckpointError, first_line
from microvlm.models.pretrained import (
    LLM_DIR,
    MODEL_TABLE,
    apply_options,
    distrust,
    model_table,
    read_model_table,
)

logger = logging.getLogger(__name__)

PREPROCESSOR = "preprocessor_config.json"
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


@attrs.frozen
class MergedLLM:
    """The LLM's weights as one plain transformers model would hold them (LoRA merged)."""

    tensors: dict[str, torch.Tensor]  # HF names ("model.layers.0.mlp.up_proj.weight"), fp32 floats
    linears: tuple[str, ...]  # module names of the linear layers whose weight is in ``tensors``
    embedding: str  # module name of the input embedding ("model.embed_tokens")
    head: str  # module name of the output head ("lm_head")
    tied: bool  # the head's weight is the embedding table (stored once)
    notes: tuple[str, ...]  # what merging did, for the report


def _is_lora(module: nn.Module) -> bool:
    return hasattr(module, "base_layer") and hasattr(module, "lora_A") and hasattr(module, "get_delta_weight")


def _float_weight(linear: nn.Module, shapes_only: bool = False) -> tuple[torch.Tensor, bool]:
    """The layer's weight in fp32 and whether it was 4-bit (bitsandbytes ``Params4bit``, whose
    own shape is the packed one: its ``quant_state.shape`` is the weight's). ``shapes_only``:
    an fp32 tensor of that shape on ``meta`` instead (nothing dequantised)."""
    weight = linear.weight
    state = getattr(weight, "quant_state", None)
    if shapes_only:
        shape = weight.shape if state is None else torch.Size(state.shape)
        return torch.empty(shape, dtype=torch.float32, device="meta"), state is not None  # [out, in]
    if state is None:
        return weight.detach().float(), False
    import bitsandbytes as bnb

    return bnb.functional.dequantize_4bit(weight.data, state).float(), True  # [out, in]


def as_meta(tensor: torch.Tensor) -> torch.Tensor:
    """A tensor of ``tensor``'s shape and dtype on ``meta``: what the shape arithmetic of an
    estimate runs on (``numel``, ``element_size``, quantisers' output shapes; no data)."""
    return torch.empty(tensor.shape, dtype=tensor.dtype, device="meta")


def merged_llm(lm: Any, *, shapes_only: bool = False) -> MergedLLM:
    """The merged weights of ``lm`` (a :class:`~microvlm.contracts.model.LanguageModel`); the
    source model is not changed. A tensor shared by two modules appears once (first name).

    :param shapes_only: every tensor as a ``meta`` tensor of its merged shape and dtype: no LoRA
        product, no dequantisation, and ``lm`` may itself be on ``meta`` (what exporters'
        ``estimate`` walks; names, linears, tying and notes are those of the real merge).
    """
    base = lm.base_model
    names = {id(m): n for n, m in base.named_modules()}
    embedding, head = names[id(base.get_input_embeddings())], names[id(base.get_output_embeddings())]
    tied = base.get_output_embeddings().weight is base.get_input_embeddings().weight
    tensors: dict[str, torch.Tensor] = {}
    linears: list[str] = []
    seen: set[int] = set()
    merged = dequantised = 0

    def add(name: str, tensor: torch.Tensor | None, source: Any = None) -> bool:
        key = id(tensor if source is None else source)
        if tensor is None or key in seen:
            return False
        seen.add(key)
        value = as_meta(tensor) if shapes_only and not tensor.is_meta else tensor.detach()
        tensors[name] = value.float() if value.is_floating_point() else value
        return True

    def walk(module: nn.Module, prefix: str) -> None:
        nonlocal merged, dequantised
        if _is_lora(module):
            weight, four_bit = _float_weight(module.base_layer, shapes_only)
            if not shapes_only and not getattr(module, "merged", False):
                for adapter in module.active_adapters:
                    if adapter in module.lora_A:
                        weight = weight + module.get_delta_weight(adapter).float()  # [out, in]
            merged += 1
            dequantised += four_bit
            add(f"{prefix}weight", weight, module.base_layer.weight)
            add(f"{prefix}bias", module.base_layer.bias)
            linears.append(prefix[:-1])
            return
        if isinstance(module, nn.Linear):
            weight, four_bit = _float_weight(module, shapes_only)
            dequantised += four_bit
            if add(f"{prefix}weight", weight, module.weight):
                linears.append(prefix[:-1])
            add(f"{prefix}bias", module.bias)
            return
        for name, p in module._parameters.items():
            add(prefix + name, p)
        for name, b in module._buffers.items():
            if name not in module._non_persistent_buffers_set:
                add(prefix + name, b)
        for name, child in module._modules.items():
            if child is not None:
                walk(child, f"{prefix}{name}.")

    walk(base, "")
    notes = []
    if merged:
        notes.append(f"LoRA merged into the base weights ({merged} layers, peft get_delta_weight)")
    if dequantised:
        notes.append(f"QLoRA base dequantised from 4 bits first ({dequantised} layers, bitsandbytes)")
    if tied:
        notes.append(f"lm_head tied to the embeddings ({embedding}): stored once")
    return MergedLLM(tensors, tuple(linears), embedding, head, tied, tuple(notes))


def part_tensors(
    model: nn.Module,
    parts: tuple[str, ...] = ("encoder", "bridge", "projection"),
    *,
    shapes_only: bool = False,
) -> dict[str, torch.Tensor]:
    """Parameters and persistent buffers of the non-LLM parts, by their MicroVLM names
    (``shapes_only``: as ``meta`` tensors, see :func:`as_meta`)."""
    from microvlm.models.pretrained import all_tensors

    own = as_meta if shapes_only else torch.Tensor.detach
    return {f"{p}.{k}": own(v) for p in parts for k, v in all_tensors(getattr(model, p)).items()}


def nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def group(
    name: str, tensors: Mapping[str, torch.Tensor], storage: str, parameters: int | None = None
) -> TensorGroup:
    """A report group of ``tensors`` (their bytes as stored); ``parameters`` defaults to their size."""
    size = sum(t.numel() for t in tensors.values()) if parameters is None else parameters
    return TensorGroup(name, size, sum(nbytes(t) for t in tensors.values()), storage)


# -- side files --------------------------------------------------------------------------


def write_llm_files(lm: Any, directory: Path, dtype: str) -> Path:
    """``llm/``: the transformers config (dtype set, no quantization_config), the generation
    config and the tokenizer. Returns the folder."""
    llm_dir = directory / LLM_DIR
    llm_dir.mkdir()
    values = lm.hf_config.to_dict()
    values.pop("quantization_config", None)  # the export is not 4-bit any more
    values.pop("torch_dtype", None)
    values["dtype"] = dtype
    (llm_dir / "config.json").write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
    generation = getattr(lm.base_model, "generation_config", None)
    if generation is not None:
        try:
            generation.save_pretrained(str(llm_dir))
        except ValueError as exc:  # transformers refuses inconsistent settings; loading does not need it
            logger.warning("%s: generation_config.json not written: %s", llm_dir, exc)
    lm.tokenizer.save_pretrained(str(llm_dir))
    return llm_dir


def write_table(model: Any, directory: Path, *, init: str, dtype: str) -> None:
    """``model.toml``: the model's table with the LLM read from ``llm/`` (no adapter, offline
    encoder) and ``preprocessor_config.json``: the encoder's ``data_config``."""
    import tomli_w

    table = model_table(model.config)
    llm = table["llm"]
    llm.update(model=LLM_DIR, tokenizer="", init=init, adapter="none", dtype=dtype)
    if "pretrained" in table["encoder"]:
        table["encoder"]["pretrained"] = "none"  # its weights are in model.safetensors
    (directory / MODEL_TABLE).write_text(tomli_w.dumps({"model": table}))
    data_config = dict(getattr(model.encoder, "data_config", {}) or {})
    (directory / PREPROCESSOR).write_text(json.dumps(data_config, indent=2, default=list) + "\n")


def read_table(directory: Path, options: Mapping[str, Any] | None, **fixed: Any) -> dict[str, Any]:
    """The export's ``[model]`` table (distrusted), its LLM pointed at ``directory/llm``, then
    ``fixed`` (the exporter's own settings) and ``options`` (the caller's) applied."""
    file = directory / MODEL_TABLE
    if not file.is_file():
        raise MicroVLMError(f"{directory}: no {MODEL_TABLE}; not an export folder")
    table = distrust(read_model_table(file), str(file))
    llm_dir = directory / LLM_DIR
    if not (llm_dir / "config.json").is_file():
        raise MicroVLMError(f"{llm_dir}: no config.json; the export is incomplete")
    values = {"llm.model": str(llm_dir), "llm.tokenizer": "", "llm.adapter": "none", **fixed}
    apply_options(table, {**values, **(options or {})}, str(file))
    return table


def read_tensors(file: Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file; :class:`CheckpointError` naming it if it is damaged."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{file}: not a readable safetensors file ({first_line(exc)})") from None


def check_tensors(file: Path) -> None:
    """Read ``file``'s header (cheap); :class:`CheckpointError` naming it if it is damaged."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), "pt") as f:
            f.keys()
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{file}: not a readable safetensors file ({first_line(exc)})") from None


def weights_file(directory: Path) -> Path:
    return directory / WEIGHTS


__all__ = [
    "DTYPES",
    "PREPROCESSOR",
    "MergedLLM",
    "as_meta",
    "check_tensors",
    "group",
    "merged_llm",
    "nbytes",
    "part_tensors",
    "read_table",
    "read_tensors",
    "write_llm_files",
    "write_table",
]
