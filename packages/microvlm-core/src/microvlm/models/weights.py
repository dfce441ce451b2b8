"""Moving trained weights between models: by parameter name, through peft's renaming.

peft wraps the LLM (``llm.model.X`` becomes ``llm.model.base_model.model.X``) and moves a
LoRA-targeted layer's weight to ``….base_layer.weight``. A stage that adds LoRA must still
load the LLM weights an earlier stage trained without it, so names are matched on a
canonical form with both renamings undone.

A model remembers which parameters it received from a checkpoint (``model.carried``):
checkpoints save those together with the trainable ones, so weights trained in an early
stage (say, a from-scratch LLM) travel through every later checkpoint.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from microvlm.errors import MicroVLMError

_PEFT_WRAP = re.compile(r"(^|\.)base_model\.model\.")
_BASE_LAYER = ".base_layer."


def canonical(name: str) -> str:
    """A parameter name with peft's renaming undone."""
    return _PEFT_WRAP.sub(r"\1", name).replace(_BASE_LAYER, ".")


def apply_weights(model: nn.Module, weights: dict[str, torch.Tensor], source: str) -> int:
    """Copy ``weights`` into ``model``'s parameters by (canonical) name; returns the count.

    Names the model does not have and shape mismatches are errors naming ``source``.
    Loaded names are added to ``model.carried`` (created if missing).
    """
    params = dict(model.named_parameters())
    by_canonical = {canonical(n): n for n in params}
    unknown, mismatched, loaded = [], [], []
    with torch.no_grad():
        for name, tensor in weights.items():
            target = name if name in params else by_canonical.get(canonical(name))
            if target is None:
                unknown.append(name)
            elif params[target].shape != tensor.shape:
                mismatched.append(f"{name} {tuple(tensor.shape)} vs {tuple(params[target].shape)}")
            else:
                params[target].copy_(tensor)
                loaded.append(target)
    if unknown or mismatched:
        parts = []
        if unknown:
            parts.append(f"{len(unknown)} weights this model does not have (e.g. {sorted(unknown)[:3]})")
        if mismatched:
            parts.append(f"{len(mismatched)} with other shapes (e.g. {mismatched[:3]})")
        raise MicroVLMError(
            f"{source}: {'; '.join(parts)}; was it trained with a different model configuration?"
        )
    carried = getattr(model, "carried", None)
    if carried is None:
        carried = set()
        model.carried = carried  # type: ignore[assignment]
    carried.update(loaded)
    return len(loaded)


def weights_to_save(model: nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters plus those the model received from a checkpoint, by name."""
    carried = getattr(model, "carried", set())
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad or n in carried}
