"""BitNet b1.58 quantisers and the 5-trits-per-byte packing."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from microvlm_quant.ternary import (
    EPS,
    activation_fake_quant,
    activation_quant,
    bits_per_weight,
    pack_trits,
    ternarize,
    unpack_trits,
    weight_fake_quant,
)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 2000), seed=st.integers(0, 2**16))
def test_pack_unpack_round_trips_exactly(n: int, seed: int):
    trits = torch.randint(-1, 2, (n,), generator=torch.Generator().manual_seed(seed), dtype=torch.int8)
    packed = pack_trits(trits)
    assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(n / 5)
    assert packed.numel() == 0 or int(packed.max()) <= 242
    assert torch.equal(unpack_trits(packed, n), trits)


@pytest.mark.parametrize("n", [1, 4, 5, 6, 9, 10, 11])
def test_edge_lengths_and_extreme_patterns(n: int):
    for value in (-1, 0, 1):
        trits = torch.full((n,), value, dtype=torch.int8)
        assert torch.equal(unpack_trits(pack_trits(trits), n), trits)


def test_pack_takes_shaped_tensors_in_row_major_order():
    trits = torch.randint(-1, 2, (7, 9), dtype=torch.int8)
    assert torch.equal(unpack_trits(pack_trits(trits), 63).view(7, 9), trits)


def test_pack_rejects_non_ternary_and_unpack_short_buffers():
    with pytest.raises(ValueError, match="-1, 0, 1"):
        pack_trits(torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="bytes hold"):
        unpack_trits(torch.zeros(2, dtype=torch.uint8), 11)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1000, 200_000))
def test_bits_per_weight_is_1_6_plus_at_most_one_partial_byte(n: int):
    packed = pack_trits(torch.zeros(n, dtype=torch.int8))
    bpw = bits_per_weight(packed, n)
    # ceil(n / 5) bytes: exactly 1.60 when 5 divides n, else one partly used byte more
    assert bpw <= 1.60 + 8 / n
    if n % 5 == 0:
        assert bpw == pytest.approx(1.60)


def test_bits_per_weight_of_qwen_layers():
    for out, inp in [(896, 896), (128, 896), (4864, 896), (896, 4864)]:
        n = out * inp
        assert round(bits_per_weight(pack_trits(torch.zeros(n, dtype=torch.int8)), n), 2) <= 1.60


def test_ternarize_is_absmean_per_tensor():
    torch.manual_seed(0)
    w = torch.randn(32, 48) * 0.05
    trits, scale = ternarize(w)
    assert trits.dtype == torch.int8 and trits.shape == w.shape and scale.shape == ()
    assert set(trits.unique().tolist()) <= {-1, 0, 1}
    assert scale.item() == pytest.approx(w.abs().mean().item())
    assert torch.equal(trits, (w / w.abs().mean()).round().clamp(-1, 1).to(torch.int8))
    assert torch.allclose(weight_fake_quant(w), trits * scale)
    zeros, zscale = ternarize(torch.zeros(3, 3))
    assert (zeros == 0).all() and zscale.item() == pytest.approx(EPS)


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 6), d=st.integers(1, 64), seed=st.integers(0, 2**16), mag=st.floats(1e-3, 1e3))
def test_activation_quant_is_8bit_absmax_per_token(rows: int, d: int, seed: int, mag: float):
    x = torch.randn(rows, d, generator=torch.Generator().manual_seed(seed)) * mag
    x_q, step = activation_quant(x)
    assert x_q.dtype == torch.int8 and step.shape == (rows, 1)
    assert torch.allclose(step, x.abs().amax(-1, keepdim=True) / 127)
    assert (x_q.abs().amax(-1) == 127).all()  # the largest entry of each token maps to +-127
    assert ((x_q * step - x).abs() <= step / 2 * (1 + 1e-5)).all()
    assert torch.allclose(activation_fake_quant(x), x_q * step, rtol=1e-5, atol=0)
