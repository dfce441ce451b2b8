"""Int8 weights: the per-row error bound, the chunked kernel, Int8Linear and the tied Int8Embedding."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from microvlm_quant import int8
from microvlm_quant.int8 import Int8Embedding, Int8Linear, dequantize_int8, int8_matmul, quantize_int8

EPS32 = torch.finfo(torch.float32).eps


def matmul_bound(x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """|x @ W.T - x @ deq(W).T| <= (scale / 2) * sum|x| (per row error) + float32 summation error.

    Summation error of a length-K dot product is at most gamma_K |x| @ |w| (Higham, Thm 3.1),
    gamma_K = K eps / (1 - K eps); counted for both products.
    """
    k = x.shape[-1]
    gamma_k = k * EPS32 / (1 - k * EPS32)
    quant = x.abs().sum(-1, keepdim=True) * scale / 2  # [M, N]
    rounding = gamma_k * 2 * (x.abs() @ w.abs().T)  # [M, N], deq(w) <= |w| + scale/2 ~ |w|
    return quant * (1 + 1e-6) + rounding


@settings(max_examples=30, deadline=None)
@given(out=st.integers(1, 40), inp=st.integers(1, 40), seed=st.integers(0, 2**16), mag=st.floats(1e-4, 1e3))
def test_quantize_error_is_at_most_half_a_step_per_row(out: int, inp: int, seed: int, mag: float):
    w = torch.randn(out, inp, generator=torch.Generator().manual_seed(seed)) * mag
    q, scale = quantize_int8(w)
    assert q.dtype == torch.int8 and scale.dtype == torch.float32 and scale.shape == (out,)
    assert int(q.abs().max()) <= 127
    err = (w - dequantize_int8(q, scale)).abs()  # [out, in]
    # half a step, plus the float32 rounding of w / scale and q * scale (a few ulps of |w|)
    assert (err <= scale[:, None] / 2 + 4 * EPS32 * w.abs()).all()


def test_zero_rows_are_guarded():
    w = torch.zeros(3, 5)
    w[1] = torch.arange(5.0)
    q, scale = quantize_int8(w)
    assert torch.isfinite(scale).all() and (scale > 0).all()
    assert (q[0] == 0).all() and (q[2] == 0).all()
    assert ((dequantize_int8(q, scale)[1] - w[1]).abs() <= scale[1] / 2).all()


@pytest.mark.parametrize("lead", [(1,), (8,), (2, 3)])
@pytest.mark.parametrize("chunk", [7, 1 << 20])  # many blocks with a ragged last one, and one block
def test_int8_matmul_matches_dequantised_linear(monkeypatch, lead: tuple[int, ...], chunk: int):
    monkeypatch.setattr(int8, "CHUNK_ELEMENTS", chunk)
    torch.manual_seed(0)
    w = torch.randn(37, 11)
    q, scale = quantize_int8(w)
    x = torch.randn(*lead, 11)
    ref = torch.nn.functional.linear(x, dequantize_int8(q, scale))
    got = int8_matmul(x, q, scale)
    assert got.shape == (*lead, 37)
    bound = 2 * 11 * EPS32 * (x.abs() @ dequantize_int8(q, scale).abs().T)  # summation order only
    assert ((got - ref).abs() <= bound + 1e-30).all()


def test_int8_matmul_refuses_autograd():
    q, scale = quantize_int8(torch.randn(4, 3))
    with pytest.raises(RuntimeError, match="inference"):
        int8_matmul(torch.randn(2, 3, requires_grad=True), q, scale)


@pytest.mark.parametrize("bias", [True, False])
def test_int8_linear_is_close_to_the_float_layer(bias: bool):
    torch.manual_seed(1)
    linear = nn.Linear(64, 48, bias=bias)
    layer = Int8Linear.from_linear(linear)
    assert (layer.in_features, layer.out_features) == (64, 48)
    assert layer.qweight.dtype == torch.int8 and layer.qweight.shape == (48, 64)
    x = torch.randn(5, 64)
    with torch.no_grad():
        want, got = linear(x), layer(x)
    assert ((got - want).abs() <= matmul_bound(x, linear.weight.detach(), layer.scale)).all()


def test_int8_linear_state_dict_round_trips():
    layer = Int8Linear.from_linear(nn.Linear(8, 4))
    again = Int8Linear(torch.zeros(4, 8, dtype=torch.int8), torch.ones(4), torch.zeros(4))
    again.load_state_dict(layer.state_dict())
    x = torch.randn(3, 8)
    assert torch.equal(again(x), layer(x))


def test_int8_embedding_looks_up_dequantised_rows_and_serves_as_tied_head():
    torch.manual_seed(2)
    emb = nn.Embedding(50, 16)
    qemb = Int8Embedding.from_embedding(emb)
    table = dequantize_int8(qemb.qweight, qemb.scale)  # [V, D]
    ids = torch.tensor([[3, 7, 49], [0, 3, 1]])
    out = qemb(ids)
    assert out.shape == (2, 3, 16) and out.dtype == torch.float32
    assert torch.equal(out, table[ids])
    half_step = qemb.scale[ids].unsqueeze(-1) / 2 * (1 + 1e-6)
    assert ((out - emb.weight.detach()[ids]).abs() <= half_step).all()

    hidden = torch.randn(2, 3, 16)
    logits = qemb.logits(hidden)
    assert logits.shape == (2, 3, 50)
    head = qemb.as_linear()
    assert head.qweight is qemb.qweight and head.scale is qemb.scale  # shared, not copied
    assert torch.equal(head(hidden), logits)
    w = emb.weight.detach()
    flat = hidden.reshape(-1, 16)
    want = flat @ w.T
    assert ((logits.reshape(-1, 50) - want).abs() <= matmul_bound(flat, w, qemb.scale)).all()
