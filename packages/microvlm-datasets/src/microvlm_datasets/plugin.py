"""Dataset builders and download sources of microvlm-datasets: hook implementations only; heavy
imports live in the factories.

The builders come from :data:`microvlm_datasets.catalogue.CATALOGUE`, the one table of this
package's datasets (``microvlm datasets status`` reads it too); the sources from the TOML
catalogue under ``download/catalogue/`` (:func:`microvlm_datasets.download.sources.load_catalogue`),
each registered with a factory that returns its :class:`~microvlm_datasets.download.sources.DatasetSource`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
def register_sources(register: Register) -> None:
    from microvlm_datasets.download.sources import SourceSettings, catalogue_files, read_table

    for path in catalogue_files():  # read as TOML only: checking (cattrs) waits for the factory
        description = read_table(path).get("description", "")
        register(path.stem, _source_factory(path), SourceSettings, description=str(description))


def _source_factory(path: Path) -> Callable[..., Any]:
    def factory(config: Any = None, **_: Any) -> Any:
        from microvlm_datasets.download.sources import load_file

        return load_file(path)

    factory.__name__ = f"source_{path.stem}"
    factory.__doc__ = f"The '{path.stem}' download source (download/catalogue/{path.name})."
    return factory


@hookimpl
def register_commands(cli: click.Group) -> None:
    from microvlm_datasets.cli import datasets_group

    cli.add_command(datasets_group())
