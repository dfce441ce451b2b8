"""Ablations of our training step: each lever switched off (or on) alone.

``python benchmarks/train_step.py --ablations`` times MicroVLM once per variant, in its own
subprocess like the main comparison, so each lever gets its own number:

- ``full_logits``: ``lm_head`` + cross-entropy on all B x (Q+T) positions, as BLIP-2 does,
  instead of on the labelled positions only;
- ``autograd_head``: labelled positions only, but ``lm_head`` + ``F.cross_entropy`` through
  autograd instead of the chunked frozen-head loss (``microvlm.models.llm.fused``);
- ``masked_decoder``: the decoder gets the padding mask (explicit ``[B, 1, S, S]`` mask,
  KV heads copied per query head) instead of the causal fast path for right padding;
- ``eager_attention``: transformers' eager attention in the LLM instead of SDPA;
- ``plain_mlp``: the stock MLP forward (autograd keeps ``silu(gate)`` as well);
- ``llm_weight_grads``: the frozen LLM's parameters left with ``requires_grad`` (autograd
  computes weight gradients nobody uses; a mistake this project avoids);
- ``compile``: ``torch.compile`` on each decoder layer (compile time is in the warm-up);
- ``unpadded``: not a switch but the padding's cost: the same batch with every text cut or
  extended to the mean length (no padding, about the same token count), which is what
  length-bucketed batches approach.
"""

from __future__ import annotations

import types
from typing import Any

import torch
import torch.nn.functional as F

import common

VARIANTS = (
    "full_logits",
    "autograd_head",
    "masked_decoder",
    "eager_attention",
    "plain_mlp",
    "llm_weight_grads",
    "compile",
    "unpadded",
)


def _forward(
    self: Any,
    images: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
    *,
    full_logits: bool = False,
    masked: bool = False,
    lean_head: bool = True,
) -> Any:
    """MicroVLM.forward with its levers as switches (the defaults are what the model does)."""
    from microvlm.models.vlm import VLMOutput

    predictors = self.text_predictors(images, input_ids, attention_mask, force_mask=masked)  # (B, T, D_l)
    selected = labels != common.IGNORE
    if full_logits:
        logits = self.llm.lm_head(predictors).float()  # (B, T, V): every position
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=common.IGNORE)
    elif lean_head:
        loss = self.llm.loss(predictors[selected], labels[selected])
    else:
        loss = F.cross_entropy(self.llm.lm_head(predictors[selected]).float(), labels[selected])
    return VLMOutput(loss, int(selected.sum()))


def apply(model: Any, variant: str) -> None:
    """Switch one lever of a built MicroVLM (in place)."""
    switches = {
        "full_logits": {"full_logits": True},
        "autograd_head": {"lean_head": False},
        "masked_decoder": {"masked": True},
    }
    if variant in switches:
        model.forward = types.MethodType(
            lambda self, *a, **k: _forward(self, *a, **k, **switches[variant]), model
        )
    elif variant == "eager_attention":
        model.llm.base_model.set_attn_implementation("eager")
    elif variant == "plain_mlp":
        for module in model.llm.base_model.modules():
            module.__dict__.pop("forward", None)  # drop the lean forward: the class's again
    elif variant == "llm_weight_grads":
        model.llm.base_model.requires_grad_(True)
    elif variant == "compile":
        for layer in model.llm.base_model.model.layers:
            layer.compile(dynamic=True)
    elif variant not in ("default", "unpadded"):
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")


def unpadded(batch: common.Batch) -> common.Batch:
    """The batch with every text at the (rounded) mean length: no padding, same images."""

    def fit(ids: list[int], n: int) -> list[int]:
        return (ids * (n // max(1, len(ids)) + 1))[:n] if ids else []

    mean_prompt = round(sum(len(p) for p in batch.prompts) / batch.size)
    mean_target = round(batch.num_targets / batch.size)
    return common.Batch(
        batch.images,
        [fit(p, mean_prompt) for p in batch.prompts],
        [fit(t, mean_target) for t in batch.targets],
    )
