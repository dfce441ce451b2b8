"""The memory-lean training pieces (microvlm.models.llm.fused): plain-op values and gradients, less kept."""

import pytest
import torch
import torch.nn.functional as F
from transformers import Qwen2Config, Qwen2ForCausalLM

from microvlm.models.llm import fused


def saved_elements(fn):
    """Elements autograd keeps for backward while ``fn()`` runs (parameters excluded)."""
    count = 0

    def pack(t):
        nonlocal count
        if not isinstance(t, torch.nn.Parameter):
            count += t.numel()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, count


@pytest.mark.parametrize("rows_per_chunk", [1, 3, 100])
def test_frozen_head_cross_entropy_matches_autograd(monkeypatch, rows_per_chunk):
    V, D, M = 50, 8, 7
    monkeypatch.setattr(fused, "HEAD_CHUNK_ELEMENTS", rows_per_chunk * V)
    torch.manual_seed(0)
    weight = torch.randn(V, D)
    labels = torch.randint(0, V, (M,))
    hidden = torch.randn(M, D, requires_grad=True)
    ref_hidden = hidden.detach().clone().requires_grad_(True)

    loss, kept = saved_elements(lambda: fused.frozen_head_cross_entropy(hidden, weight, labels))
    ref, ref_kept = saved_elements(lambda: F.cross_entropy(ref_hidden @ weight.T, labels))
    (3.0 * loss).backward()  # an upstream factor must reach the gradient
    (3.0 * ref).backward()

    assert torch.allclose(loss, ref, atol=1e-6)
    assert torch.allclose(hidden.grad, ref_hidden.grad, atol=1e-6)
    assert kept == M * D < ref_kept  # only d loss / d hidden, no [M, V] logits


def test_frozen_head_cross_entropy_calls_the_head_per_chunk(monkeypatch):
    monkeypatch.setattr(fused, "HEAD_CHUNK_ELEMENTS", 2 * 10)
    weight = torch.randn(10, 4)
    seen = []

    def head(h):
        seen.append(h.shape[0])
        return h @ weight.T

    hidden = torch.randn(5, 4, requires_grad=True)
    fused.frozen_head_cross_entropy(hidden, weight, torch.tensor([0, 1, 2, 3, 4]), head).backward()
    assert seen == [2, 2, 1]


def test_frozen_head_cross_entropy_refuses_a_trainable_head():
    weight = torch.randn(10, 4, requires_grad=True)
    with pytest.raises(ValueError, match="frozen head"):
        fused.frozen_head_cross_entropy(torch.randn(2, 4), weight, torch.tensor([1, 2]))


def test_swiglu_lean_matches_autograd_and_keeps_less():
    torch.manual_seed(0)
    gate = torch.randn(3, 5, 16, requires_grad=True)
    up = torch.randn(3, 5, 16, requires_grad=True)
    g2, u2 = (t.detach().clone().requires_grad_(True) for t in (gate, up))
    out, kept = saved_elements(lambda: fused.swiglu_lean(gate, up))
    ref, ref_kept = saved_elements(lambda: F.silu(g2) * u2)
    grad = torch.randn_like(out)
    out.backward(grad)
    ref.backward(grad)
    assert torch.allclose(out, ref)
    assert torch.allclose(gate.grad, g2.grad, atol=1e-6)
    assert torch.allclose(up.grad, u2.grad, atol=1e-6)
    assert kept == 2 * gate.numel() < ref_kept


def test_use_lean_mlps_keeps_the_function():
    config = Qwen2Config(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).eval()
    embeds = torch.randn(2, 6, 16, requires_grad=True)
    before = model(inputs_embeds=embeds).logits
    (grad_before,) = torch.autograd.grad(before.sum(), embeds)

    assert fused.use_lean_mlps(model) == 2  # one MLP per layer; nothing else matches
    after = model(inputs_embeds=embeds).logits
    (grad_after,) = torch.autograd.grad(after.sum(), embeds)
    assert torch.allclose(before, after, atol=1e-6)
    assert torch.allclose(grad_before, grad_after, atol=1e-5)
