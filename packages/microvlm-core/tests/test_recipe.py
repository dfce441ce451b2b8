"""Recipes: extends, overrides, strict typing and error messages that name file and path."""

import textwrap

import pytest

from microvlm import load_plugins
from microvlm.config import Pipeline, Recipe
from microvlm.errors import RecipeError
from microvlm.recipe import load_recipe, load_table, parse_override, recipe_to_table, translate_legacy
from microvlm.toys import TOY_RECIPE, ToyBridgeConfig, ToyPlugin


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(extra=[("toys", ToyPlugin())])


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(path, plugins, overrides=()):
    with pytest.raises(RecipeError) as err:
        load_recipe(path, plugins, overrides)
    return err.value.problems


def test_toy_recipe_loads_into_typed_configs(tmp_path, plugins):
    recipe = load_recipe(write(tmp_path / "r.toml", TOY_RECIPE), plugins)
    assert isinstance(recipe, Recipe)
    assert recipe.run.lr == 1e-3 and recipe.run.batch_size == 8
    assert recipe.model.bridge.config == ToyBridgeConfig()
    assert recipe.data[0].dataset.name == "toy_dataset" and recipe.data[0].task.name == "toy_task"
    assert [spec.name for spec in recipe.loggers] == ["console", "jsonl"]


def test_extends_deep_merges_relative_to_the_recipe_folder(tmp_path, plugins):
    (tmp_path / "common").mkdir()
    write(
        tmp_path / "common" / "base.toml",
        TOY_RECIPE
        + '\n[model.bridge]\nnum_queries = 8\nnorm = "post"\n'.replace(
            "[model.bridge]\nnum", "[model.bridge.x]\nnum"
        )
        if False
        else TOY_RECIPE,
    )
    write(
        tmp_path / "stage.toml",
        """\
        extends = "common/base.toml"
        [run]
        batch_size = 4
        [model.bridge]
        num_queries = 16
    """,
    )
    recipe = load_recipe(tmp_path / "stage.toml", plugins)
    assert recipe.run.batch_size == 4  # from the stage
    assert recipe.run.lr == 1e-3  # kept from the base
    assert recipe.model.bridge.name == "toy_bridge"  # base key kept next to the stage's
    assert recipe.model.bridge.config.num_queries == 16


def test_arrays_are_replaced_not_merged(tmp_path, plugins):
    write(tmp_path / "base.toml", TOY_RECIPE + '\n[[data]]\ndataset = "toy_dataset"\ntask = "toy_task"\n')
    write(
        tmp_path / "r.toml",
        """\
        extends = "base.toml"
        [[data]]
        dataset = "toy_dataset"
        split = "val"
        task = "toy_task"
    """,
    )
    recipe = load_recipe(tmp_path / "r.toml", plugins)
    assert [e.dataset.config.split for e in recipe.data] == ["val"]


def test_missing_extends_file_names_the_recipe(tmp_path, plugins):
    write(tmp_path / "r.toml", 'extends = "nope.toml"\n')
    [message] = errors_of(tmp_path / "r.toml", plugins)
    assert message.startswith(f"{tmp_path / 'r.toml'}: extends: file not found")
    assert "nope.toml" in message


def test_extends_cycle_is_detected(tmp_path, plugins):
    write(tmp_path / "a.toml", 'extends = "b.toml"\n')
    write(tmp_path / "b.toml", 'extends = "a.toml"\n')
    [message] = errors_of(tmp_path / "a.toml", plugins)
    assert "extends: cycle" in message and "a.toml" in message and "b.toml" in message


def test_invalid_toml_names_file_and_line(tmp_path, plugins):
    write(tmp_path / "r.toml", "[run]\nlr = = 1\n")
    [message] = errors_of(tmp_path / "r.toml", plugins)
    assert str(tmp_path / "r.toml") in message and "line 2" in message


def test_mistyped_key_suggests_the_right_one(tmp_path, plugins):
    write(tmp_path / "r.toml", TOY_RECIPE.replace("lr = 1e-3", "lr = 1e-3\nbatch_sise = 4"))
    [message] = errors_of(tmp_path / "r.toml", plugins)
    assert message.startswith(
        f"{tmp_path / 'r.toml'}: run.batch_sise: unknown key (did you mean 'batch_size'?)"
    )


def test_wrong_type_names_expected_and_found(tmp_path, plugins):
    text = TOY_RECIPE.replace('name = "toy_bridge"', 'name = "toy_bridge"\nnum_queries = "six"')
    write(tmp_path / "r.toml", text)
    [message] = errors_of(tmp_path / "r.toml", plugins)
    assert (
        message == f"{tmp_path / 'r.toml'}: model.bridge.num_queries: expected an integer, got 'six' (string)"
    )


def test_no_silent_coercion(tmp_path, plugins):
    text = TOY_RECIPE.replace("lr = 1e-3", 'lr = 1e-3\nresume = "false"\nepochs = 1.5')
    write(tmp_path / "r.toml", text)
    problems = errors_of(tmp_path / "r.toml", plugins)
    joined = "\n".join(problems)
    assert "run.resume: expected true or false, got 'false' (string)" in joined
    assert "run.epochs: expected an integer, got 1.5 (float)" in joined


def test_literal_choices_and_validators(tmp_path, plugins):
    write(tmp_path / "r.toml", TOY_RECIPE.replace("lr = 1e-3", 'precision = "bf61"'))
    [message] = errors_of(tmp_path / "r.toml", plugins)
    assert message.endswith(
        "run.precision: expected one of 'auto', 'fp32', 'bf16', 'fp16', got 'bf61' (string) (did you mean 'bf16'?)"
    )
    write(tmp_path / "r.toml", TOY_RECIPE.replace("lr = 1e-3", "lr = -1.0"))
    [message] = errors_of(tmp_path / "r.toml", plugins)
    assert message == f"{tmp_path / 'r.toml'}: run.lr: must be > 0, got -1.0"


def test_error_names_the_file_that_set_the_value(tmp_path, plugins):
    write(
        tmp_path / "base.toml", TOY_RECIPE.replace('name = "toy_encoder"', 'name = "toy_encoder"\nwidht = 3')
    )
    write(tmp_path / "r.toml", 'extends = "base.toml"\n[run]\nseed = 1\n')
    [message] = errors_of(tmp_path / "r.toml", plugins)
    assert message.startswith(
        f"{tmp_path / 'base.toml'}: model.encoder.widht: unknown key (did you mean 'width'?)"
    )


def test_unknown_component_and_section(tmp_path, plugins):
    text = TOY_RECIPE.replace('dataset = "toy_dataset"', 'dataset = "toy_datset"') + "\n[trainer]\nx = 1\n"
    write(tmp_path / "r.toml", text)
    joined = "\n".join(errors_of(tmp_path / "r.toml", plugins))
    assert "data.0.dataset: unknown dataset 'toy_datset' (did you mean 'toy_dataset'?)" in joined
    assert "trainer: unknown section" in joined


def test_missing_model_parts_and_data(tmp_path, plugins):
    write(tmp_path / "r.toml", '[model.encoder]\nname = "toy_encoder"\n')
    joined = "\n".join(errors_of(tmp_path / "r.toml", plugins))
    assert "model.bridge: missing table [model.bridge]" in joined
    assert "data: no [[data]] entries" in joined


def test_overrides_are_toml_typed(tmp_path, plugins):
    path = write(tmp_path / "r.toml", TOY_RECIPE)
    recipe = load_recipe(
        path,
        plugins,
        [
            "run.lr=2e-4",
            "run.train=['bridge']",
            "model.bridge.norm=post",
            "data.0.split=val",
            'model.llm.adapter="lora"',
        ],
    )
    assert recipe.run.lr == 2e-4
    assert recipe.run.train == ("bridge",)
    assert recipe.model.bridge.config.norm == "post"
    assert recipe.data[0].dataset.config.split == "val"
    assert recipe.model.llm.config.adapter == "lora"


def test_override_errors_are_attributed_to_set(tmp_path, plugins):
    path = write(tmp_path / "r.toml", TOY_RECIPE)
    [message] = errors_of(path, plugins, ["run.epochs=two"])
    assert message == "--set: run.epochs: expected an integer, got 'two' (string)"
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        load_table(path, ["run.lr"])
    with pytest.raises(RecipeError, match="no item 5"):
        load_table(path, ["data.5.split=val"])


def test_parse_override_values():
    assert parse_override("a.b=2") == ("a.b", 2)
    assert parse_override("a=true") == ("a", True)
    assert parse_override("a=diet_small") == ("a", "diet_small")
    assert parse_override("a=output/x/checkpoint_final.pth") == ("a", "output/x/checkpoint_final.pth")
    assert parse_override("a = [1, 2]") == ("a", [1, 2])


def test_legacy_keys_translate():
    assert translate_legacy("model.ckpt") == "run.init_from"
    assert translate_legacy("model.lora_r") == "model.llm.lora_r"
    assert translate_legacy("run.lr") is None


def test_resolved_table_round_trips(tmp_path, plugins):
    import tomli_w

    recipe = load_recipe(write(tmp_path / "r.toml", TOY_RECIPE), plugins, ["model.bridge.num_queries=3"])
    table = recipe_to_table(recipe)
    assert table["model"]["bridge"] == {
        "name": "toy_bridge",
        "num_queries": 3,
        "hidden_size": 16,
        "norm": "pre",
    }
    again = load_recipe(write(tmp_path / "again.toml", tomli_w.dumps(table)), plugins)
    assert again.run == recipe.run and again.model == recipe.model and again.data == recipe.data


def test_pipeline_chains_final_checkpoints(tmp_path, plugins):
    write(tmp_path / "s1.toml", TOY_RECIPE.replace('output_dir = "output/toy"', 'output_dir = "out/s1"'))
    write(
        tmp_path / "s2.toml",
        TOY_RECIPE.replace('output_dir = "output/toy"', 'output_dir = "out/s2"\ninit_from = "x"'),
    )
    write(tmp_path / "s3.toml", TOY_RECIPE.replace('output_dir = "output/toy"', 'output_dir = "out/s3"'))
    write(
        tmp_path / "p.toml",
        """\
        [[stages]]
        recipe = "s1.toml"
        [[stages]]
        recipe = "s2.toml"
        [stages.overrides]
        run = {lr = 5e-5}
        [[stages]]
        recipe = "s3.toml"
        overrides = {run = {init_from = "elsewhere/ckpt"}}
    """,
    )
    pipeline = load_recipe(tmp_path / "p.toml", plugins, ["run.seed=7"])
    assert isinstance(pipeline, Pipeline)
    s1, s2, s3 = (s.recipe for s in pipeline.stages)
    assert s1.run.init_from == "" and not pipeline.stages[0].chained
    assert s2.run.init_from == "out/s1/checkpoint_final" and pipeline.stages[1].chained
    assert s2.run.lr == 5e-5
    assert s3.run.init_from == "elsewhere/ckpt" and not pipeline.stages[2].chained
    assert {s.run.seed for s in (s1, s2, s3)} == {7}


def test_pipeline_reports_shared_problems_once(tmp_path, plugins):
    write(tmp_path / "base.toml", TOY_RECIPE.replace("lr = 1e-3", "lr = 1e-3\nbogus = 1"))
    write(tmp_path / "s1.toml", 'extends = "base.toml"\n')
    write(tmp_path / "s2.toml", 'extends = "base.toml"\n')
    write(tmp_path / "p.toml", '[[stages]]\nrecipe = "s1.toml"\n[[stages]]\nrecipe = "s2.toml"\n')
    [message] = errors_of(tmp_path / "p.toml", plugins)
    assert message.startswith(f"[stages 1, 2] {tmp_path / 'base.toml'}: run.bogus: unknown key")
