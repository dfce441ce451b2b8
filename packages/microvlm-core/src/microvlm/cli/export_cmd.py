"""``microvlm export``: a trained checkpoint -> a deployable folder (fp16, bf16, int8, 1.58-bit).

The seed's ``python export_model.py --checkpoint … --output-dir exported_models [--8bit |
--1_58bit]`` is spelled the same here after ``microvlm export``; each format is an exporter
plugin (``microvlm plugins`` lists them), so ``--format NAME`` picks any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from microvlm.errors import MicroVLMError
from microvlm.plugins.manager import Plugins

#: the seed's flags -> exporter names (microvlm-quant registers them)
FLAGS = {"fp16": "fp16", "bf16": "bf16", "8bit": "int8", "1_58bit": "bitnet158"}
DEFAULT_FORMAT = "fp16"  # the seed's export with no flag


def _format_flag(flag: str, name: str, help: str):  # type: ignore[no-untyped-def]
    return click.option(f"--{flag}", "flags", flag_value=name, multiple=True, help=help)


def _exporter_config(plugins: Plugins, name: str, pairs: tuple[str, ...]) -> Any:
    from microvlm.recipes.load import parse_override
    from microvlm.recipes.structure import ConfigErrors, structure

    component = plugins.get("exporter", name)
    table = dict(parse_override(p) for p in pairs)
    try:
        return structure(table, component.config_cls)
    except ConfigErrors as exc:
        lines = [f"--option {'.'.join(path) or '<all>'}: {message}" for path, message in exc.problems]
        raise MicroVLMError(f"exporter {name!r}: " + "; ".join(lines)) from None


@click.command("export")
@click.option("--checkpoint", required=True, help="The checkpoint to export (a run's checkpoint_final).")
@click.option(
    "--output-dir",
    default="exported_models",
    show_default=True,
    help="Parent folder: the export goes to OUTPUT_DIR/FORMAT (e.g. exported_models/int8).",
)
@click.option(
    "--output", "output", default=None, help="The export's own folder (instead of OUTPUT_DIR/FORMAT)."
)
@_format_flag("fp16", "fp16", "16-bit floats, LoRA merged (the default).")
@_format_flag("bf16", "bf16", "bfloat16, LoRA merged.")
@_format_flag("8bit", "int8", "int8 weights, per-output-channel scales (about half of fp16).")
@_format_flag("1_58bit", "bitnet158", "BitNet b1.58 ternary weights; for models trained with QAT (stage 5).")
@click.option("--format", "format_name", default=None, help="Any registered exporter (see microvlm plugins).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="An exporter setting.")
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override the checkpoint's model table."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing export in the output folder.")
@click.pass_obj
def export_command(
    plugins: Plugins,
    checkpoint: str,
    output_dir: str,
    output: str | None,
    flags: tuple[str, ...],
    format_name: str | None,
    options: tuple[str, ...],
    overrides: tuple[str, ...],
    overwrite: bool,
) -> None:
    """Export CHECKPOINT for deployment; run the result like a checkpoint.

    \b
      microvlm export --checkpoint output/stage4/checkpoint_final --output-dir exported_models
      microvlm export --checkpoint output/stage4/checkpoint_final --8bit
      microvlm infer --checkpoint exported_models/int8 --image cat.jpg --prompt "What is this?"
    """
    from microvlm.cli.model_cmds import load_model
    from microvlm.io.layout import resolve_checkpoint
    from microvlm.models.exports import check_target, export_model, is_export

    chosen = {*flags, *([format_name] if format_name else [])}
    if len(chosen) > 1:
        raise MicroVLMError(f"choose one export format, got {', '.join(sorted(chosen))}")
    name = chosen.pop() if chosen else DEFAULT_FORMAT
    config = _exporter_config(plugins, name, options)
    source = resolve_checkpoint(checkpoint)
    if is_export(source):
        raise MicroVLMError(f"{checkpoint}: already an export; export the checkpoint it came from")
    target = Path(output) if output else Path(output_dir) / name
    check_target(target, overwrite)  # before the model loads: a refusal costs nothing
    model = load_model(str(source), plugins, overrides)
    export_model(model, target, name, plugins, source=source, config=config, overwrite=overwrite)
    _print_summary(target)


def _print_summary(target: Path) -> None:
    import json

    from rich.console import Console
    from rich.table import Table

    from microvlm.cli.literal import add_literal_row, literal
    from microvlm.io.layout import MANIFEST
    from microvlm.models.info import format_bytes, format_count

    manifest = json.loads((target / MANIFEST).read_text())
    table = Table(
        "tensors",
        "weights",
        "bits/weight",
        "size",
        "storage",
        title=literal(f"{target} ({manifest['exporter']})"),
    )
    for g in manifest["groups"]:
        add_literal_row(
            table,
            g["name"],
            format_count(g["parameters"]),
            f"{g['bits_per_weight']:.2f}",
            format_bytes(g["bytes"]),
            g["storage"],
        )
    add_literal_row(table, "folder", "", "", format_bytes(manifest["bytes"]), "")
    console = Console()
    console.print(table)
    for note in manifest["notes"]:
        console.print(literal(f"note: {note}"))
    click.echo(f"export: {target}", err=True)
