"""The shipped recipes validate with whatever plugin packages are installed, or fail only
because a plugin package is missing (with the install hint)."""

from pathlib import Path

import pytest

from microvlm import load_plugins
from microvlm.config import Pipeline, Recipe
from microvlm.errors import RecipeError
from microvlm.recipe import load_recipe

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


def _missing_plugin_only(problems):
    return all("pip install microvlm-" in p or "does not provide it yet" in p for p in problems)


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_recipe_validates_or_names_the_missing_package(path, plugins):
    try:
        recipe = load_recipe(path, plugins)
    except RecipeError as exc:
        assert _missing_plugin_only(exc.problems), "\n".join(exc.problems)
        return
    assert isinstance(recipe, (Recipe, Pipeline))


def test_recipe_files_carry_the_seed_hyperparameters():
    from microvlm.recipe import load_table

    for name, (lr, epochs, batch) in SEED_TABLE.items():
        run = load_table(Path(__file__).parent.parent / "recipes" / f"{name}.toml").data["run"]
        assert (run["lr"], run["epochs"], run["batch_size"]) == (lr, epochs, batch), name


def test_pipeline_runs_the_four_stages_in_order():
    from microvlm.recipe import load_table

    stages = load_table(Path(__file__).parent.parent / "recipes" / "pipeline.toml").data["stages"]
    assert [s["recipe"] for s in stages] == [f"{n}.toml" for n in SEED_TABLE]
