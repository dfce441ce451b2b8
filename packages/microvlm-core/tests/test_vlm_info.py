"""Parameter accounting (microvlm.models.info) and ``microvlm model-info`` on the toy recipe."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from microvlm import load_plugins, load_recipe
from microvlm.cli import build_cli
from microvlm.models.info import count_model, model_info
from microvlm.models.vlm import MicroVLM
from microvlm.testing.fixtures import tiny_llm_path
from microvlm.testing.toys import ToyPlugin, toy_training_recipe


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(extra=[("toys", ToyPlugin())])


@pytest.fixture
def recipe_file(tmp_path):
    path = tmp_path / "toy.toml"
    path.write_text(toy_training_recipe(str(tmp_path / "out"), str(tiny_llm_path())))
    return path


def invoke(plugins, *args: str):
    result = CliRunner().invoke(build_cli(plugins), ["model-info", *args])
    assert result.exit_code == 0, result.output
    return result.output


def numel(params) -> int:
    return sum(p.numel() for p in params)


def test_json_counts_equal_those_of_the_model_built_for_real(plugins, recipe_file):
    sets = ["--set", 'model.llm.adapter="lora"', "--set", 'run.train=["bridge", "projection", "lora"]']
    report = json.loads(invoke(plugins, str(recipe_file), "--json", *sets))
    recipe = load_recipe(recipe_file, plugins, [s for s in sets if s != "--set"])
    model = MicroVLM.from_config(recipe.model, plugins)  # real weights, on the CPU
    lora = [p for n, p in model.llm.named_parameters() if "lora_" in n]
    expected = {
        "encoder": numel(model.encoder.parameters()),
        "bridge": numel(model.bridge.parameters()),
        "projection": numel(model.projection.parameters()),
        "llm": numel(model.llm.parameters()) - numel(lora),
        "lora": numel(lora),
    }
    parts = report["parts"]
    assert {name: part["parameters"] for name, part in parts.items()} == expected
    assert report["train"] == ["bridge", "projection", "lora"]
    assert {name: part["trainable"] for name, part in parts.items()} == {
        **dict.fromkeys(expected, 0),
        "bridge": expected["bridge"],
        "projection": expected["projection"],
        "lora": expected["lora"],
    }
    assert parts["llm"]["bytes"] == 4 * expected["llm"] and parts["llm"]["dtype"] == "float32"
    assert parts["bridge"]["component"] == "qformer" and parts["encoder"]["component"] == "toy_encoder"
    total = report["total"]
    assert total["parameters"] == sum(expected.values())
    assert total["trainable"] == expected["bridge"] + expected["projection"] + expected["lora"]
    assert total["bytes"] == sum(p["bytes"] for p in parts.values())


def test_the_default_output_is_a_table(plugins, recipe_file):
    output = invoke(plugins, str(recipe_file))
    for word in (
        "encoder",
        "bridge",
        "projection",
        "llm",
        "total",
        "toy_encoder",
        "qformer",
        "trains bridge",
    ):
        assert word in output
    assert "│ lora" not in output  # no adapter, no lora row
    total = json.loads(invoke(plugins, str(recipe_file), "--json"))["total"]["parameters"]
    assert f"{total:,}" in output  # with thousands separators


def test_counting_allocates_nothing_and_reads_no_weights(plugins, recipe_file):
    recipe = load_recipe(recipe_file, plugins)
    assert recipe.model.llm.config.init == "pretrained"
    from microvlm.models.info import counting_config

    config = counting_config(recipe.model)
    assert config.llm.config.init == "random" and config.llm.config.model == recipe.model.llm.config.model
    model = MicroVLM.from_config(config, plugins, device="meta")
    assert {p.device.type for p in model.parameters()} == {"meta"}
    assert count_model(model).parameters == model_info(recipe.model, plugins).parameters


def test_unknown_trainable_part_is_reported(plugins, recipe_file):
    result = CliRunner().invoke(
        build_cli(plugins), ["model-info", str(recipe_file), "--set", 'run.train=["lora"]']
    )
    assert result.exit_code != 0
    assert "run.train" in result.output and "adapter" in result.output
