"""``microvlm datasets ...``: the synthetic shapes set (the download and status commands join this group).

Only click is imported here; numpy, PIL and rich are imported inside the command bodies.
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
        """Dataset tools: write the synthetic shapes set in the real dataset formats."""

    datasets.add_command(shapes_command)
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
