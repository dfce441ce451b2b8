"""BitNet b1.58 quantisers and the 5-trits-per-byte packing of ternary weights.

References:

- Ma et al. 2024, "The Era of 1-bit LLMs: All Large Language Models are in 1.58 Bits"
  (arXiv:2402.17764), eq. 1-3: weights are scaled by their absolute mean
  ``gamma = mean(|W|)`` and rounded to ``RoundClip(W / (gamma + eps), -1, 1)``; activations are
  quantised to 8 bits absmax *per token*, ``Clip(Round(x * 127 / max|x|), -128, 127)``, with no
  zero point.
- "The Era of 1-bit LLMs: Training Tips, Code and FAQ" (Microsoft, 2024), whose reference code
  guards the divisions with ``clamp(min=1e-5)`` rather than adding ``eps``; we follow the code
  (same value for any non-degenerate tensor, and ``W_q * gamma`` is then exactly what the
  forward pass used).

The weight scale is **per tensor** (one ``gamma`` per matrix), as in the paper: a single float32
per layer, so the packed payload alone sets the bits per weight.

Packing: a trit has 3 states, so 5 trits take 3**5 = 243 <= 256 codes and fit one byte, i.e.
8 / 5 = **1.6 bits per weight**, the target of issue #16 (<= 1.60). The obvious 2-bit packing
(4 weights a byte, a 4th code unused) costs 2.0 bits per weight, 25 % more. The information
bound is log2(3) = 1.585; 5-per-byte is within 1 % of it and still decodes with integer division,
vectorised over the whole tensor. A tensor of ``n`` weights packs into ``ceil(n / 5)`` bytes, so a
length that is not a multiple of 5 pays for at most one partly used byte
(bits per weight <= 1.6 + 8 / n).
"""

from __future__ import annotations

import torch

EPS = 1e-5
"""Floor of the scales' denominators (``clamp(min=EPS)``), as in the training-tips code."""

TRITS_PER_BYTE = 5
_POWERS = (1, 3, 9, 27, 81)  # 3**i: digit i of a byte is (byte // 3**i) % 3


def ternarize(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Absmean ternary quantisation of a weight tensor (BitNet b1.58, eq. 1-3).

    :param weight: float weights of any shape, e.g. ``[out, in]``.
    :returns: ``(trits, scale)``: ``trits`` int8 of ``weight``'s shape with values in
        ``{-1, 0, 1}``, and ``scale`` a float32 0-d tensor (per-tensor ``gamma``) such that
        ``trits * scale`` is the dequantised weight.
    """
    w = weight.detach().float()
    gamma = w.abs().mean().clamp(min=EPS)  # () per-tensor absmean
    trits = (w / gamma).round().clamp(-1, 1).to(torch.int8)
    return trits, gamma


def weight_fake_quant(weight: torch.Tensor) -> torch.Tensor:
    """``ternarize`` then dequantise, in ``weight``'s dtype (the training-tips ``weight_quant``)."""
    gamma = weight.abs().mean().clamp(min=EPS)
    return (weight / gamma).round().clamp(-1, 1) * gamma


def activation_quant(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """8-bit absmax quantisation of activations, one scale per token (last dim).

    :param x: float activations ``[..., D]``.
    :returns: ``(x_q, step)``: ``x_q`` int8 ``[..., D]`` in ``[-128, 127]`` and ``step``
        float32 ``[..., 1]`` (``max|x| / 127``) such that ``x_q * step`` approximates ``x``.
    """
    step = x.detach().float().abs().amax(dim=-1, keepdim=True).clamp(min=EPS) / 127.0  # [..., 1]
    x_q = (x.float() / step).round().clamp(-128, 127).to(torch.int8)
    return x_q, step


def activation_fake_quant(x: torch.Tensor) -> torch.Tensor:
    """``activation_quant`` then dequantise, in ``x``'s dtype (the training-tips ``activation_quant``)."""
    scale = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=EPS)  # [..., 1]
    return (x * scale).round().clamp(-128, 127) / scale


def pack_trits(trits: torch.Tensor) -> torch.Tensor:
    """Pack ternary values five to a byte, base 3, first trit in the lowest digit.

    :param trits: integer tensor with values in ``{-1, 0, 1}`` (flattened in row-major order).
    :returns: uint8 ``[ceil(n / 5)]``, each byte in ``[0, 242]``.
    """
    flat = trits.reshape(-1)
    if flat.numel() and (flat.min() < -1 or flat.max() > 1):
        raise ValueError("pack_trits takes values in {-1, 0, 1} only")
    digits = (flat.to(torch.int16) + 1).to(torch.uint8)  # [n] in {0, 1, 2}
    pad = (-digits.numel()) % TRITS_PER_BYTE
    digits = torch.cat([digits, digits.new_zeros(pad)]).view(-1, TRITS_PER_BYTE)  # [n/5, 5]
    powers = torch.tensor(_POWERS, dtype=torch.uint8, device=digits.device)  # [5]
    return (digits * powers).sum(dim=1, dtype=torch.int16).to(torch.uint8)  # [n/5], max 242 fits


def unpack_trits(packed: torch.Tensor, n: int) -> torch.Tensor:
    """Inverse of ``pack_trits``: the first ``n`` trits, int8 in ``{-1, 0, 1}``.

    :param packed: uint8 ``[ceil(n / 5)]`` as written by ``pack_trits``.
    :param n: number of trits packed (the padding of the last byte is dropped).
    :returns: int8 ``[n]``.
    """
    if packed.numel() * TRITS_PER_BYTE < n:
        raise ValueError(f"{packed.numel()} bytes hold at most {packed.numel() * 5} trits, not {n}")
    powers = torch.tensor(_POWERS, dtype=torch.uint8, device=packed.device)  # [5]
    digits = (packed.reshape(-1, 1) // powers) % 3  # [bytes, 5] in {0, 1, 2}
    return digits.reshape(-1)[:n].to(torch.int8) - 1  # [n]


def bits_per_weight(packed: torch.Tensor, n: int) -> float:
    """Storage of the packed payload per weight, in bits (the per-tensor scale excluded)."""
    return packed.numel() * packed.element_size() * 8 / n
