"""The conformance kit (microvlm.testing.conformance) on every encoder this package registers,
and the patch grid of ViT, CNN and prefix-token outputs checked against the tokens they give."""

from __future__ import annotations

import pytest
import torch

import microvlm
from microvlm.recipes.structure import structure
from microvlm.testing.conformance import ConformanceError, check_component, check_encoder

PLUGINS = microvlm.load_plugins()
DIST = "microvlm-encoders"
COMPONENTS = {
    (c.factory, c.config_cls): c for c in PLUGINS.components("encoder") if c.distribution == DIST
}  # one per factory: the deit_* aliases share their diet_* target's


def offline(component: microvlm.plugins.manager.Component, **fields: object) -> object:
    """Random weights (no download) at 32 px; ``timm`` on timm's own 64-d test ViT."""
    fields = {"pretrained": "none", "image_size": 32, **fields}
    if component.name == "timm":
        fields.setdefault("model", "test_vit")
    return structure(fields, component.config_cls)


@pytest.mark.parametrize("component", list(COMPONENTS.values()), ids=lambda c: c.name)
def test_every_encoder_passes_the_kit(component: microvlm.plugins.manager.Component) -> None:
    torch.manual_seed(0)
    encoder = check_component(component, offline(component))
    rows, cols = encoder.patch_grid
    assert encoder(torch.zeros(1, 3, 32, 32)).shape[1] == rows * cols  # output = "patch": no prefix


@pytest.mark.parametrize(
    ("model", "output", "prefix"),
    [("test_vit", "patch", 0), ("test_vit", "all", 1), ("test_resnet", "patch", 0)],
)
def test_patch_grid_matches_the_tokens(model: str, output: str, prefix: int) -> None:
    component = PLUGINS.get("encoder", "timm")
    encoder = check_encoder(component.factory, offline(component, model=model, output=output, image_size=64))
    rows, cols = encoder.patch_grid
    assert encoder(torch.zeros(1, 3, 64, 64)).shape[1] == prefix + rows * cols


def test_the_kit_names_an_encoder_without_patch_grid() -> None:
    component = PLUGINS.get("encoder", "timm")

    def no_grid(config: object) -> torch.nn.Module:
        encoder = component.factory(config)
        del encoder.patch_grid
        return encoder

    with pytest.raises(ConformanceError, match="encoder 'no_grid': TimmEncoder lacks patch_grid"):
        check_encoder(no_grid, offline(component))
