"""``microvlm model-info``: the size of each export format, from shapes (issue #16 item 6), and an
export folder's manifest groups (``--checkpoint``)."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest
from click.testing import CliRunner

from microvlm import hookimpl, load_plugins, load_recipe
from microvlm.cli import build_cli
from microvlm.models.exports import export_model
from microvlm.models.vlm import MicroVLM
from microvlm.testing.fixtures import tiny_llm_path
from microvlm.testing.toys import ToyPlugin, toy_training_recipe

RECIPES = Path(__file__).parent.parent / "recipes"
OFFLINE = ["--set", "model.llm.init=random", "--set", "model.encoder.pretrained=none"]


@attrs.frozen
class _Cfg:
    """No settings."""


class _NoEstimate:
    def __init__(self, config: _Cfg) -> None:
        self.config = config

    def export(self, model, directory):
        raise NotImplementedError

    def load(self, directory, *, plugins, options=None):
        raise NotImplementedError

    def estimate(self, model):
        raise RuntimeError("shapes unknown for this format\nsecond line of detail")


class _BrokenEstimatePlugin:
    @hookimpl
    def register_exporters(self, register):
        register("no_estimate", _NoEstimate, _Cfg, description="fixture: estimate raises")


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(extra=[("toys", ToyPlugin())])


@pytest.fixture
def recipe_file(tmp_path: Path) -> Path:
    path = tmp_path / "toy.toml"
    path.write_text(toy_training_recipe(str(tmp_path / "out"), str(tiny_llm_path())))
    return path


def invoke(plugins, *args: str) -> str:
    result = CliRunner().invoke(build_cli(plugins), ["model-info", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_every_registered_exporter_is_listed_with_its_estimated_size(plugins, recipe_file):
    names = plugins.names("exporter")
    assert {"fp16", "bf16", "int8", "bitnet158", "toy_fp32"} <= set(names)
    exports = json.loads(invoke(plugins, str(recipe_file), "--json"))["exports"]
    assert sorted(exports) == names
    model = MicroVLM.from_config(load_recipe(recipe_file, plugins).model, plugins)  # real weights
    for name in names:
        report = plugins.build("exporter", name).estimate(model)
        assert exports[name]["bytes"] == sum(g.bytes for g in report.groups) > 0, name
        assert "error" not in exports[name]
    fp16 = exports["fp16"]["bytes"]
    assert exports["fp16"]["x_fp16"] == 1.0 and exports["int8"]["x_fp16"] == exports["int8"]["bytes"] / fp16
    assert exports["fp16"]["llm_linear_bits_per_weight"] == 16.0
    assert exports["toy_fp32"]["llm_linear_bits_per_weight"] is None  # it has no llm.linear group
    table = invoke(plugins, str(recipe_file))
    assert "export formats" in table and all(name in table for name in names)


def test_an_exporter_whose_estimate_fails_shows_the_first_line(recipe_file):
    plugins = load_plugins(extra=[("toys", ToyPlugin()), ("no_estimate", _BrokenEstimatePlugin())])
    exports = json.loads(invoke(plugins, str(recipe_file), "--json"))["exports"]
    assert exports["no_estimate"]["error"] == "shapes unknown for this format"
    assert exports["int8"]["bytes"] > 0 and "error" not in exports["int8"]
    table = invoke(plugins, str(recipe_file))
    assert "error: shapes unknown for this format" in table
    assert "second line" not in table and "Traceback" not in table


def test_an_export_folder_shows_its_manifest_groups(plugins, recipe_file, tmp_path):
    model = MicroVLM.from_config(load_recipe(recipe_file, plugins).model, plugins)
    target = export_model(model, tmp_path / "int8", "int8", plugins)
    manifest = json.loads((target / "manifest.json").read_text())
    shown = json.loads(invoke(plugins, "--checkpoint", str(target), "--json"))
    assert shown["exporter"] == "int8" and shown["groups"] == manifest["groups"]
    estimate = plugins.build("exporter", "int8").estimate(model)
    assert [(g["name"], g["bytes"]) for g in shown["groups"]] == [(g.name, g.bytes) for g in estimate.groups]
    table = invoke(plugins, "--checkpoint", str(target))
    assert "int8 export" in table and all(g["name"] in table for g in manifest["groups"])


def test_a_checkpoint_folder_is_counted_from_its_model_table(plugins, recipe_file, tmp_path):
    model = MicroVLM.from_config(load_recipe(recipe_file, plugins).model, plugins)
    folder = model.save_pretrained(tmp_path / "ckpt")
    report = json.loads(invoke(plugins, "--checkpoint", str(folder), "--json"))
    assert report["total"]["parameters"] == sum(p.numel() for p in model.parameters())
    assert set(report["exports"]) == set(plugins.names("exporter"))


def test_recipe_and_checkpoint_are_exclusive(plugins, recipe_file, tmp_path):
    result = CliRunner().invoke(
        build_cli(plugins), ["model-info", str(recipe_file), "--checkpoint", str(tmp_path)]
    )
    assert result.exit_code == 2 and "either RECIPE or --checkpoint" in result.output
    result = CliRunner().invoke(build_cli(plugins), ["model-info"])
    assert result.exit_code == 2


def test_real_size_architecture_meets_the_size_targets(monkeypatch):
    """Shapes only, on the meta device: about 3 s here (most of it building the skeleton)."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    plugins = load_plugins()
    exports = json.loads(invoke(plugins, str(RECIPES / "stage2_lora.toml"), "--json", *OFFLINE))["exports"]
    assert exports["int8"]["x_fp16"] <= 0.52
    assert exports["bitnet158"]["x_fp16"] <= 0.25
    assert round(exports["bitnet158"]["llm_linear_bits_per_weight"], 4) <= 1.60  # scales: 4 bytes a matrix
    assert exports["fp16"]["bytes"] == exports["bf16"]["bytes"] > 1e9  # 552 M weights at 2 bytes
