"""``microvlm model-info RECIPE``: parameters per component, what trains, weight memory, and
the size of each export format (``--checkpoint EXPORT``: an export's manifest groups)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from microvlm.cli.literal import add_literal_row, literal
from microvlm.plugins.manager import Plugins


@click.command("model-info")
@click.argument("recipe_path", metavar="RECIPE", required=False)
@click.option(
    "--checkpoint",
    type=click.Path(exists=True, file_okay=False),
    help="Count a checkpoint or export folder instead of a recipe (an export: its manifest's groups).",
)
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
def model_info_command(
    plugins: Plugins,
    recipe_path: str | None,
    checkpoint: str | None,
    as_json: bool,
    overrides: tuple[str, ...],
) -> None:
    """Count the parameters of RECIPE's model, per component, the memory of its weights and
    the size of each export format.

    The model is built on the meta device from configs alone: no weights are loaded or
    downloaded (the encoder's pretrained weights and the LLM's init do not change the
    counts). Trainable counts follow the recipe's run.train; memory is the weights' at the
    LLM's dtype (4-bit NF4 for a qlora base), float32 for the other parts. The second table
    is what `microvlm export --format NAME` would write, per registered exporter, computed
    from shapes (nothing is written): the tensor bytes of the folder, the ratio to fp16 and
    the bits per weight of the LLM's linear layers.

    \b
      microvlm model-info recipes/stage2_lora.toml
      microvlm model-info recipes/qlora_training.toml --json --set model.encoder.name=diet_small
      microvlm model-info --checkpoint exported_models/int8
    """
    if (recipe_path is None) == (checkpoint is None):
        raise click.UsageError("give either RECIPE or --checkpoint FOLDER")
    if checkpoint is not None:
        _checkpoint_info(plugins, Path(checkpoint), as_json, overrides)
        return
    from microvlm.recipes.config import Pipeline
    from microvlm.recipes.load import load_recipe

    recipe = load_recipe(recipe_path, plugins, list(overrides))
    stages = [s.recipe for s in recipe.stages] if isinstance(recipe, Pipeline) else [recipe]
    reports = [_report(s.run.name, s.model, plugins, s.run.train) for s in stages]
    _emit(reports, {"recipe": recipe_path}, as_json)


def _report(run: str, config: Any, plugins: Plugins, train: Any) -> dict[str, Any]:
    from microvlm.models.info import count_model, export_estimates, meta_model

    model = meta_model(config, plugins)
    info = count_model(model, train, plugins).to_dict()
    return {"run": run, **info, "exports": {e.format: e.to_dict() for e in export_estimates(model, plugins)}}


def _emit(reports: list[dict[str, Any]], head: dict[str, Any], as_json: bool) -> None:
    if as_json:
        body = reports[0] if len(reports) == 1 else {"stages": reports}
        click.echo(json.dumps({**head, **body}, indent=2))
        return
    for report in reports:
        _print_table(report)
        _print_exports(report["exports"])


def _checkpoint_info(plugins: Plugins, folder: Path, as_json: bool, overrides: tuple[str, ...]) -> None:
    """An export folder: its manifest's groups; a checkpoint folder: its ``model.toml`` counted."""
    from microvlm.io.layout import MANIFEST
    from microvlm.models.exports import read_manifest
    from microvlm.models.pretrained import MODEL_TABLE, apply_options, distrust, read_model_table
    from microvlm.recipes.load import build_model_config

    if (folder / MANIFEST).is_file():
        manifest = read_manifest(folder)
        if as_json:
            keys = ("exporter", "bytes", "groups", "notes")
            click.echo(
                json.dumps({"checkpoint": str(folder), **{k: manifest.get(k) for k in keys}}, indent=2)
            )
        else:
            _print_manifest(folder, manifest)
        return
    table_file = folder / MODEL_TABLE
    if not table_file.is_file():
        raise click.ClickException(
            f"{folder}: neither an export ({MANIFEST}) nor a checkpoint ({MODEL_TABLE})"
        )
    table = distrust(read_model_table(table_file), str(table_file))
    values = dict(o.partition("=")[::2] for o in overrides)
    apply_options(table, {k.removeprefix("model."): v for k, v in values.items()}, str(table_file))
    config = build_model_config(table, plugins, str(table_file))
    _emit([_report(folder.name, config, plugins, None)], {"checkpoint": str(folder)}, as_json)


def _console() -> Any:
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)  # pipes: do not wrap to 80 columns


def _print_exports(exports: dict[str, dict[str, Any]]) -> None:
    from rich.table import Table

    from microvlm.models.info import BASELINE, format_bytes

    if not exports:
        return  # no exporter plugin installed
    table = Table(
        "format", "folder", f"x {BASELINE}", "LLM linears", title=literal("export formats (microvlm export)")
    )
    for name, e in exports.items():
        if "error" in e:
            add_literal_row(table, name, f"error: {e['error']}", "", "")
            continue
        ratio, bits = e[f"x_{BASELINE}"], e["llm_linear_bits_per_weight"]
        add_literal_row(
            table,
            name,
            format_bytes(e["bytes"]),
            "-" if ratio is None else f"{ratio:.3f}",
            "-" if bits is None else f"{bits:.4g} bits per weight",
        )
    _console().print(table)


def _print_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    from rich.table import Table

    from microvlm.models.info import format_bytes

    title = f"{folder}: {manifest['exporter']} export, {format_bytes(manifest.get('bytes', 0))} on disk"
    table = Table("group", "parameters", "bytes", "bits per weight", "storage", title=literal(title))
    for g in manifest.get("groups", []):
        add_literal_row(
            table,
            g["name"],
            f"{g['parameters']:,}",
            format_bytes(g["bytes"]),
            g["bits_per_weight"],
            g["storage"],
        )
    _console().print(table)
    for note in manifest.get("notes", []):
        click.echo(f"  {note}")


def _print_table(report: dict[str, Any]) -> None:
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
    _console().print(table)
