"""Q-Former bridge: shapes, cross-attention layout, attention maps, masking, gradients,
parameter count, and the ``qformer`` plugin built from a recipe table."""

from __future__ import annotations

import sys
from pathlib import Path

import attrs
import pytest
import torch

import microvlm
from microvlm.models.qformer import QFormer, QFormerOutput
from microvlm.models.qformer_config import QFormerConfig
from microvlm.recipes.structure import ConfigErrors, structure

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

D_V = 12  # tiny encoder width
TINY = QFormerConfig(num_queries=4, num_layers=3, hidden_size=16, num_heads=4, dropout=0.0)
BASE_TOML = Path(__file__).resolve().parents[3] / "recipes" / "common" / "base.toml"


def make(config: QFormerConfig = TINY, encoder_dim: int = D_V, seed: int = 0) -> QFormer:
    torch.manual_seed(seed)
    return QFormer(config, encoder_dim=encoder_dim).eval()


def feats(B: int = 2, N: int = 7, D: int = D_V, seed: int = 1) -> torch.Tensor:
    return torch.randn(B, N, D, generator=torch.Generator().manual_seed(seed))


def analytic_param_count(c: QFormerConfig, encoder_dim: int) -> int:
    """Count by hand: queries, ln_image, per layer (self-attn, cross-attn, MLP, LayerNorms), ln_queries."""
    D, H, Dv = c.hidden_size, c.mlp_hidden_size, encoder_dim
    layer_norm = 2 * D
    self_attn = (D * D + D) + (D * 2 * D + 2 * D) + (D * D + D)  # q, kv, out
    cross_attn = (D * D + D) + (Dv * 2 * D + 2 * D) + (D * D + D)  # q, kv from D_v, out
    mlp = (D * H + H) + (H * D + D)
    n_cross = len(range(0, c.num_layers, c.cross_attention_freq))
    per_layer = self_attn + layer_norm + mlp + layer_norm
    return (
        c.num_queries * D
        + 2 * Dv
        + c.num_layers * per_layer
        + n_cross * (cross_attn + layer_norm)
        + layer_norm
    )


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_output_shape_and_finite(norm: str) -> None:
    model = make(attrs.evolve(TINY, norm=norm))
    out = model(feats(B=3, N=5))
    assert isinstance(out, QFormerOutput)
    assert out.queries.shape == (3, TINY.num_queries, TINY.hidden_size)
    assert model.out_dim == TINY.hidden_size
    assert torch.isfinite(out.queries).all()
    assert out.cross_attentions is None


@pytest.mark.parametrize(("freq", "expected"), [(1, 3), (2, 2), (3, 1), (5, 1)])
def test_cross_attention_frequency(freq: int, expected: int) -> None:
    config = attrs.evolve(TINY, cross_attention_freq=freq)
    model = make(config)
    assert model.num_cross_attention_layers == expected
    assert [i for i, layer in enumerate(model.layers) if layer.cross_attn is not None] == list(
        config.cross_attention_layers
    )
    assert len(model(feats(), return_attentions=True).cross_attentions) == expected


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_attention_maps_are_distributions_that_reproduce_sdpa(norm: str) -> None:
    model = make(attrs.evolve(TINY, norm=norm))
    x = feats(B=2, N=9)
    with torch.no_grad():
        fast = model(x)
        explicit = model(x, return_attentions=True)
    assert len(explicit.cross_attentions) == TINY.num_layers
    for probs in explicit.cross_attentions:
        assert probs.shape == (2, TINY.num_heads, TINY.num_queries, 9)
        assert (probs >= 0).all()
        torch.testing.assert_close(probs.sum(-1), torch.ones(2, TINY.num_heads, TINY.num_queries))
    torch.testing.assert_close(explicit.queries, fast.queries, atol=1e-5, rtol=0)


@pytest.mark.parametrize("return_attentions", [False, True])
def test_image_mask_excludes_masked_patches(return_attentions: bool) -> None:
    model = make()
    x = feats(B=2, N=6)
    mask = torch.tensor([[True, True, True, True, False, False], [True, False, True, True, True, True]])
    other = x.clone()
    other[~mask] = torch.randn(int((~mask).sum()), D_V) * 10  # different values at masked patches
    with torch.no_grad():
        a = model(x, image_mask=mask, return_attentions=return_attentions)
        b = model(other, image_mask=mask, return_attentions=return_attentions)
        unmasked = model(x)
    torch.testing.assert_close(a.queries, b.queries, atol=1e-6, rtol=0)
    assert not torch.allclose(a.queries, unmasked.queries, atol=1e-4)  # the mask did something
    if return_attentions:
        for probs in a.cross_attentions:
            assert (probs.permute(0, 3, 1, 2)[~mask] == 0).all()  # (B, N, h, Q) at masked (b, n)
            torch.testing.assert_close(probs.sum(-1), torch.ones_like(probs.sum(-1)))


def test_image_mask_with_sdpa_matches_explicit() -> None:
    model = make()
    x = feats(B=2, N=6)
    mask = torch.tensor([[True, True, False, True, False, True], [False, True, True, True, True, True]])
    with torch.no_grad():
        fast = model(x, image_mask=mask)
        explicit = model(x, image_mask=mask, return_attentions=True)
    torch.testing.assert_close(explicit.queries, fast.queries, atol=1e-5, rtol=0)


def test_fully_masked_image_is_an_error() -> None:
    mask = torch.tensor([[True, False, False], [False, False, False]])
    with pytest.raises(ValueError, match="at least one True"):
        make()(feats(B=2, N=3), image_mask=mask)


def test_wrong_encoder_width_is_an_error() -> None:
    with pytest.raises(AssertionError, match="built for 12"):
        make()(feats(D=8))


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_gradients_reach_queries_and_every_layer(norm: str) -> None:
    model = make(attrs.evolve(TINY, norm=norm, cross_attention_freq=2)).train()
    x = feats().requires_grad_(True)
    out = model(x).queries
    # A weighted sum: a plain sum of LayerNorm outputs has zero gradient.
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(2))).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "config",
    [TINY, attrs.evolve(TINY, cross_attention_freq=2, mlp_ratio=2.5), attrs.evolve(TINY, norm="post")],
    ids=["tiny", "freq2", "post"],
)
def test_param_count_matches_analytic(config: QFormerConfig) -> None:
    model = make(config)
    assert sum(p.numel() for p in model.parameters()) == analytic_param_count(config, D_V)


def test_default_param_count() -> None:
    config = QFormerConfig()
    with torch.device("meta"):  # no memory, no init cost
        model = QFormer(config, encoder_dim=192)
    count = sum(p.numel() for p in model.parameters())
    # 32 queries, 6 layers of 768 with cross-attention on every layer to 192-d DeiT-Tiny features.
    assert count == analytic_param_count(config, 192) == 51_428_736


def test_weights_initialised_like_bert() -> None:
    model = make(QFormerConfig(num_queries=8, num_layers=1, hidden_size=64, num_heads=4))
    w = model.layers[0].mlp.fc1.weight
    # N(0, 0.02) truncated at +-2 std has std 0.02 * 0.880 = 0.0176.
    assert abs(w.std().item() - 0.0176) < 0.002 and w.abs().max() <= 0.04 + 1e-6
    assert (model.layers[0].self_attn.q_proj.bias == 0).all()
    assert (model.ln_queries.weight == 1).all()
    assert (
        abs(model.query_embeds.std().item() - 0.0176) < 0.004
        and model.query_embeds.abs().max() <= 0.04 + 1e-6
    )


def test_plugin_builds_from_recipe_table() -> None:
    component = microvlm.load_plugins().get("bridge", "qformer")
    table = {"num_queries": 4, "num_layers": 2, "hidden_size": 16, "num_heads": 2, "norm": "post"}
    config = structure(table, component.config_cls)
    model = component.build(config, encoder_dim=D_V)
    assert isinstance(model, QFormer)
    assert model.out_dim == 16 and model.num_cross_attention_layers == 2
    assert model(feats()).queries.shape == (2, 4, 16)


def test_base_recipe_bridge_table_validates() -> None:
    if not BASE_TOML.exists():
        pytest.skip("recipes/ is not next to this package (not a source checkout)")
    table = dict(tomllib.loads(BASE_TOML.read_text())["model"]["bridge"])
    assert table.pop("name") == "qformer"
    config = structure(table, QFormerConfig)
    assert (config.num_queries, config.num_layers, config.hidden_size, config.num_heads) == (32, 6, 768, 12)


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ({"hidden_size": 770, "num_heads": 12}, "hidden_size"),
        ({"num_layers": 0}, "num_layers"),
        ({"cross_attention_freq": 0}, "cross_attention_freq"),
        ({"num_queries": 0}, "num_queries"),
        ({"dropout": 1.0}, "dropout"),
        ({"norm": "sandwich"}, "norm"),
        ({"num_layers": "six"}, "num_layers"),
        ({"num_layer": 6}, "num_layer"),
    ],
)
def test_bad_config_is_a_validation_problem(table: dict, field: str) -> None:
    with pytest.raises(ConfigErrors) as info:
        structure(table, QFormerConfig)
    text = str(info.value)
    assert field in text, text
