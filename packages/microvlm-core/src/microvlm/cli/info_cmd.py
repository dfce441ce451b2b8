"""``microvlm model-info RECIPE``: parameters per component, what trains, and weight memory."""

from __future__ import annotations

import json
from typing import Any

import click

from microvlm.cli.literal import add_literal_row, literal
from microvlm.plugins.manager import Plugins


@click.command("model-info")
@click.argument("recipe_path", metavar="RECIPE")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--set",
    "--options",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe value, e.g. model.encoder.name=diet_small model.llm.lora_r=16.",
)
@click.pass_obj
def model_info_command(plugins: Plugins, recipe_path: str, as_json: bool, overrides: tuple[str, ...]) -> None:
    """Count the parameters of RECIPE's model, per component, and the memory of its weights.

    The model is built on the meta device from configs alone: no weights are loaded or
    downloaded (the encoder's pretrained weights and the LLM's init do not change the
    counts). Trainable counts follow the recipe's run.train; memory is the weights' at the
    LLM's dtype (4-bit NF4 for a qlora base), float32 for the other parts.

    \b
      microvlm model-info recipes/stage2_lora.toml
      microvlm model-info recipes/qlora_training.toml --json --set model.encoder.name=diet_small
    """
    from microvlm.models.info import model_info
    from microvlm.recipes.config import Pipeline
    from microvlm.recipes.load import load_recipe

    recipe = load_recipe(recipe_path, plugins, list(overrides))
    stages = [s.recipe for s in recipe.stages] if isinstance(recipe, Pipeline) else [recipe]
    reports = [{"run": s.run.name, **model_info(s.model, plugins, s.run.train).to_dict()} for s in stages]
    if as_json:
        body = reports[0] if len(reports) == 1 else {"stages": reports}
        click.echo(json.dumps({"recipe": recipe_path, **body}, indent=2))
        return
    for report in reports:
        _print_table(report)


def _print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from microvlm.models.info import format_bytes, format_count

    title = f"{report['run']}: trains {', '.join(report['train']) or 'nothing'}"
    table = Table(
        "part", "component", "parameters", "", "trainable", "weights", "memory", title=literal(title)
    )
    for name, part in report["parts"].items():
        add_literal_row(
            table,
            name,
            part["component"],
            f"{part['parameters']:,}",
            format_count(part["parameters"]),
            f"{part['trainable']:,}",
            part["dtype"],
            format_bytes(part["bytes"]),
        )
    total = report["total"]
    table.add_section()
    add_literal_row(
        table,
        "total",
        "",
        f"{total['parameters']:,}",
        format_count(total["parameters"]),
        f"{total['trainable']:,}",
        "",
        format_bytes(total["bytes"]),
        style="bold",
    )
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # pipes and files: do not wrap to 80 columns
    console.print(table)
