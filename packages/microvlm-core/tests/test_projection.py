"""Projection from the bridge width to the LLM width."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from microvlm.models.projection import Projection
from microvlm.recipes.config import ProjectionConfig
from microvlm.recipes.structure import ConfigErrors, structure


def test_shapes_and_default_hidden_is_out_dim() -> None:
    proj = Projection(16, 24)
    assert proj.fc1.weight.shape == (24, 16) and proj.fc2.weight.shape == (24, 24)
    assert proj.hidden_dim == 24 and proj.out_dim == 24
    y = proj(torch.randn(2, 5, 16))
    assert y.shape == (2, 5, 24)
    assert torch.isfinite(y).all()


def test_explicit_hidden_size() -> None:
    proj = Projection(16, 24, hidden_dim=40)
    assert proj.fc1.out_features == 40 and proj.fc2.in_features == 40
    assert sum(p.numel() for p in proj.parameters()) == (16 * 40 + 40) + (40 * 24 + 24)


@pytest.mark.parametrize(("name", "cls"), [("gelu", nn.GELU), ("silu", nn.SiLU), ("relu", nn.ReLU)])
def test_activation_choices(name: str, cls: type[nn.Module]) -> None:
    proj = Projection(8, 8, activation=name).eval()
    assert isinstance(proj.act, cls)
    x = torch.randn(3, 8)
    expected = proj.fc2(cls()(proj.fc1(x)))
    torch.testing.assert_close(proj(x), expected)


def test_unknown_activation_is_an_error() -> None:
    with pytest.raises(ValueError, match="tanh"):
        Projection(8, 8, activation="tanh")  # type: ignore[arg-type]


def test_from_config_hidden_zero_uses_out_dim() -> None:
    config = structure({"activation": "silu", "dropout": 0.1}, ProjectionConfig)
    proj = Projection.from_config(config, in_dim=16, out_dim=32)
    assert proj.hidden_dim == 32 and isinstance(proj.act, nn.SiLU) and proj.dropout.p == 0.1
    assert proj(torch.randn(1, 4, 16)).shape == (1, 4, 32)
    wide = Projection.from_config(ProjectionConfig(hidden_size=64), in_dim=16, out_dim=32)
    assert wide.hidden_dim == 64 and wide(torch.randn(1, 4, 16)).shape == (1, 4, 32)


def test_dropout_only_in_training() -> None:
    proj = Projection(8, 8, dropout=0.5)
    x = torch.randn(4, 8)
    proj.eval()
    torch.testing.assert_close(proj(x), proj(x))
    proj.train()
    torch.manual_seed(0)
    a = proj(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, proj(x))


def test_gradients_reach_both_layers() -> None:
    proj = Projection(8, 6, hidden_dim=10)
    proj(torch.randn(2, 3, 8)).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in proj.parameters())


def test_bad_projection_config_is_a_validation_problem() -> None:
    with pytest.raises(ConfigErrors, match="activation"):
        structure({"activation": "tanh"}, ProjectionConfig)
