"""Dataset builders of microvlm-datasets: hook implementations only; heavy imports live in the factories.

What is registered comes from :data:`microvlm_datasets.catalogue.CATALOGUE`, the one table of
this package's datasets (``microvlm datasets status`` reads it too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from microvlm import hookimpl
from microvlm_datasets.catalogue import CATALOGUE

if TYPE_CHECKING:
    import click

    from microvlm.plugins.manager import Register


@hookimpl
def register_datasets(register: Register) -> None:
    for info in CATALOGUE.values():
        register(info.name, info.factory(), info.config_cls, description=info.description)


@hookimpl
def register_commands(cli: click.Group) -> None:
    from microvlm_datasets.cli import datasets_group

    cli.add_command(datasets_group())
