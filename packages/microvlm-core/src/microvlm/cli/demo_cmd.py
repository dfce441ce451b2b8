"""``microvlm demo``: the offline demo, and the seed's quick-start script."""

from __future__ import annotations

import json
from pathlib import Path

import click

from microvlm.cli.infer_inputs import max_new_tokens_option
from microvlm.errors import MicroVLMError
from microvlm.plugins import Plugins

DEMO_RECIPE = "recipes/demo.toml"
DEMO_CHECKPOINT = "output/demo/stage4/checkpoint_final"


def print_results(path: Path) -> None:
    """The results table of a ``results.json`` (VQA with its baseline, captions, grounding)."""
    from rich.console import Console
    from rich.table import Table

    from microvlm.cli.literal import add_literal_row, literal

    summary = json.loads(path.read_text())
    table = Table("task", "metric", "value", "majority baseline", title=literal(path))
    for task, metrics in summary.items():
        if task in ("entries", "wall_seconds") or not isinstance(metrics, dict):
            continue
        if "by_question_type" in metrics:
            add_literal_row(
                table, task, "accuracy", _fmt(metrics.get("accuracy")), _fmt(metrics.get("majority_baseline"))
            )
            for kind, values in sorted(metrics["by_question_type"].items()):
                add_literal_row(
                    table,
                    "",
                    f"  {kind}",
                    _fmt(values.get("accuracy")),
                    _fmt(values.get("majority_baseline")),
                )
            continue
        for name, value in metrics.items():
            if isinstance(value, (int, float)):
                add_literal_row(table, task, name, _fmt(value), "")
    if "wall_seconds" in summary:
        add_literal_row(table, "", "wall seconds", f"{summary['wall_seconds']:.0f}", "")
    Console().print(table)


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


@click.command("demo")
@click.option("--image", help="Answer about this image with the demo's model (the seed's quick_start.py).")
@click.option("--prompt", default="Describe this image.", show_default=True, help="Question or instruction.")
@click.option("--checkpoint", default=DEMO_CHECKPOINT, show_default=True, help="Model to answer with.")
@click.option("--recipe", default=DEMO_RECIPE, show_default=True, help="The demo recipe to run.")
@max_new_tokens_option(default=64)
@click.pass_obj
def demo_command(
    plugins: Plugins, image: str | None, prompt: str, checkpoint: str, recipe: str, max_new_tokens: int
) -> None:
    """Run the offline demo, or ask its model about an image.

    \b
      microvlm demo                                   train + evaluate (= microvlm run recipes/demo.toml)
      microvlm demo --image shapes.jpg --prompt "How many shapes are there?"
    """
    if image is not None:
        from microvlm.cli.infer_inputs import check_text, read_image
        from microvlm.cli.model_cmds import Answerer, load_model

        if not Path(checkpoint).is_dir():
            raise MicroVLMError(f"{checkpoint}: no demo model yet; train it first with: microvlm demo")
        check_text(prompt, "--prompt")
        picture = read_image(image)
        answerer = Answerer(load_model(checkpoint, plugins), {"max_new_tokens": max_new_tokens})
        answerer.answer([picture], [prompt], stream=True)
        return
    from microvlm.cli.recipe_cmd import dispatch
    from microvlm.recipe import load_recipe

    if not Path(recipe).is_file():
        raise MicroVLMError(f"{recipe}: not found; run microvlm demo from the repository root")
    dispatch(load_recipe(recipe, plugins), plugins)
