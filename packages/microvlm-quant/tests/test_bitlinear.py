"""BitLinearQAT (STE, lam warm-up, in-place replacement) and the packed TernaryLinear runtime."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from microvlm_quant.bitlinear import BitLinearQAT, TernaryLinear, replace_linears, set_lambda
from microvlm_quant.ternary import activation_fake_quant, activation_quant, ternarize, weight_fake_quant

EPS32 = torch.finfo(torch.float32).eps


def float_bound(x: torch.Tensor, w: torch.Tensor, roundings: int) -> torch.Tensor:
    """How far two float32 evaluations of ``x @ w.T`` may differ.

    Each summation is off by at most gamma_K |x| @ |w|.T (Higham, Thm 3.1), so two by twice that;
    ``roundings`` more relative roundings of the factors (e.g. ``x + (q - x)`` vs ``q``, or a
    scale applied before vs after the sum) add ``roundings * eps`` each.
    """
    k = x.shape[-1]
    gamma_k = k * EPS32 / (1 - k * EPS32)
    return (2 * gamma_k + roundings * EPS32) * (x.abs() @ w.abs().T)


def qat_layer(lam: float, bias: bool = True) -> BitLinearQAT:
    torch.manual_seed(0)
    layer = BitLinearQAT(24, 16, bias=bias, lam=lam)
    return layer


def test_lam_zero_is_exactly_nn_linear_forward_and_backward():
    layer = qat_layer(0.0)
    plain = nn.Linear(24, 16)
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(3, 5, 24)
    y, y_ref = layer(x), plain(x)
    assert torch.equal(y, y_ref)
    y.square().sum().backward()
    y_ref.square().sum().backward()
    assert torch.equal(layer.weight.grad, plain.weight.grad)
    assert torch.equal(layer.bias.grad, plain.bias.grad)


def test_lam_one_is_the_bitnet_forward():
    layer = qat_layer(1.0)
    x = torch.randn(7, 24)
    with torch.no_grad():
        x_q, w_q = activation_fake_quant(x), weight_fake_quant(layer.weight)
        want = F.linear(x_q, w_q, layer.bias)
        got = layer(x)
    # x + (q(x) - x) is q(x) up to one rounding per element, the same for w
    assert ((got - want).abs() <= float_bound(x_q, w_q, roundings=3) + EPS32 * want.abs()).all()


@pytest.mark.parametrize("lam", [0.3, 1.0])
def test_straight_through_gradients_reach_the_shadow_weights(lam: float):
    layer = qat_layer(lam, bias=False)
    x = torch.randn(6, 24, requires_grad=True)
    upstream = torch.randn(6, 16)
    (layer(x) * upstream).sum().backward()
    w = layer.weight.detach()
    x_eff = x.detach() + lam * (activation_fake_quant(x.detach()) - x.detach())
    w_eff = w + lam * (weight_fake_quant(w) - w)
    # STE: d w_eff / d w = I, so dL/dw = upstream.T @ x_eff; likewise dL/dx = upstream @ w_eff
    assert torch.allclose(layer.weight.grad, upstream.T @ x_eff, rtol=1e-5, atol=1e-6)
    assert torch.allclose(x.grad, upstream @ w_eff, rtol=1e-5, atol=1e-6)
    assert layer.weight.grad.abs().sum() > 0


def test_replace_linears_keeps_parameters_and_honours_skip():
    model = nn.ModuleDict(
        {"block": nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4)), "lm_head": nn.Linear(4, 10)}
    )
    weights = {n: p for n, p in model.named_parameters()}
    assert replace_linears(model, skip={"lm_head", "block.2"}) == 1
    assert isinstance(model["block"][0], BitLinearQAT) and model["block"][0].lam == 0.0
    assert type(model["block"][2]) is nn.Linear and type(model["lm_head"]) is nn.Linear
    assert all(p is weights[n] for n, p in model.named_parameters())  # same objects, not copies
    assert replace_linears(model, skip=set()) == 2
    assert replace_linears(model, skip=set()) == 0  # BitLinearQAT is not swapped again
    assert set_lambda(model, 0.5) == 3 and all(
        m.lam == 0.5 for m in model.modules() if isinstance(m, BitLinearQAT)
    )
    with pytest.raises(ValueError, match=r"got 1\.5"):
        set_lambda(model, 1.5)


def test_a_short_qat_run_with_lambda_warm_up_lowers_the_quantised_loss():
    torch.manual_seed(0)
    teacher = torch.randint(-1, 2, (8, 32)).float() * 0.1  # a ternary target, representable
    x = torch.randn(512, 32)
    y = x @ teacher.T
    model = nn.Sequential(nn.Linear(32, 8, bias=False))
    assert replace_linears(model, skip=set()) == 1
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def quantised_loss() -> float:
        set_lambda(model, 1.0)
        with torch.no_grad():
            return F.mse_loss(model(x), y).item()

    start = quantised_loss()
    steps, warmup = 300, 100
    for step in range(steps):
        set_lambda(model, min(1.0, step / warmup))  # the 1.58-bit blog's gradual warm-up
        loss = F.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    end = quantised_loss()
    assert end < 0.2 * start, f"quantised MSE {start:.4g} -> {end:.4g}"


def test_ternary_linear_matches_the_quantised_forward():
    torch.manual_seed(3)
    linear = nn.Linear(37, 11)  # 407 weights: not a multiple of 5
    layer = TernaryLinear.from_linear(linear)
    assert set(layer.trits.unique().tolist()) <= {-1, 0, 1} and layer.trits.dtype == torch.int8
    trits, gamma = ternarize(linear.weight)
    assert torch.equal(layer.trits, trits) and torch.equal(layer.scale, gamma)
    x = torch.randn(2, 4, 37)
    with torch.no_grad():
        x_q = activation_fake_quant(x)
        want = F.linear(x_q, trits * gamma, linear.bias)
        got = layer(x)
        bit = BitLinearQAT(37, 11, lam=1.0)
        bit.load_state_dict(linear.state_dict())
        from_qat = bit(x)
    assert got.shape == (2, 4, 11)
    # the runtime scales integer sums by step * gamma after the sum; the reference before it
    bound = float_bound(x_q, trits * gamma, roundings=6) + 2 * EPS32 * want.abs()
    assert ((got - want).abs() <= bound).all()
    assert ((from_qat - got).abs() <= 2 * bound).all()  # training forward == inference forward


def test_ternary_linear_state_dict_is_the_packed_form():
    layer = TernaryLinear.from_linear(nn.Linear(10, 6))
    state = layer.state_dict()
    assert set(state) == {"packed", "scale", "bias"}  # the int8 compute form is not saved
    assert state["packed"].numel() == 12  # 60 trits / 5
    again = TernaryLinear(state["packed"], state["scale"], 6, 10, state["bias"])
    x = torch.randn(3, 10)
    assert torch.equal(again(x), layer(x))


def test_ternary_linear_is_the_integer_matmul_exactly_before_the_rescale():
    torch.manual_seed(4)
    layer = TernaryLinear.from_linear(nn.Linear(4864, 6, bias=False))  # the widest Qwen2.5-0.5B input
    x = torch.randn(3, 4864) * 10
    x_q, step = activation_quant(x)
    integer = x_q.long() @ layer.trits.long().T  # [3, 6] exact int64
    with torch.no_grad():
        got = layer(x)
    assert torch.equal(got, integer.float() * layer.scale * step)
