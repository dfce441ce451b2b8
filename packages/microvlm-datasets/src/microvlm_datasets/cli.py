"""``microvlm datasets ...``: the synthetic shapes set, downloads (:mod:`.cli_download`) and the
status of the datasets on disk.

Only click is imported here; numpy, PIL, rich and the builders are imported inside the command bodies.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from microvlm_datasets.shapes.generate import MAX_PER_SPLIT, MIN_IMAGE_SIZE


def datasets_group() -> click.Group:
    """A fresh ``datasets`` group with every dataset command (one per CLI built, no shared state)."""

    @click.group("datasets")
    def datasets() -> None:
        """Dataset tools: downloads, the synthetic shapes set in the real formats, and what is on disk."""

    from microvlm_datasets.cli_download import download_command

    datasets.add_command(download_command)
    datasets.add_command(shapes_command)
    datasets.add_command(status_command)
    return datasets


@click.command("shapes")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write (new, empty, or written by this command before: it is replaced).",
)
@click.option(
    "--n-train", default=5000, show_default=True, type=click.IntRange(0, MAX_PER_SPLIT), help="Train images."
)
@click.option(
    "--n-val", default=500, show_default=True, type=click.IntRange(0, MAX_PER_SPLIT), help="Val images."
)
@click.option(
    "--n-test", default=500, show_default=True, type=click.IntRange(0, MAX_PER_SPLIT), help="Test images."
)
@click.option(
    "--image-size",
    default=128,
    show_default=True,
    type=click.IntRange(MIN_IMAGE_SIZE, 4096),
    help="Side of the square images, pixels.",
)
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0), help="Same seed, same bytes.")
@click.option(
    "--samples-per-shard",
    default=1000,
    show_default=True,
    type=click.IntRange(1),
    help="Images per web-shard tar.",
)
def shapes_command(
    out: Path, n_train: int, n_val: int, n_test: int, image_size: int, seed: int, samples_per_shard: int
) -> None:
    """Write the synthetic shapes set: COCO captions, VQAv2, RefCOCO, LLaVA and web-shard formats.

    \b
    Then point the real builders at it, e.g. in a recipe:
      [[data]]  dataset = "coco_caption"  root = "OUT/coco"
      [[data]]  dataset = "vqav2"  root = "OUT/vqa"  image_root = "OUT/coco"
      [[data]]  dataset = "shapes"  root = "OUT"  view = "grounding"
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from microvlm_datasets.shapes import generate

    total = n_train + n_val + n_test
    console = Console(stderr=True)
    start = time.perf_counter()
    with Progress(
        TextColumn("shapes"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("images", total=total)
        manifest = generate(
            out,
            n_train,
            n_val,
            n_test,
            image_size,
            seed,
            samples_per_shard=samples_per_shard,
            progress=lambda n: bar.advance(task, n),
        )
    seconds = time.perf_counter() - start
    from microvlm_datasets.shapes.tokenizer import write_tokenizer

    tokenizer = write_tokenizer(out)
    table = Table("split", "images", "captions", "questions", "expressions", "conversations", "shards")
    for split, n in manifest["splits"].items():
        table.add_row(
            split,
            *(
                str(n[k])
                for k in ("images", "captions", "questions", "expressions", "conversations", "shards")
            ),
        )
    Console().print(table)
    rate = total / seconds * 60 if seconds > 0 else float("inf")
    click.echo(f"wrote {total} images ({image_size} px, seed {seed}) to {out} in {seconds:.1f} s")
    click.echo(f"throughput: {rate:,.0f} images/min")
    click.echo(f"tokenizer trained on its texts: {tokenizer}")


def _size(n: int | None) -> str:
    if n is None:
        return "(above)"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""  # pragma: no cover


@click.command("status")
@click.option(
    "--root",
    default="data",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Data root holding coco/, vqa/, refcoco/, ... (or a folder written by `microvlm datasets shapes`).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a table.")
@click.pass_context
def status_command(ctx: click.Context, root: Path, as_json: bool) -> None:
    """Which datasets are on disk under ROOT: splits, samples, images, missing files, failures, disk use.

    \b
    Each dataset is looked for in its conventional folder: coco/, flickr30k/, vqa/, okvqa/,
    aokvqa/, gqa/, ocrvqa/, refcoco/, refcoco_plus/, refcocog/, llava/ (images in coco/),
    cc3m/, laion_coco/, sbu/ (img2dataset shards) and shapes/.

    \b
    Each dataset and each download source is then complete, partial (what is missing is
    listed), needs login (a Kaggle login, a hub token and accepted terms, or manual steps),
    needs tool (img2dataset, with its install command) or absent.
    """
    import json

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from microvlm_datasets.cli_download import plugin_sources
    from microvlm_datasets.status import status

    report = status(root, plugin_sources(ctx))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    title = f"datasets under {root}" + (" (a shapes set)" if report["kind"] == "shapes" else "")
    table = Table(title=Text(title))
    for column in ("dataset", "state", "split", "status"):
        table.add_column(column, no_wrap=True)
    for column in ("samples", "images", "missing", "skipped", "failed dl", "disk"):
        table.add_column(column, justify="right", no_wrap=column != "skipped")
    present = 0
    notes = []
    for entry in report["datasets"]:
        state = entry.get("state", "")
        if state not in ("complete", "absent", ""):
            detail = "; ".join(entry["missing"][:4]) + (" ..." if len(entry["missing"]) > 4 else "")
            notes.append((state, f"{entry['name']}: {state}: {entry['needs'] or detail}"))
        if not entry["present"]:
            table.add_row(entry["name"], _state(state), "", "absent", *[""] * 6, style="dim")
            continue
        present += any(row["status"] == "present" for row in entry["splits"])
        for k, row in enumerate(entry["splits"] or [{"split": "", "status": "empty"}]):
            state = row["status"]
            numbers = ["", "", "", "", ""]
            if state == "present":
                skipped = ", ".join(f"{r} {n}" for r, n in row["skipped"].items()) or "0"
                numbers = [
                    f"{row['samples']:,}",
                    f"{row['images']:,}",
                    f"{row['missing_images']:,}",
                    skipped,
                    f"{row['download_failures']:,}",
                ]
            elif row.get("error"):
                notes.append((state, f"{entry['name']} {row['split']}: {row['error']}"))
            colour = {"present": "green", "error": "red"}.get(state, "yellow")
            table.add_row(
                entry["name"] if k == 0 else "",
                _state(state) if k == 0 else "",
                row["split"],
                f"[{colour}]{state}[/{colour}]",
                *numbers,
                _size(entry["disk_bytes"]) if k == 0 else "",
            )
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 120))  # piped: do not squeeze the columns
    console.print(table)
    for state, note in notes:  # notes hold file names and error text: never read as markup
        colour = "red" if state == "error" else "yellow"
        console.print(Text.assemble((state, colour), ": ", note), highlight=False)
    if report["sources"]:
        console.print(_sources_table(report["sources"]))
    click.echo(f"{present} of {len(report['datasets'])} datasets present under {root}")


_STATE_COLOURS = {"complete": "green", "partial": "yellow", "needs login": "magenta", "needs tool": "magenta"}


def _state(state: str) -> str:
    colour = _STATE_COLOURS.get(state, "dim")
    return f"[{colour}]{state}[/{colour}]" if state else ""


def _sources_table(sources: list[dict]) -> object:
    """One row per download source: its state and what is missing or needed."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text("download sources (microvlm datasets download --datasets NAME)"))
    for column in ("source", "state", "folder", "missing / needs"):
        table.add_column(column, no_wrap=column != "missing / needs")
    for s in sources:
        missing = ", ".join(s["missing"][:3]) + (" ..." if len(s["missing"]) > 3 else "")
        detail = "; ".join(x for x in (missing, s["needs"]) if x)
        table.add_row(Text(s["name"]), _state(s["state"]), Text(s["folder"]), Text(detail))
    return table
