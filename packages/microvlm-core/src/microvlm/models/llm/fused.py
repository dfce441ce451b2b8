"""Memory-lean pieces for training through a frozen causal LM.

- :func:`frozen_head_cross_entropy`: mean cross-entropy of ``hidden @ W.T`` for a frozen
  output head (``lm_head``, 151,936 wide for Qwen). The forward computes the loss and the
  gradient with respect to ``hidden`` chunk by chunk, so at most ``chunk x V`` logits exist
  at a time and none is kept for backward (autograd's path keeps the log-probabilities
  ``[M, V]`` and allocates two more ``[M, V]`` tensors at the start of backward, which is
  when the decoder's activations are all alive: the step's memory peak). Same idea as the
  fused linear cross-entropy of Liger-Kernel (Hsu et al. 2024, arXiv:2410.10989).
- :func:`swiglu_lean`: ``silu(gate) * up`` (the MLP of Llama/Qwen) keeping ``gate`` and
  ``up`` for backward instead of also ``silu(gate)``: one ``[B, T, I]`` tensor less per
  decoder layer, for the price of recomputing ``silu`` in backward.
- :func:`use_lean_mlps`: routes every gated SiLU MLP of a transformers model through
  :func:`swiglu_lean`.

Notation: M labelled positions, D hidden width, V vocabulary, I MLP inner width.
"""

from __future__ import annotations

import types
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

#: Logits computed at once by :func:`frozen_head_cross_entropy` (128 MiB in fp32).
HEAD_CHUNK_ELEMENTS = 1 << 25


class _FrozenHeadCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, head: Callable | None
    ) -> torch.Tensor:
        M, V = hidden.shape[0], weight.shape[0]
        chunks = -(-M * V // HEAD_CHUNK_ELEMENTS)  # ceil: as few as fit, of equal size
        rows = -(-M // chunks)  # (few tiny chunks would re-read the V x D weight for little work)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad = torch.empty_like(hidden)  # (M, D): d loss / d hidden
        for start in range(0, M, rows):
            h, y = hidden[start : start + rows], labels[start : start + rows]  # (c, D), (c,)
            logits = (head(h) if head is not None else h @ weight.T).float()  # (c, D) -> (c, V)
            target = logits.gather(1, y[:, None])  # (c, 1)
            peak = logits.amax(dim=-1, keepdim=True)  # (c, 1)
            probs = logits.sub_(peak).exp_()  # (c, V) unnormalised, in place
            norm = probs.sum(dim=-1, keepdim=True)  # (c, 1)
            total += (norm.log() + peak - target).sum()  # sum of logsumexp - target logit
            probs.div_(norm)  # softmax
            probs[torch.arange(len(y), device=y.device), y] -= 1.0  # softmax - one-hot
            grad[start : start + rows] = (probs.to(weight.dtype) @ weight) / M  # (c, V) @ (V, D)
        ctx.save_for_backward(grad)
        return total / M

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor) -> tuple:
        (grad,) = ctx.saved_tensors
        return grad * grad_loss.to(grad.dtype), None, None, None


def frozen_head_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, head: Callable | None = None
) -> torch.Tensor:
    """Mean cross-entropy of ``hidden [M, D] @ weight.T [D, V]`` against ``labels [M]``.

    Use it for a head whose ``weight`` takes no gradient; ``hidden`` gets its gradient.
    Equal to ``F.cross_entropy((hidden @ weight.T).float(), labels)`` (fp32 softmax).

    :param head: computes the logits of a chunk of rows (``[c, D] -> [c, V]``), e.g. the
        model's ``lm_head`` module; default ``h @ weight.T``.
    """
    if weight.requires_grad:
        raise ValueError("frozen_head_cross_entropy needs a frozen head (weight.requires_grad is True)")
    return _FrozenHeadCrossEntropy.apply(hidden, weight, labels, head)


class _SwiGLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(gate, up)
        return F.silu(gate) * up  # (..., I)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple:
        gate, up = ctx.saved_tensors
        grad_gate = grad_up = None
        if ctx.needs_input_grad[0]:
            grad_gate = torch.ops.aten.silu_backward(grad * up, gate)
        if ctx.needs_input_grad[1]:
            grad_up = F.silu(gate).mul_(grad)
        return grad_gate, grad_up


def swiglu_lean(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """``silu(gate) * up``; autograd keeps ``gate`` and ``up`` only."""
    if torch.is_grad_enabled() and (gate.requires_grad or up.requires_grad):
        return _SwiGLU.apply(gate, up)
    return F.silu(gate) * up


def _lean_mlp_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``down(silu(gate(x)) * up(x))``, the forward of Llama/Qwen MLPs, with :func:`swiglu_lean`."""
    hidden = swiglu_lean(self.gate_proj(x), self.up_proj(x))  # (B, T, D) -> (B, T, I)
    return self.down_proj(hidden)  # (B, T, I) -> (B, T, D)


def _is_silu(module: nn.Module) -> bool:
    return isinstance(module, nn.SiLU) or type(module).__name__ == "SiLUActivation"


def use_lean_mlps(model: nn.Module) -> int:
    """Route each gated SiLU MLP (``gate_proj``, ``up_proj``, ``down_proj``, SiLU ``act_fn``)
    through :func:`swiglu_lean`; the same function, less activation memory. Returns how many."""
    count = 0
    for module in model.modules():
        if all(hasattr(module, n) for n in ("gate_proj", "up_proj", "down_proj", "act_fn")) and _is_silu(
            module.act_fn
        ):
            module.forward = types.MethodType(_lean_mlp_forward, module)
            count += 1
    return count


__all__ = ["HEAD_CHUNK_ELEMENTS", "frozen_head_cross_entropy", "swiglu_lean", "use_lean_mlps"]
