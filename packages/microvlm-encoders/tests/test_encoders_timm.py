"""The timm-backed encoders through the plugin registry: tiny inputs, random or local weights, no network."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import attrs
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

import microvlm
from microvlm.errors import MicroVLMError
from microvlm.models.processors import ImageEvalProcessor
from microvlm.recipes.structure import ConfigErrors, structure

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DIST = "microvlm-encoders"
PLUGINS = microvlm.load_plugins()
NAMES = sorted(n for n in PLUGINS.names("encoder") if PLUGINS.get("encoder", n).distribution == DIST)
WIDTHS = {"diet_tiny": 192, "deit_tiny": 192, "diet_small": 384, "deit_small": 384, "timm": 64}
SMALL = "test_vit"  # timm's own 64-d test ViT (patch 16): the `timm` plugin's fast stand-in
BASE_RECIPE = Path(__file__).resolve().parents[3] / "recipes" / "common" / "base.toml"


def config(name: str, **fields: object) -> object:
    """Config for ``name`` with random weights at 32 px; the `timm` plugin uses timm's tiny test ViT."""
    fields = {"pretrained": "none", "image_size": 32, **fields}
    if name == "timm":
        fields.setdefault("model", SMALL)
    return structure(fields, PLUGINS.get("encoder", name).config_cls)


def build(name: str, **fields: object) -> nn.Module:
    return PLUGINS.build("encoder", name, config(name, **fields))


@pytest.fixture(scope="module")
def encoders() -> dict[str, nn.Module]:
    """A random-weight encoder per registered name, built once for the module.

    Aliases share their target's factory and config class (asserted below), so one build
    serves both: a DeiT-Small build is seconds of timm's random init on a shared CPU.
    """
    torch.manual_seed(0)
    built: dict[object, nn.Module] = {}
    for name in NAMES:
        component = PLUGINS.get("encoder", name)
        key = (component.factory, component.config_cls)
        if key not in built:
            built[key] = build(name)
    return {
        name: built[(PLUGINS.get("encoder", name).factory, PLUGINS.get("encoder", name).config_cls)]
        for name in NAMES
    }


def save_model(encoder: nn.Module, path: Path) -> dict[str, torch.Tensor]:
    state = {k: v.contiguous() for k, v in encoder.model.state_dict().items()}
    save_file(state, str(path))
    return state


def test_the_plugin_registers_the_seed_names_and_aliases() -> None:
    assert NAMES == ["deit_small", "deit_tiny", "diet_small", "diet_tiny", "timm"]
    for alias, target in [("deit_tiny", "diet_tiny"), ("deit_small", "diet_small")]:
        a, t = PLUGINS.get("encoder", alias), PLUGINS.get("encoder", target)
        assert (a.factory, a.config_cls) == (t.factory, t.config_cls)
    assert PLUGINS.get("encoder", "diet_tiny").factory != PLUGINS.get("encoder", "diet_small").factory


@pytest.mark.parametrize("name", NAMES)
def test_forward_gives_patch_features(encoders: dict[str, nn.Module], name: str) -> None:
    encoder = encoders[name]
    features = encoder(torch.randn(2, 3, 32, 32))
    assert encoder.out_dim == WIDTHS[name]
    assert features.shape == (2, 4, encoder.out_dim)  # (32 / 16)^2 patches, no class token
    assert encoder.grid_size == (2, 2)
    assert torch.isfinite(features).all()
    assert encoder.data_config["input_size"] == (3, 32, 32)
    assert len(encoder.data_config["mean"]) == len(encoder.data_config["std"]) == 3


@pytest.mark.parametrize("name", NAMES)
def test_frozen_encoder_has_no_trainable_parameters_and_stays_in_eval(
    encoders: dict[str, nn.Module], name: str
) -> None:
    encoder = encoders[name]
    head = nn.Linear(encoder.out_dim, 1)
    parent = nn.ModuleDict({"encoder": encoder, "head": head}).train()
    assert not any(m.training for m in encoder.model.modules())
    trainable = [n for n, p in parent.named_parameters() if p.requires_grad]
    assert trainable == ["head.weight", "head.bias"]  # what an optimizer over requires_grad gets
    features = encoder(torch.randn(1, 3, 32, 32))
    assert not features.requires_grad
    head(features).sum().backward()
    assert head.weight.grad is not None
    assert all(p.grad is None for p in encoder.parameters())


def test_unfrozen_encoder_trains() -> None:
    encoder = build("timm", freeze=False)
    nn.Sequential(encoder).train()
    assert encoder.model.training
    encoder(torch.randn(1, 3, 32, 32)).sum().backward()
    assert all(p.grad is not None for p in encoder.parameters() if p.requires_grad)
    assert any(p.requires_grad for p in encoder.parameters())


@pytest.mark.parametrize("name", ["diet_tiny", "timm"])
def test_output_all_adds_the_prefix_tokens(encoders: dict[str, nn.Module], name: str, tmp_path: Path) -> None:
    file = tmp_path / "w.safetensors"
    save_model(encoders[name], file)
    full = build(name, pretrained=str(file), output="all")
    images = torch.randn(2, 3, 32, 32)
    tokens = full(images)
    assert full.num_prefix_tokens == 1
    assert tokens.shape == (2, 1 + 4, full.out_dim)
    torch.testing.assert_close(tokens[:, 1:], encoders[name](images))


@pytest.mark.parametrize("name", ["diet_tiny", "timm"])
def test_weights_load_from_a_safetensors_file(
    encoders: dict[str, nn.Module], name: str, tmp_path: Path
) -> None:
    file = tmp_path / "encoder.safetensors"
    saved = save_model(encoders[name], file)
    loaded = build(name, pretrained=str(file))
    state = loaded.model.state_dict()
    assert state.keys() == saved.keys()
    for key, value in saved.items():
        assert torch.equal(state[key], value), key
    images = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(loaded(images), encoders[name](images))


def test_weights_load_from_a_timm_folder_with_its_preprocessing(
    encoders: dict[str, nn.Module], tmp_path: Path
) -> None:
    folder = tmp_path / "deit_tiny"
    folder.mkdir()
    saved = save_model(encoders["diet_tiny"], folder / "model.safetensors")
    pretrained_cfg = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "interpolation": "bilinear"}
    (folder / "config.json").write_text(
        json.dumps({"architecture": "deit_tiny_patch16_224", "pretrained_cfg": pretrained_cfg})
    )
    loaded = build("diet_tiny", pretrained=str(folder))
    assert all(torch.equal(loaded.model.state_dict()[k], v) for k, v in saved.items())
    assert loaded.data_config["mean"] == (0.5, 0.5, 0.5)
    assert loaded.data_config["std"] == (0.25, 0.25, 0.25)
    assert loaded.data_config["interpolation"] == "bilinear"


def test_a_wrapper_state_dict_with_its_prefix_loads(encoders: dict[str, nn.Module], tmp_path: Path) -> None:
    file = tmp_path / "wrapper.safetensors"
    save_file({k: v.contiguous() for k, v in encoders["timm"].state_dict().items()}, str(file))  # "model.*"
    loaded = build("timm", pretrained=str(file))
    assert torch.equal(loaded.model.pos_embed, encoders["timm"].model.pos_embed)


def test_weights_saved_at_another_resolution_are_resampled(tmp_path: Path) -> None:
    big = build("timm", image_size=64)
    file = tmp_path / "at64.safetensors"
    save_model(big, file)
    small = build("timm", pretrained=str(file), image_size=32)
    assert small.model.pos_embed.shape == (1, 1 + 4, 64)  # class token + 2 x 2 grid, was 4 x 4
    assert torch.equal(small.model.blocks[0].attn.qkv.weight, big.model.blocks[0].attn.qkv.weight)
    assert small(torch.randn(1, 3, 32, 32)).shape == (1, 4, 64)


def test_a_cnn_feature_map_becomes_tokens() -> None:
    encoder = build("timm", model="test_resnet", image_size=64)
    features = encoder(torch.randn(2, 3, 64, 64))
    h, w = encoder.grid_size
    assert features.shape == (2, h * w, encoder.out_dim)


def test_a_cnn_loads_its_weights_too(tmp_path: Path) -> None:
    reference = build("timm", model="test_resnet", image_size=64)
    file = tmp_path / "resnet.safetensors"
    save_model(reference, file)
    loaded = build("timm", model="test_resnet", image_size=64, pretrained=str(file))
    images = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(loaded(images), reference(images))


# -- errors a user can meet ---------------------------------------------------------------


def test_a_file_that_is_not_safetensors_is_named(tmp_path: Path) -> None:
    file = tmp_path / "broken.safetensors"
    file.write_bytes(b"this is not a safetensors file")
    with pytest.raises(MicroVLMError, match=r"broken\.safetensors"):
        build("timm", pretrained=str(file))


def test_missing_and_unexpected_keys_are_named(encoders: dict[str, nn.Module], tmp_path: Path) -> None:
    state = {k: v.contiguous() for k, v in encoders["timm"].model.state_dict().items()}
    del state["blocks.0.norm1.weight"]
    state["extra.weight"] = torch.zeros(3)
    file = tmp_path / "misfit.safetensors"
    save_file(state, str(file))
    with pytest.raises(MicroVLMError) as info:
        build("timm", pretrained=str(file))
    message = str(info.value)
    assert "misfit.safetensors" in message
    assert "missing keys: blocks.0.norm1.weight" in message
    assert "unexpected keys: extra.weight" in message


def test_weights_of_another_width_are_refused(encoders: dict[str, nn.Module], tmp_path: Path) -> None:
    file = tmp_path / "tiny.safetensors"
    save_model(encoders["diet_tiny"], file)  # 192-d weights for a 64-d model
    with pytest.raises(MicroVLMError, match=r"tiny\.safetensors does not fit timm 'test_vit'"):
        build("timm", pretrained=str(file))


def test_a_folder_for_another_architecture_is_refused(encoders: dict[str, nn.Module], tmp_path: Path) -> None:
    save_model(encoders["timm"], tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "test_vit"}))
    with pytest.raises(MicroVLMError, match=r"'test_vit'.*'deit_tiny_patch16_224'"):
        build("diet_tiny", pretrained=str(tmp_path))


@pytest.mark.parametrize(
    ("target", "match"),
    [
        ("weights.pth", "not a .safetensors file"),
        ("nowhere", "no such file or folder"),
        ("folder", "only safetensors is loaded"),  # holds pytorch_model.bin only
    ],
)
def test_unusable_weight_paths_are_explained(tmp_path: Path, target: str, match: str) -> None:
    (tmp_path / "weights.pth").write_bytes(b"\x80\x04pickle")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(MicroVLMError, match=match) as info:
        build("timm", pretrained=str(tmp_path / target))
    assert str(tmp_path / target) in str(info.value)


def test_no_network_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import timm

    def offline(name: str, pretrained: bool = False, **kwargs: object) -> nn.Module:
        if pretrained:
            raise OSError("cannot find the requested files in the local cache")  # what the hub says offline
        raise AssertionError("only the pretrained path is under test")

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(MicroVLMError) as info:
        build("diet_tiny", pretrained="timm")
    message = str(info.value)
    assert "deit_tiny_patch16_224" in message
    assert 'pretrained = "none"' in message and "local" in message


def test_an_unknown_timm_model_suggests_the_closest_name() -> None:
    with pytest.raises(MicroVLMError, match="did you mean 'deit_tiny_patch16_224'"):
        build("timm", model="deit_tnyy_patch16_224")


def test_an_image_size_off_the_patch_grid_is_refused() -> None:
    with pytest.raises(MicroVLMError, match="not a multiple of its patch size"):
        build("timm", image_size=40)


# -- recipes --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_recipe_tables_structure_strictly(name: str) -> None:
    config_cls = microvlm.load_plugins().get("encoder", name).config_cls
    cfg = structure({"pretrained": "none", "image_size": 224}, config_cls)
    assert (cfg.pretrained, cfg.image_size, cfg.freeze, cfg.output) == ("none", 224, True, "patch")
    with pytest.raises(ConfigErrors, match="image_sise: unknown key"):
        structure({"image_sise": 224}, config_cls)
    with pytest.raises(ConfigErrors, match="output"):
        structure({"output": "cls"}, config_cls)
    with pytest.raises(ConfigErrors, match="image_size"):
        structure({"image_size": "224"}, config_cls)


@pytest.mark.skipif(not BASE_RECIPE.is_file(), reason="recipes/common/base.toml not in this tree")
def test_the_base_recipe_encoder_table_validates() -> None:
    table = dict(tomllib.loads(BASE_RECIPE.read_text())["model"]["encoder"])
    name = table.pop("name")
    cfg = structure(table, PLUGINS.get("encoder", name).config_cls)
    assert cfg.freeze is True and cfg.image_size == 224


def test_config_validators_hold_outside_recipes() -> None:
    config_cls = PLUGINS.get("encoder", "diet_tiny").config_cls
    with pytest.raises(ValueError, match="image_size"):
        config_cls(image_size=0)
    with pytest.raises(ValueError, match="pretrained"):
        attrs.evolve(config_cls(), pretrained=" ")


def test_the_quick_start_path_feeds_an_encoder(encoders: dict[str, nn.Module]) -> None:
    encoder = encoders["diet_tiny"]
    processor = ImageEvalProcessor.from_data_config(encoder.data_config)
    image = Image.new("RGB", (50, 40), (120, 30, 200))
    features = encoder(processor(image).unsqueeze(0))
    assert features.shape == (1, 4, 192)


def test_timm_architecture_overrides_build_a_small_deit():
    import torch

    from microvlm import load_plugins
    from microvlm.recipes.structure import structure

    component = load_plugins().get("encoder", "timm")
    table = {
        "pretrained": "none",
        "image_size": 32,
        "patch_size": 8,
        "embed_dim": 64,
        "depth": 2,
        "num_heads": 2,
        "freeze": False,
    }
    encoder = component.build(structure(table, component.config_cls))
    features = encoder(torch.randn(2, 3, 32, 32))
    assert features.shape == (2, 16, 64)  # (B, N, D_v): (32 / 8)^2 patches, embed_dim 64
    assert len(encoder.model.blocks) == 2
    assert all(p.requires_grad for p in encoder.parameters())  # freeze = false


def test_architecture_overrides_refuse_timm_pretrained_weights():
    from microvlm import load_plugins
    from microvlm.errors import MicroVLMError
    from microvlm.recipes.structure import structure

    component = load_plugins().get("encoder", "timm")
    config = structure({"pretrained": "timm", "depth": 2}, component.config_cls)
    with pytest.raises(MicroVLMError, match="pretrained weights do not fit"):
        component.build(config)
