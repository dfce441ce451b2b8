"""Loading a quantised export: a weightless skeleton, quantised modules swapped in, no fp32 copy.

The model is built on the ``meta`` device from ``model.toml`` (``init = "random"``: shapes
only, no weight allocated); each layer stored quantised replaces its meta module
(:class:`~microvlm_quant.int8.Int8Linear`, :class:`~microvlm_quant.int8.Int8Embedding`,
:class:`~microvlm_quant.bitlinear.TernaryLinear`) built straight from the file's tensors, and
every other tensor (norms, biases, the encoder) is assigned in place of its meta tensor. Peak
memory is then the export's own size plus one layer's conversion, never the fp32 model.
Non-persistent buffers computed at construction (rotary ``inv_freq``) are rebuilt on the CPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import chain
from typing import Any

import torch
from torch import nn

from microvlm.io.layout import CheckpointError
from microvlm_quant.bitlinear import TernaryLinear
from microvlm_quant.int8 import Int8Embedding, Int8Linear


def swap_quantized(model: nn.Module, tensors: dict[str, torch.Tensor], source: str) -> set[str]:
    """Replace every module stored quantised (``.qweight`` / ``.packed`` keys) by its runtime
    module, in place; returns the keys consumed."""
    used: set[str] = set()
    for key in sorted(tensors):
        path, _, kind = key.rpartition(".")
        if kind not in ("qweight", "packed"):
            continue
        try:
            old = model.get_submodule(path)
        except AttributeError:
            raise CheckpointError(f"{source}: {key} names no module of this model") from None
        scale, bias = tensors[f"{path}.scale"], tensors.get(f"{path}.bias")
        if kind == "packed":
            new: nn.Module = TernaryLinear(tensors[key], scale, old.out_features, old.in_features, bias)
        elif isinstance(old, nn.Embedding):
            new = Int8Embedding(tensors[key], scale, dtype=torch.float32)
        else:
            new = Int8Linear(tensors[key], scale, bias)
        model.set_submodule(path, new)
        used |= {key, f"{path}.scale"} | ({f"{path}.bias"} if bias is not None else set())
    return used


def assign_rest(model: nn.Module, tensors: Mapping[str, torch.Tensor], source: str) -> None:
    """Put each tensor in place of the model's (meta) tensor of that name; floats as float32."""
    for key, tensor in tensors.items():
        path, _, name = key.rpartition(".")
        try:
            module = model.get_submodule(path)
        except AttributeError:
            raise CheckpointError(f"{source}: {key} names no module of this model") from None
        value = tensor.float() if tensor.is_floating_point() else tensor
        if name in module._parameters:
            module._parameters[name] = nn.Parameter(value, requires_grad=False)
        elif name in module._buffers:
            module._buffers[name] = value
        else:
            raise CheckpointError(f"{source}: {key} is not a tensor of this model")


def rebuild_buffers(model: nn.Module) -> None:
    """Rebuild on the CPU the modules whose computed buffers are still on ``meta`` (rotary
    embeddings: ``type(m)(config=m.config)``)."""
    for name, module in list(model.named_modules()):
        if any(b.is_meta for b in module.buffers(recurse=False)) and hasattr(module, "config"):
            model.set_submodule(name, type(module)(config=module.config))


def check_complete(model: nn.Module, source: str) -> None:
    """Every parameter and buffer has data; :class:`CheckpointError` listing those that do not."""
    missing = [n for n, t in chain(model.named_parameters(), model.named_buffers()) if t.is_meta]
    if missing:
        shown = ", ".join(missing[:8]) + (f" (+{len(missing) - 8} more)" if len(missing) > 8 else "")
        raise CheckpointError(f"{source}: {len(missing)} tensors of the model are not in the file: {shown}")


def materialise(
    model: Any, tensors: dict[str, torch.Tensor], source: str, *, head: str, embedding: str
) -> Any:
    """Turn the meta skeleton ``model`` into the runnable quantised model (see the module docstring).

    :param head: / :param embedding: module names of the lm_head and the table it is tied to
        (``head`` empty when the head is stored on its own).
    """
    used = swap_quantized(model, tensors, source)
    if head:
        table = model.get_submodule(embedding)
        model.set_submodule(head, table.as_linear() if isinstance(table, Int8Embedding) else _tied(table))
    assign_rest(model, {k: v for k, v in tensors.items() if k not in used}, source)
    if head and not isinstance(model.get_submodule(embedding), Int8Embedding):
        model.get_submodule(head).weight = model.get_submodule(embedding).weight  # the same tensor
    rebuild_buffers(model)
    check_complete(model, source)
    model.requires_grad_(False)
    return model.eval()


def _tied(table: nn.Embedding) -> nn.Linear:
    """A bias-free head over a float table (its weight is tied once the table is loaded)."""
    return nn.Linear(table.embedding_dim, table.num_embeddings, bias=False, device="meta")


__all__ = ["materialise"]
