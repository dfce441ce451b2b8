"""BitNet b1.58 linear layers: one for quantisation-aware training, one for packed inference.

References:

- Ma et al. 2024, "The Era of 1-bit LLMs: All Large Language Models are in 1.58 Bits"
  (arXiv:2402.17764) and its "Training Tips, Code and FAQ": ``BitLinear`` quantises weights
  (absmean, ternary) and activations (absmax, 8-bit per token) in the forward pass and trains
  the full-precision weights through a straight-through estimator,
  ``w + (quant(w) - w).detach()``.
- Hugging Face, "Fine-tuning LLMs to 1.58bit: extreme quantization made easy" (2024): a
  pretrained model is fine-tuned to ternary with a *gradual* quantisation, ``w + lam *
  (quant(w) - w).detach()`` with ``lam`` warmed up from 0 to 1 (same for activations).

``BitLinearQAT`` does not add the RMSNorm that the training-tips ``BitLinear`` puts before the
activation quantiser: in a pretrained transformer the projections already follow the model's
own norms, and ``lam = 0`` must be exactly the ``nn.Linear`` it replaces.

``TernaryLinear`` speed, ms per call on this CPU (AMD EPYC, AVX2 only, 1 thread, torch 2.14.1,
best of 5-30, the better of two runs; per-token activation quantisation included except in the
fp32 column, which is a dense float32 ``F.linear`` of the same shape):

=====================  ==  ======  =========  ==============  ================
shape [out, in]        M   fp32    _int_mm    int8pack_mm     chunked (chosen)
=====================  ==  ======  =========  ==============  ================
q/o 896x896            1   0.078   0.62       0.93            0.32
q/o 896x896            8   0.36    4.7        7.0             0.57
k/v 128x896            1   0.014   0.13       0.16            0.14
k/v 128x896            8   0.044   0.68       1.01            0.18
gate/up 4864x896       1   1.24    3.2        4.7             1.35
gate/up 4864x896       8   4.05    26.3       38.1            2.64
down 896x4864          1   0.54    3.5        4.9             1.26
down 896x4864          8   2.79    24.5       36.4            2.53
lm_head 151936x896     1   41.8    100        197             34.3
lm_head 151936x896     8   164     857        1203            70.5
=====================  ==  ======  =========  ==============  ================

``torch._int_mm(x_q int8 [M, K], trits.T int8 [K, N]) -> int32`` (exact integer arithmetic; it
runs on the CPU here at any M, fastest with the transposed view rather than a contiguous
``[K, N]`` copy) is 2.4-15x slower than fp32 on a CPU without VNNI, and ``_weight_int8pack_mm``
with the trits as int8 weights and ``gamma`` as every row's scale is slower still. So the
forward pass runs the chunked kernel of ``microvlm_quant.int8`` on the int8 trits with the
integer-valued float activations ``x_q``, then rescales by ``gamma * max|x| / 127`` per token.
Each output is a sum of ``in`` products of magnitude <= 127, below 2**24 for ``in`` < 132000,
so float32 accumulates it exactly: the integer matmul's result bit for bit before the rescale.
Against dense fp32 it is faster on the MLP at M = 8 (0.65-0.9x the time) and on the lm_head
(0.4-0.8x), slower on the MLP at M = 1 (1.1-2.3x) and on the attention projections (1.6-4x on
q/o; up to 10x on the tiny k/v, where the activation quantisation's fixed ~0.07 ms dominates),
with 1 byte per weight in memory and 1.6 bits on disk. Beating fp32 there needs a real ternary
kernel (lookup tables or add/subtract, as in bitnet.cpp); not done here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from microvlm_quant.int8 import int8_matmul
from microvlm_quant.ternary import (
    activation_fake_quant,
    activation_quant,
    pack_trits,
    ternarize,
    unpack_trits,
    weight_fake_quant,
)


class BitLinearQAT(nn.Linear):
    """``nn.Linear`` whose forward fake-quantises weights and activations, mixed in by ``lam``.

    ``w_eff = w + lam * (quant(w) - w).detach()`` and the same for the input, so the gradient
    always reaches the full-precision shadow weights as if the layer were linear (STE). ``lam``
    is a plain float: 0 is exactly ``nn.Linear``, 1 is the BitNet b1.58 forward.
    """

    lam: float

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        lam: float = 1.0,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.lam = lam

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight  # [out, in]
        if self.lam == 0.0:
            return F.linear(x, w, self.bias)
        x_eff = x + self.lam * (activation_fake_quant(x) - x).detach()  # [..., in]
        w_eff = w + self.lam * (weight_fake_quant(w) - w).detach()  # [out, in]
        return F.linear(x_eff, w_eff, self.bias)  # [..., out]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, lam={self.lam}"


def replace_linears(module: nn.Module, *, skip: set[str], lam: float = 0.0) -> int:
    """Swap every ``nn.Linear`` under ``module`` for a ``BitLinearQAT``, in place.

    The new layers take over the old ``weight`` / ``bias`` parameters themselves (ties and
    optimiser references survive). Starts at ``lam = 0`` (a no-op until warmed up).

    :param skip: names to leave alone: a qualified name (``"model.lm_head"``) or a last
        component (``"lm_head"``).
    :returns: how many layers were replaced.
    """
    replaced = 0
    for parent_name, parent in list(module.named_modules()):
        for name, child in list(parent.named_children()):
            qualified = f"{parent_name}.{name}" if parent_name else name
            if type(child) is not nn.Linear or name in skip or qualified in skip:
                continue
            new = BitLinearQAT(child.in_features, child.out_features, bias=False, device="meta", lam=lam)
            new.weight = child.weight
            new.bias = child.bias
            setattr(parent, name, new)
            replaced += 1
    return replaced


def set_lambda(module: nn.Module, lam: float) -> int:
    """Set ``lam`` on every ``BitLinearQAT`` under ``module``; returns how many were set."""
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam mixes full precision (0) and quantised (1); got {lam}")
    layers = [m for m in module.modules() if isinstance(m, BitLinearQAT)]
    for layer in layers:
        layer.lam = float(lam)
    return len(layers)


class TernaryLinear(nn.Module):
    """Inference runtime of a packed BitNet b1.58 layer.

    State (what an export stores): ``packed`` uint8 ``[ceil(out * in / 5)]``, ``scale`` float32
    0-d (``gamma``) and an optional ``bias`` ``[out]``. At construction the trits are unpacked once
    to an int8 ``[out, in]`` compute form (a non-persistent buffer, 1 byte per weight).
    """

    packed: torch.Tensor
    scale: torch.Tensor
    bias: torch.Tensor | None
    trits: torch.Tensor

    def __init__(
        self,
        packed: torch.Tensor,
        scale: torch.Tensor,
        out_features: int,
        in_features: int,
        bias: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        n = out_features * in_features
        assert packed.dtype == torch.uint8, f"packed trits are uint8, got {packed.dtype}"
        assert packed.numel() == math.ceil(n / 5), f"{packed.numel()} bytes cannot be {n} trits"
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("packed", packed)
        self.register_buffer("scale", scale.detach().float().reshape(()))
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        trits = unpack_trits(packed, n).view(out_features, in_features)  # [out, in] in {-1, 0, 1}
        self.register_buffer("trits", trits, persistent=False)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> TernaryLinear:
        """Ternarise (per-tensor absmean) and pack ``linear``'s weight; the bias is kept."""
        trits, gamma = ternarize(linear.weight)
        return cls(pack_trits(trits), gamma, linear.out_features, linear.in_features, linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_q, step = activation_quant(x)  # [..., in] int8, [..., 1] float32
        y = int8_matmul(x_q.float(), self.trits, self.scale)  # [..., out], integer sums * gamma
        y = y * step  # per-token rescale
        if self.bias is not None:
            y = y + self.bias.float()
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        )
