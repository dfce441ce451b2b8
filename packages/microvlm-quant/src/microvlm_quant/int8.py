"""Symmetric per-output-channel int8 weights and a weight-only int8 matmul for the CPU.

Each row ``n`` of a weight ``W [out, in]`` gets ``scale[n] = max_k |W[n, k]| / 127`` and
``q = round(W / scale)`` in ``[-127, 127]`` (symmetric: no zero point, -128 unused), so
``|W - q * scale| <= scale / 2`` elementwise. A zero row gets scale 1 (its q is 0 anyway). The
per-row scale factors out of the matmul, ``x @ (q * s).T == (x @ q.T) * s``, which is what lets
one kernel serve both a linear layer and a tied embedding / lm_head (whose rows are its
output channels).

Kernel choice (issue #16), measured on this machine: AMD EPYC with AVX2 only (no AVX-512,
no VNNI), torch 2.14.1 CPU, torchao 0.18.0, ``torch.set_num_threads(1)`` because the 2 cores were
shared with another job (2-thread numbers swung by 10x). ms per call, best of 5-30 calls, the
better of two runs; x float32 ``[M, in]``, Qwen2.5-0.5B shapes ``[out, in]``:

=====================  ==  ======  ===================  =======  ================
shape                  M   fp32    _weight_int8pack_mm  torchao  chunked (chosen)
=====================  ==  ======  ===================  =======  ================
q/o 896x896            1   0.078   0.86                 0.20     0.22
q/o 896x896            8   0.36    6.9                  0.49     0.50
k/v 128x896            1   0.014   0.12                 0.065    0.073
k/v 128x896            8   0.044   0.95                 0.10     0.11
gate/up 4864x896       1   1.24    4.8                  2.6      1.09
gate/up 4864x896       8   4.05    38.5                 7.8      3.38
down 896x4864          1   0.54    4.6                  2.0      0.98
down 896x4864          8   2.79    35.0                 3.6      2.29
lm_head 151936x896     1   41.8    171                  446      33.8
lm_head 151936x896     8   164     1366                 551      71.3
=====================  ==  ======  ===================  =======  ================

One decoder layer (q, k, v, o, gate, up, down) at M = 1 / 8: fp32 3.2 / 11.7 ms, chunked
3.8 / 10.3, torchao 7.7 / 20.4, ``_weight_int8pack_mm`` 16 / 135.

- ``torch._weight_int8pack_mm(x [M, K], w int8 [N, K], scales [N])`` (its schema here) is
  correct but 4-10x slower than fp32: without AVX-512 its CPU kernel is not vectorised for
  float32 activations.
- torchao's ``quantize_(m, Int8WeightOnlyConfig(version=2))`` (version 1 is removed in 0.18)
  ties with the chunked kernel on the 896-wide layers but is 2x slower on the MLP and 13x on
  the lm_head, and would add a GPU-oriented dependency with its own quantiser (its ``q`` is not
  ours).
- **Chosen**: dequantise ``CHUNK_ELEMENTS`` weights at a time (4 MiB of float32, one scratch
  block reused per call), ``x @ block.T`` into the matching output columns, the scale applied
  once at the end. Fastest on the MLP and the lm_head (fp32 reads 544 MB of lm_head per call,
  int8 136 MB), within 1.4-5x of fp32 on the small attention projections (the int8 -> float
  conversion costs about what a float32 GEMV does), never more than 4 MiB of float weight.
  Scratch blocks of 2**18 and 2**22 elements were no faster overall, and writing through
  ``mm(out=)`` into a transposed output was slower at M = 8.
Inference only: ``mm(out=...)`` has no autograd, so the kernel refuses inputs that need grad.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CHUNK_ELEMENTS = 1 << 20
"""Weights dequantised at a time by ``int8_matmul`` (float32: 4 MiB of scratch)."""

QMAX = 127


def quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8 quantisation.

    :param weight: float ``[out, in]``.
    :returns: ``(q, scale)``: int8 ``[out, in]`` in ``[-127, 127]`` and float32 ``[out]``.
    """
    if weight.dim() != 2:
        raise ValueError(f"quantize_int8 takes a 2-d [out, in] weight, got shape {tuple(weight.shape)}")
    w = weight.detach().float()
    scale = w.abs().amax(dim=1) / QMAX  # [out]
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # a zero row: q = 0, any scale
    q = (w / scale[:, None]).round().clamp(-QMAX, QMAX).to(torch.int8)  # [out, in]
    return q, scale


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``q [out, in] * scale [out]`` as float32 ``[out, in]``."""
    return q.float() * scale[:, None]


def int8_matmul(x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x @ (q * scale).T`` without a full float copy of ``q`` (the chunked kernel above).

    :param x: float ``[..., K]`` (its dtype is the compute dtype).
    :param q: int8 (or any integer) ``[N, K]``.
    :param scale: float ``[N]`` per output channel, or a 0-d per-tensor scale.
    :returns: ``[..., N]`` in ``x``'s dtype.
    """
    if x.requires_grad and torch.is_grad_enabled():
        raise RuntimeError("int8_matmul is an inference kernel (it reuses one scratch block, no autograd)")
    n, k = q.shape
    assert x.shape[-1] == k, f"input has {x.shape[-1]} features, the weight expects {k}"
    x2 = x.reshape(-1, k)  # [M, K]
    out = x2.new_empty(x2.shape[0], n)  # [M, N]
    rows = max(1, CHUNK_ELEMENTS // k)
    buf = x2.new_empty(min(rows, n), k)  # [rows, K] scratch, reused
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        block = buf[: stop - start]
        block.copy_(q[start:stop])  # int8 -> float, only this block
        out[:, start:stop] = x2 @ block.T  # [M, K] @ [K, rows] -> [M, rows]
    out.mul_(scale.to(out.dtype))  # [M, N] * [N] (or a 0-d scale)
    return out.reshape(*x.shape[:-1], n)  # [..., N]


class Int8Linear(nn.Module):
    """A linear layer with int8 weights (per-output-channel scales), weight-only quantised."""

    qweight: torch.Tensor
    scale: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, qweight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        """:param qweight: int8 ``[out, in]``; :param scale: float32 ``[out]``; :param bias: ``[out]``."""
        super().__init__()
        assert qweight.dtype == torch.int8, f"qweight must be int8, got {qweight.dtype}"
        assert scale.shape == qweight.shape[:1], f"one scale per output row: {scale.shape} vs {qweight.shape}"
        self.register_buffer("qweight", qweight)
        self.register_buffer("scale", scale.float())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        """Quantise ``linear``'s weight (``quantize_int8``); its bias is kept as it is."""
        q, scale = quantize_int8(linear.weight)
        return cls(q, scale, linear.bias)

    @property
    def weight(self) -> torch.Tensor:
        """The stored int8 ``[out, in]`` (``qweight``), for code that asks a layer for its weight's
        device or dtype (``MicroVLM.device``, ``LanguageModel.lm_head``); not a float weight: use
        :meth:`dequantize` for that."""
        return self.qweight

    @property
    def in_features(self) -> int:
        return self.qweight.shape[1]

    @property
    def out_features(self) -> int:
        return self.qweight.shape[0]

    def dequantize(self) -> torch.Tensor:
        """The float32 weight ``[out, in]`` this layer multiplies by (for tests and export)."""
        return dequantize_int8(self.qweight, self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = int8_matmul(x, self.qweight, self.scale)  # [..., in] -> [..., out]
        return y if self.bias is None else y + self.bias.to(y.dtype)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        )


class Int8Embedding(nn.Module):
    """An embedding table in int8 with one scale per row; also usable as the tied lm_head.

    A lookup dequantises only the rows looked up. ``logits(hidden)`` multiplies by the same int8
    table (rows = vocabulary = output channels), and ``as_linear()`` wraps the same tensors in an
    ``Int8Linear``, so a tied head costs no second copy.
    """

    qweight: torch.Tensor
    scale: torch.Tensor

    def __init__(
        self, qweight: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32
    ) -> None:
        """:param qweight: int8 ``[V, D]``; :param scale: float32 ``[V]``; :param dtype: output dtype."""
        super().__init__()
        assert qweight.dtype == torch.int8, f"qweight must be int8, got {qweight.dtype}"
        assert scale.shape == qweight.shape[:1], f"one scale per row: {scale.shape} vs {qweight.shape}"
        self.register_buffer("qweight", qweight)
        self.register_buffer("scale", scale.float())
        self.dtype = dtype

    @classmethod
    def from_embedding(cls, embedding: nn.Embedding) -> Int8Embedding:
        """Quantise ``embedding``'s table row by row; the output dtype is the table's."""
        q, scale = quantize_int8(embedding.weight)
        return cls(q, scale, dtype=embedding.weight.dtype)

    @property
    def num_embeddings(self) -> int:
        return self.qweight.shape[0]

    @property
    def embedding_dim(self) -> int:
        return self.qweight.shape[1]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = F.embedding(ids, self.qweight)  # [...] -> [..., D] int8, only these rows
        return rows.to(self.dtype) * self.scale[ids].unsqueeze(-1).to(self.dtype)  # [..., D]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The tied head: ``hidden [..., D] @ table.T -> [..., V]`` on the int8 table."""
        return int8_matmul(hidden, self.qweight, self.scale)

    def as_linear(self) -> Int8Linear:
        """An ``Int8Linear`` sharing this table's tensors (no copy), e.g. to set as ``lm_head``."""
        return Int8Linear(self.qweight, self.scale)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, dtype={self.dtype}"
