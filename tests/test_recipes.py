"""The shipped recipes validate with every plugin package installed and carry the seed's
hyperparameters."""

from pathlib import Path

import pytest

from microvlm import load_plugins
from microvlm.recipes.config import Pipeline, Recipe
from microvlm.recipes.load import load_recipe

RECIPES = sorted((Path(__file__).parent.parent / "recipes").glob("*.toml"))
ALL_PACKAGES = {"microvlm-core", "microvlm-encoders", "microvlm-quant", "microvlm-datasets", "microvlm-tasks"}

SEED_TABLE = {  # the seed's hyperparameters: lr, epochs, batch size
    "stage1_alignment": (1e-4, 1, 64),
    "stage2_lora": (1e-4, 4, 32),
    "stage3_instruct": (3e-5, 5, 6),
    "stage4_multitask": (2e-5, 3, 4),
}


@pytest.fixture(scope="module")
def plugins():
    return load_plugins()


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_shipped_recipe_validates(path, plugins):
    assert set(plugins.distributions()) >= ALL_PACKAGES, "the integration tests need every package"
    recipe = load_recipe(path, plugins)
    assert isinstance(recipe, (Recipe, Pipeline))


def test_recipe_files_carry_the_seed_hyperparameters():
    from microvlm.recipes.load import load_table

    for name, (lr, epochs, batch) in SEED_TABLE.items():
        run = load_table(Path(__file__).parent.parent / "recipes" / f"{name}.toml").data["run"]
        assert (run["lr"], run["epochs"], run["batch_size"]) == (lr, epochs, batch), name


def test_pipeline_runs_the_four_stages_in_order():
    from microvlm.recipes.load import load_table

    stages = load_table(Path(__file__).parent.parent / "recipes" / "pipeline.toml").data["stages"]
    assert [s["recipe"] for s in stages] == [f"{n}.toml" for n in SEED_TABLE]


@pytest.mark.parametrize("stage", [1, 2, 3, 4])
def test_short_stage_names_check_the_shipped_recipes(stage, plugins, monkeypatch):
    """``microvlm recipe check recipes/stage4.toml``, as the design card writes it (issue 14)."""
    from click.testing import CliRunner

    from microvlm.cli import build_cli

    monkeypatch.chdir(Path(__file__).parent.parent)
    (meant,) = [name for name in SEED_TABLE if name.startswith(f"stage{stage}_")]
    result = CliRunner().invoke(build_cli(plugins), ["recipe", "check", f"recipes/stage{stage}.toml"])
    assert result.exit_code == 0, result.output
    assert f"using recipes/{meant}.toml" in result.output and f"ok   recipes/{meant}.toml" in result.output
