"""``microvlm datasets download``: fetch datasets into the layout the builders read.

The sources are every ``source`` component the loaded plugins register (this package's TOML
catalogue, ``download/catalogue/``, and any third party's), so ``--help`` lists them all. The
seed's spellings work: ``--datasets coco vqav2`` (names after one flag), ``--all``, the groups
(``--group vqa``, or a group's name among the names) and ``--status`` (which runs
``microvlm datasets status``). Transfers are :func:`microvlm_datasets.download.engine.download`'s;
this module chooses the sources, prints the manual steps and a summary, and imports the engine
inside the command body only.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import click

from microvlm_datasets.download.sources import GROUPS

#: The W&B project progress goes to when ``--wandb`` or ``WANDB_PROJECT`` asks for it (the seed's).
WANDB_PROJECT = "MicroVLM-E-datasets-logs"

EXAMPLES = """\b
Examples:
  microvlm datasets download --datasets coco vqav2 llava_instruct --root data/
  microvlm datasets download --group vqa grounding --jobs 8
  microvlm datasets download --all --root /big/disk/data
  microvlm datasets download --datasets cc3m --retry-failed --wandb
  microvlm datasets download --all --mirror http://images.cocodataset.org=http://mirror.local/coco
  microvlm datasets status --root data/
"""


def plugin_sources(ctx: click.Context | None = None) -> dict[str, Any]:
    """name -> source of every registered ``source`` component (the CLI's plugins, else loaded);
    one that fails to build is left out with a warning naming it and its plugin."""
    from microvlm.plugins.manager import Plugins, load_plugins

    root = ctx.find_root() if ctx is not None else None
    plugins = root.obj if root is not None and isinstance(root.obj, Plugins) else load_plugins()
    sources = {}
    for component in plugins.components("source"):
        try:
            sources[component.name] = component.build()
        except Exception as exc:  # one broken source (a bad catalogue file) must not hide the others
            where = f"{component.plugin} ({component.distribution})"
            click.echo(f"warning: source {component.name!r} of {where} left out: {exc}", err=True)
    return sources


def _size(n: int | None) -> str:
    if not n:
        return "size not stated"
    return f"~{n / 1e9:.1f} GB" if n >= 1e8 else f"~{n / 1e6:.0f} MB"


_LOGINS = {"huggingface": "needs a hub token", "kaggle": "needs a Kaggle login", "manual": "steps by hand"}


class DownloadCommand(click.Command):
    """A command whose help ends with the sources the loaded plugins register."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name, source in plugin_sources(ctx).items():
            groups = ",".join(getattr(source, "groups", ())) or "-"
            login = f"; {_LOGINS.get(source.login, source.login)}" if source.login else ""
            rows.append(
                (
                    name,
                    f"[{groups}] {source.description} ({_size(getattr(source, 'size_bytes', None))}{login})",
                )
            )
        with formatter.section("Sources (name [groups] what, size, login)"):
            formatter.write_dl(rows)
        formatter.write_paragraph()
        formatter.write_text(f"Groups: {', '.join(GROUPS)}.")
        super().format_epilog(ctx, formatter)


def _mirror(_: click.Context, __: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    mirrors = {}
    for value in values:
        prefix, sep, replacement = value.partition("=")
        if not sep or not prefix or not replacement:
            raise click.BadParameter(f"{value!r}: expected FROM=TO, two URL prefixes")
        mirrors[prefix] = replacement
    return mirrors


@click.command("download", cls=DownloadCommand, epilog=EXAMPLES)
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option(
    "--datasets",
    "datasets",
    multiple=True,
    metavar="NAME",
    help="A source (coco2017), an alias (coco) or a dataset it feeds (vqav2); more names may follow "
    "it without repeating the flag: --datasets coco vqav2 gqa. Sources a dataset needs (COCO "
    "images for VQAv2, RefCOCO, LLaVA) come with it.",
)
@click.option(
    "--group",
    "groups",
    multiple=True,
    type=click.Choice(GROUPS),
    help="Every source of a group: pretraining (cc3m laion_coco sbu), vqa (vqav2 okvqa aokvqa gqa "
    "ocrvqa), grounding (refcoco refcoco_plus refcocog), captioning, instruct. Repeatable.",
)
@click.option("--all", "everything", is_flag=True, help="Every source listed below (hundreds of GB).")
@click.option(
    "--root",
    default="data",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Data root: each source lands in its builders' default folder under it (coco/, vqa/, ...), "
    "so recipes read it with no further step.",
)
@click.option("--jobs", default=4, show_default=True, type=click.IntRange(1, 64), help="Transfers at a time.")
@click.option(
    "--mirror",
    "mirrors",
    multiple=True,
    metavar="FROM=TO",
    callback=_mirror,
    help="Fetch URLs starting with FROM from TO instead (a local mirror or cache). Repeatable.",
)
@click.option(
    "--retry-failed", is_flag=True, help="Web images: fetch again the rows an earlier run failed on."
)
@click.option(
    "--wandb",
    "wandb",
    is_flag=True,
    help=f"Log progress and success rates to W&B (also when WANDB_PROJECT is set; project "
    f"{WANDB_PROJECT} by default; WANDB_MODE=offline works with no network).",
)
@click.option(
    "--status", "show_status", is_flag=True, help="Only report what is on disk: runs `datasets status`."
)
@click.pass_context
def download_command(
    ctx: click.Context,
    names: tuple[str, ...],
    datasets: tuple[str, ...],
    groups: tuple[str, ...],
    everything: bool,
    root: Path,
    jobs: int,
    mirrors: dict[str, str],
    retry_failed: bool,
    wandb: bool,
    show_status: bool,
) -> None:
    """Download datasets into ROOT, resumable and verified, in the layout the builders read.

    Files resume where a killed run stopped, are checked against the size and checksum the
    source publishes, and land under their final name only when complete; archives are
    extracted once. Hub files go through huggingface_hub (HF_TOKEN or `huggingface-cli login`);
    web-scale image sets through img2dataset. A failed source does not stop the others: each
    is summarised at the end, and rerunning the same command fetches only what is missing.
    """
    from microvlm.errors import MicroVLMError
    from microvlm_datasets.download.sources import CatalogueError, select_sources

    if show_status:
        from microvlm_datasets.cli import status_command

        ctx.invoke(status_command, root=root)
        return
    sources = plugin_sources(ctx)
    words = [*datasets, *names]
    groups = (*groups, *(w for w in words if w in GROUPS))
    words = [w for w in words if w not in GROUPS]
    if not (words or groups or everything):
        raise click.UsageError("name what to download: --datasets NAME ..., --group GROUP, or --all")
    try:
        chosen = select_sources(sources, words, groups, everything)
    except CatalogueError as exc:
        raise click.UsageError(str(exc)) from None
    for source in chosen:
        steps = getattr(source, "manual_steps", "").strip()
        if steps:  # ROOT in the steps is the --root given
            why = _LOGINS.get(source.login, "steps by hand")
            click.echo(f"{source.name} ({why}), by hand first:\n{steps.replace('ROOT', str(root))}\n")
    click.echo(f"downloading {', '.join(s.name for s in chosen)} into {root}")
    try:
        summaries = _download(chosen, root, jobs, mirrors, retry_failed, _wandb_project(wandb))
    except MicroVLMError as exc:
        raise click.ClickException(str(exc)) from None
    failed = _print_summary(summaries)
    click.echo(f"then: microvlm datasets status --root {root}")
    if failed:
        ctx.exit(1)


def _wandb_project(flag: bool) -> str | None:
    if not (flag or os.environ.get("WANDB_PROJECT")):
        return None
    return os.environ.get("WANDB_PROJECT") or WANDB_PROJECT


def _download(
    sources: list[Any],
    root: Path,
    jobs: int,
    mirrors: dict[str, str],
    retry_failed: bool,
    project: str | None,
) -> list[Any]:
    """The engine's download, with W&B logging where the engine takes it."""
    from microvlm_datasets.download import engine

    kwargs: dict[str, Any] = {"jobs": jobs, "mirrors": mirrors, "retry_failed": retry_failed}
    accepts = inspect.signature(engine.download).parameters
    if project is not None and "wandb_project" in accepts:
        kwargs["wandb_project"] = project
    elif project is not None:
        click.echo("W&B: this microvlm-datasets' download engine does not log to W&B yet", err=True)
    return engine.download(sources, root, **kwargs)


def _print_summary(summaries: list[Any]) -> bool:
    """One row per source; returns whether any failed."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table("source", "status", "fetched", "already there", "received", "web images", title="download")
    failed = False
    notes = []
    for s in summaries:
        failed |= s.status == "failed"
        colour = {"complete": "green", "failed": "red"}.get(s.status, "yellow")
        rate = getattr(s.web, "success_rate", None)
        web = f"{rate:.1%} downloaded" if isinstance(rate, float) else ""
        table.add_row(
            s.name, Text(s.status, style=colour), str(s.fetched), str(s.present), _bytes(s.bytes), web
        )
        notes += [f"{s.name}: {e}" for e in s.errors]
        if s.status == "manual":
            notes.append(f"{s.name}: by hand:\n{s.manual_steps.strip()}")
    console = Console()
    console.print(table)
    for note in notes:
        console.print(Text(note), highlight=False)
    return failed


def _bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""  # pragma: no cover


__all__ = ["EXAMPLES", "WANDB_PROJECT", "DownloadCommand", "download_command", "plugin_sources"]
