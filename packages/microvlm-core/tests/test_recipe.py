"""Recipes: extends, overrides, strict typing and error messages that name file and path."""

import os
import textwrap

import pytest

from microvlm import load_plugins
from microvlm.errors import RecipeError
from microvlm.recipes.config import Pipeline, Recipe
from microvlm.recipes.load import load_recipe, load_table, parse_override, recipe_to_table, translate_legacy
from microvlm.testing.toys import TOY_RECIPE, ToyBridgeConfig, ToyPlugin


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


# -------------------------------------------------------------------------------------
# Numbers: finite floats, 64-bit integers, seeds in range (#13 item 4)
# -------------------------------------------------------------------------------------


@pytest.mark.parametrize("override", ["run.lr=inf", "run.lr=nan", "run.lr=-inf", "run.weight_decay=inf"])
def test_non_finite_run_settings_are_refused(tmp_path, plugins, override):
    [message] = errors_of(write(tmp_path / "r.toml", TOY_RECIPE), plugins, [override])
    key = override.split("=")[0]
    assert message.startswith(f"--set: {key}: expected a finite number, got ")


def test_every_config_class_refuses_non_finite_floats_unless_a_field_allows_inf():
    import math

    import attrs

    from microvlm.recipes.structure import ALLOW_INF, ConfigErrors, structure

    @attrs.frozen
    class PluginConfig:
        ratio: float = 1.0
        ratios: tuple[float, ...] = ()
        limit: float = attrs.field(default=math.inf, metadata=ALLOW_INF)

    for bad in ({"ratio": math.nan}, {"ratios": [1.0, math.inf]}, {"limit": math.nan}):
        with pytest.raises(ConfigErrors, match=r"expected a finite number|expected a number or inf"):
            structure(bad, PluginConfig)
    assert structure({"limit": math.inf}, PluginConfig).limit == math.inf
    assert structure({"limit": 3}, PluginConfig).limit == 3.0


@pytest.mark.parametrize("weight", ["inf", "nan", "-inf", "0", "1" + "0" * 400])
def test_dataset_weight_must_be_a_finite_positive_number(tmp_path, plugins, weight):
    [message] = errors_of(write(tmp_path / "r.toml", TOY_RECIPE + f"weight = {weight}\n"), plugins)
    assert message.startswith(f"{tmp_path / 'r.toml'}: data.0.weight: expected a finite number > 0, got ")


@pytest.mark.parametrize("seed", [-1, 2**32, 2**63 - 1])
def test_seed_must_fit_every_generator(tmp_path, plugins, seed):
    [message] = errors_of(write(tmp_path / "r.toml", TOY_RECIPE), plugins, [f"run.seed={seed}"])
    assert message == f"--set: run.seed: must be between 0 and 4294967295 (2**32 - 1), got {seed}"


def test_largest_seed_fits_the_data_order_generator(tmp_path, plugins):
    recipe = load_recipe(write(tmp_path / "r.toml", TOY_RECIPE), plugins, ["run.seed=4294967295"])
    # train/loop.py seeds torch.Generator with seed * 100_003 + epoch: it takes < 2**64.
    assert recipe.run.seed * 100_003 + (2**63 - 1) < 2**64


@pytest.mark.parametrize("value", ["99999999999999999999", "-9223372036854775809", "1" + "0" * 5000])
def test_integers_beyond_64_bits_are_clear_errors(tmp_path, plugins, value):
    [message] = errors_of(write(tmp_path / "r.toml", TOY_RECIPE), plugins, [f"run.epochs={value}"])
    assert message.startswith("--set")
    assert "64-bit" in message and len(message) < 300


def test_huge_integer_in_a_file_is_a_clear_error(tmp_path, plugins):
    path = write(tmp_path / "r.toml", TOY_RECIPE.replace("lr = 1e-3", "epochs = 1" + "0" * 5000))
    [message] = errors_of(path, plugins)
    assert message.startswith(f"{path}: ") and len(message) < 300


# -------------------------------------------------------------------------------------
# Recipe tracebacks (#13 item 13)
# -------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be"])
def test_recipes_in_utf8_or_utf16_with_a_bom_load(tmp_path, plugins, encoding):
    text = TOY_RECIPE.replace('name = "toy"', 'name = "café ☕"')
    data = text.encode(encoding)
    if encoding in ("utf-16-le", "utf-16-be"):  # explicit-endian codecs write no BOM
        data = "\ufeff".encode(encoding) + data
    path = tmp_path / "r.toml"
    path.write_bytes(data)
    assert load_recipe(path, plugins).run.name == "café ☕"


@pytest.mark.parametrize(
    "data", [TOY_RECIPE.encode("latin-1") + b"# caf\xe9\n", TOY_RECIPE.encode("utf-16-le"), b"\xff\xfe\xfe"]
)
def test_a_recipe_not_in_utf8_names_the_file(tmp_path, plugins, data):
    path = tmp_path / "r.toml"
    path.write_bytes(data)
    [message] = errors_of(path, plugins)
    assert message.startswith(f"{path}: ") and "UTF-8" in message


@pytest.mark.parametrize(
    "text",
    [
        "a = " + "[" * 3000 + "]" * 3000,
        "a = " + "{b = " * 3000 + "1" + "}" * 3000,
        "a" + ".a" * 5000 + " = 1\n",
        "[" + "a." * 100 + "a]\nb = 1\n",
    ],
    ids=["arrays", "inline-tables", "dotted-key", "table-header"],
)
def test_deep_nesting_is_a_clear_error(tmp_path, plugins, text):
    path = write(tmp_path / "r.toml", text)
    [message] = errors_of(path, plugins)
    assert message.startswith(f"{path}: ") and "nested deeper than" in message


@pytest.mark.parametrize("override", ["run.train=" + "[" * 3000 + "]" * 3000, "run" + ".a" * 100 + "=1"])
def test_deep_override_is_a_clear_error(tmp_path, plugins, override):
    [message] = errors_of(write(tmp_path / "r.toml", TOY_RECIPE), plugins, [override])
    assert message.startswith("--set ") and "nested deeper than" in message


def test_a_long_extends_chain_is_capped(tmp_path, plugins):
    for i in range(3000):
        write(tmp_path / f"e{i}.toml", f'extends = "e{i + 1}.toml"\n' if i < 2999 else TOY_RECIPE)
    [message] = errors_of(tmp_path / "e0.toml", plugins)
    assert "extends" in message and "64" in message and str(tmp_path) in message
    assert load_recipe(tmp_path / "e2936.toml", plugins).run.name == "toy"  # 63 parents: fine


def test_an_exponential_extends_tree_is_capped(tmp_path, plugins):
    for i in range(30):
        write(tmp_path / f"e{i}.toml", f'extends = ["e{i + 1}.toml", "e{i + 1}.toml"]\n')
    write(tmp_path / "e30.toml", TOY_RECIPE)
    [message] = errors_of(tmp_path / "e0.toml", plugins)
    assert "extends" in message and "files" in message


@pytest.mark.parametrize(
    "device", ["gpu", "CPU", "cuda:01", "cuda:x", "cuda:-1", "cuda:128", " cpu", "auto:0"]
)
def test_invalid_device_is_refused(tmp_path, plugins, device):
    [message] = errors_of(write(tmp_path / "r.toml", TOY_RECIPE), plugins, [f'run.device="{device}"'])
    assert message.startswith("--set: run.device: expected ") and repr(device) in message


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:7", "mps", "xpu:1"])
def test_valid_devices_pass(tmp_path, plugins, device):
    assert load_recipe(write(tmp_path / "r.toml", TOY_RECIPE), plugins, [f"run.device={device}"])


def test_output_dir_that_is_a_file_is_refused(tmp_path, plugins):
    (tmp_path / "taken").write_text("")
    path = write(tmp_path / "r.toml", TOY_RECIPE)
    for output_dir in ("taken", "taken/run"):
        target = tmp_path / output_dir
        with pytest.raises(RecipeError) as err:
            load_recipe(path, plugins, [f"run.output_dir={target}"], check_output_dir=True)
        [message] = err.value.problems
        assert message.startswith("--set: run.output_dir: ") and f"{tmp_path / 'taken'} is a file" in message
    assert load_recipe(path, plugins, [f"run.output_dir={tmp_path}/new/run"], check_output_dir=True)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_output_dir_is_refused(tmp_path, plugins):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    path = write(tmp_path / "r.toml", TOY_RECIPE)
    with pytest.raises(RecipeError, match=f"cannot write in {locked}"):
        load_recipe(path, plugins, [f"run.output_dir={locked}/run"], check_output_dir=True)


def test_output_dir_without_write_permission_is_refused(tmp_path, plugins, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: str(path) != str(tmp_path))  # even as root
    path = write(tmp_path / "r.toml", TOY_RECIPE)
    with pytest.raises(RecipeError, match=f"run.output_dir: cannot write in {tmp_path} "):
        load_recipe(path, plugins, [f"run.output_dir={tmp_path}/out/run"], check_output_dir=True)


def test_recipe_check_and_run_refuse_an_output_dir_that_is_a_file(tmp_path, plugins):
    from click.testing import CliRunner

    from microvlm.cli import build_cli

    (tmp_path / "taken").write_text("")
    path = write(tmp_path / "r.toml", TOY_RECIPE.replace("output/toy", str(tmp_path / "taken")))
    for args in (["recipe", "check", str(path)], ["run", "--dry-run", str(path)]):
        result = CliRunner().invoke(build_cli(plugins), args)
        assert result.exit_code == 1, result.output
        assert f"{path}: run.output_dir: {tmp_path / 'taken'} is a file, not a folder" in result.output
        assert "Traceback" not in result.output


def test_set_extends_is_refused(tmp_path, plugins):
    write(tmp_path / "base.toml", TOY_RECIPE)
    path = write(tmp_path / "r.toml", TOY_RECIPE)
    for override in ("extends=base.toml", "extends.0=x"):
        with pytest.raises(RecipeError, match=r"--set extends: .*cannot be set with --set"):
            load_recipe(path, plugins, [override])


def test_thousands_of_unknown_keys_give_a_short_error(tmp_path, plugins):
    keys = "".join(f"k{i} = 1\n" for i in range(30_000))
    sections = "".join(f"[s{i}]\n" for i in range(3_000))
    path = write(tmp_path / "r.toml", TOY_RECIPE.replace("lr = 1e-3", "lr = 1e-3\n" + keys) + sections)
    problems = errors_of(path, plugins)
    text = "\n".join(problems)
    assert len(text) < 10_000 and len(problems) <= 21
    assert "and 29,980 more" in text and "and 2,980 more" in text


def test_many_different_problems_are_capped(tmp_path, plugins):
    bad = "".join(f'[[data]]\ndataset = "toy_dataset"\ntask = "toy_task"\nn = "{i}"\n' for i in range(100))
    problems = errors_of(write(tmp_path / "r.toml", TOY_RECIPE + bad), plugins)
    assert len(problems) == 21 and problems[-1] == "... and 80 more problems"


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        ('recipe = "s.toml"\noverrides = 3', "stages.0.overrides: expected a table, got 3 (integer)"),
        ('recipe = "nope.toml"', "stages.0.recipe: file not found: "),
        ('recipe = "fifo"', "stages.0.recipe: file not found: "),  # reading a FIFO would block
        ('recipe = "s.toml"\nx = 1', "stages.0: unknown keys x; a stage has 'recipe' and 'overrides'"),
    ],
    ids=["overrides-not-a-table", "missing", "fifo", "unknown-key"],
)
def test_pipeline_stage_problems_are_clear_errors(tmp_path, plugins, stage, expected):
    write(tmp_path / "s.toml", TOY_RECIPE)
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo")
    path = write(tmp_path / "p.toml", f"[[stages]]\n{stage}\n")
    [message] = errors_of(path, plugins)
    assert message.startswith(f"[stage 1] {path}: {expected}")


def test_a_field_naming_a_component_must_name_a_registered_one(tmp_path):
    """#15: `recipe check --set model.llm.quantizer=int8` said ok though nobody registers it."""
    from microvlm import load_plugins
    from microvlm.testing.toys import ToyPlugin

    plugins = load_plugins(allow=[], extra=[("toys", ToyPlugin())])  # core's own plugins and the toys
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        '[run]\nname = "r"\noutput_dir = "out"\n[model.encoder]\nname = "toy_encoder"\n'
        '[model.bridge]\nname = "toy_bridge"\n[model.llm]\nname = "hf_causal_lm"\n'
        '[[data]]\ndataset = "toy_dataset"\ntask = "toy_task"\n'
    )
    load_recipe(recipe, plugins)  # the default quantizer is not in use: no quantizer needed
    load_recipe(recipe, plugins, ['model.llm.quantizer="nf4"'])  # nor when spelled out (model.toml does)
    for override in ('model.llm.quantizer="int8"', 'model.llm.adapter="qlora"'):
        with pytest.raises(RecipeError, match=r"model\.llm\.quantizer: unknown quantizer"):
            load_recipe(recipe, plugins, [override])
