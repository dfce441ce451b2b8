"""Recipes that use A-OKVQA score it with its official metrics (issue 14), not VQAv2's rule."""

from pathlib import Path

from microvlm import load_plugins
from microvlm.recipes.config import Recipe
from microvlm.recipes.load import load_recipe

RECIPES = sorted((Path(__file__).parent.parent / "recipes").glob("*.toml"))


def test_aokvqa_entries_use_the_aokvqa_tasks():
    plugins = load_plugins()
    seen = set()
    for path in RECIPES:
        recipe = load_recipe(path, plugins)
        if not isinstance(recipe, Recipe):  # a pipeline: its stages are recipes of this folder
            continue
        for entry in (*recipe.data, *recipe.eval.data):
            if entry.dataset.name == "aokvqa":
                assert entry.task.name in {"aokvqa_da", "aokvqa_mc"}, (path.name, entry.task.name)
        seen |= {e.task.name for e in recipe.eval.data if e.dataset.name == "aokvqa"}
    assert seen == {"aokvqa_da", "aokvqa_mc"}  # stage 4 evaluates both settings
