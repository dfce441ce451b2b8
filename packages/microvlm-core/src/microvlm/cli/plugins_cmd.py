"""``microvlm plugins``: what the installed packages register, and what failed to load."""

from __future__ import annotations

import json
from typing import Any

import click

from microvlm.cli.literal import add_literal_row
from microvlm.plugins.manager import Plugins


def plugin_rows(plugins: Plugins) -> list[dict[str, Any]]:
    """One row per component, duplicate and broken plugin: kind, name, distribution, version, status."""
    rows: list[dict[str, Any]] = []
    for c in plugins.components():
        rows.append(_row(c.kind, c.name, c.distribution, c.version, "ok", c.plugin, c.description))
    for group in plugins.duplicates():
        others = ", ".join(c.distribution for c in group)
        for c in group:
            rows.append(
                _row(
                    c.kind,
                    c.name,
                    c.distribution,
                    c.version,
                    f"duplicate ({others})",
                    c.plugin,
                    c.description,
                )
            )
    for b in plugins.broken:
        rows.append(_row("plugin", b.plugin, b.distribution, b.version, f"broken: {b.error}", b.plugin, ""))
    for r in plugins.refused_commands:
        status = f"refused: '{r.command}' is a command of {r.owner}"
        rows.append(_row("command", r.command, r.distribution, r.version, status, r.plugin, ""))
    return rows


def _row(
    kind: str, name: str, dist: str, version: str, status: str, plugin: str, description: str
) -> dict[str, Any]:
    return {
        "kind": kind,
        "name": name,
        "distribution": dist,
        "version": version,
        "status": status,
        "plugin": plugin,
        "description": description,
    }


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects instead of a table.")
@click.pass_obj
def plugins_command(plugins: Plugins, as_json: bool) -> None:
    """List every registered component (kind, name, distribution, version, status).

    Broken plugins (import errors, failing hooks) are listed with their error, and plugin
    commands refused because their name is taken with the command that keeps it; the rest
    keep working. Set MICROVLM_LOAD_PLUGINS=dist1,dist2 to load only those distributions.
    """
    rows = plugin_rows(plugins)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    columns = ("kind", "name", "distribution", "version", "status", "description")
    table = Table(*columns)
    for r in rows:
        # literal: a plugin's "[wandb]" or "[/]" is shown as written, not read as markup
        add_literal_row(table, *(r[c] for c in columns), style=None if r["status"] == "ok" else "red")
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # pipes and files: do not wrap to 80 columns
    console.print(table)
