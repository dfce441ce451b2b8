"""``microvlm recipe check`` and ``microvlm run`` (alias ``train``)."""

from __future__ import annotations

import glob
import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from microvlm.errors import MicroVLMError, RecipeError

if TYPE_CHECKING:
    from microvlm.plugins.manager import Plugins
    from microvlm.recipes.config import Pipeline, Recipe

# The recipe schema and reader (cattrs) are imported inside the commands: `microvlm --help`
# does not need them.

YAML_SUFFIXES = (".yaml", ".yml")


def _override_option(f):  # type: ignore[no-untyped-def]
    return click.option(
        "--set",
        "--options",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a recipe value, TOML-typed (run.lr=2e-4, model.encoder.name=diet_small). "
        "Repeatable; several KEY=VALUE words may follow one --set/--options. "
        "'extends' cannot be set: --set applies on top of the files a recipe extends.",
    )(f)


def collect_overrides(
    overrides: tuple[str, ...],
    vision_encoder: str | None = None,
    use_lora: bool = False,
    use_qlora: bool = False,
    lora_r: int | None = None,
) -> list[str]:
    """The seed's shorthands and legacy keys, turned into ``--set`` overrides."""
    from microvlm.recipes.load import translate_legacy

    out: list[str] = []
    for text in overrides:
        key, sep, value = text.partition("=")
        new = translate_legacy(key.strip())
        if new is not None and sep:
            click.echo(f"note: '{key.strip()}' is now '{new}'", err=True)
            out.append(f"{new}={value}")
        else:
            out.append(text)
    if vision_encoder:
        out.append(f"model.encoder.name={vision_encoder}")
    if use_lora and use_qlora:
        raise click.UsageError("--use-lora and --use-qlora are exclusive (QLoRA already includes LoRA)")
    if use_lora:
        out.append('model.llm.adapter="lora"')
    if use_qlora:
        out.append('model.llm.adapter="qlora"')
    if lora_r is not None:
        out.append(f"model.llm.lora_r={lora_r}")
    return out


def short_name_matches(path: str) -> list[Path]:
    """The recipes a path that does not exist may abbreviate, best first; ``[]`` if none.

    ``recipes/stage4`` is ``recipes/stage4.toml`` when that exists; otherwise
    ``recipes/stage4.toml`` (or ``recipes/stage4``) stands for the ``recipes/stage4_*.toml``
    beside it (``stage4_multitask.toml``). A path that exists is never reinterpreted.
    """
    given = Path(path)
    if given.exists() or given.suffix not in ("", ".toml"):
        return []
    stem = given.stem if given.suffix else given.name
    if not stem:
        return []
    exact = given.with_name(f"{stem}.toml")
    if exact.is_file():
        return [exact]
    pattern = glob.escape(str(given.with_name(stem))) + "_*.toml"
    return [Path(p) for p in sorted(glob.glob(pattern)) if Path(p).is_file()]


def resolve_recipe_path(path: str) -> str:
    """``path``, or the one recipe its short name stands for (with a note on stderr).

    :raises RecipeError: the short name fits several recipes (each is named).
    """
    matches = short_name_matches(path)
    if not matches:
        return path
    if len(matches) > 1:
        names = " or ".join(str(m) for m in matches)
        raise RecipeError(f"{path}: file not found; it could mean {names}")
    click.echo(f"note: {path} does not exist; using {matches[0]}", err=True)
    return str(matches[0])


def _load(path: str, plugins: Plugins, overrides: list[str]) -> Recipe | Pipeline:
    if Path(path).suffix in YAML_SUFFIXES:
        candidate = Path("recipes") / f"{Path(path).stem}.toml"
        if not candidate.is_file() and len(shorts := short_name_matches(str(candidate))) == 1:
            candidate = shorts[0]  # train_configs/stage4.yaml -> recipes/stage4_multitask.toml
        hint = (
            f" Try: microvlm run {candidate}"
            if candidate.is_file()
            else " See recipes/ for the TOML recipes."
        )
        raise RecipeError(f"{path}: train.py's YAML configs are now TOML recipes.{hint}")
    from microvlm.recipes.load import load_recipe

    return load_recipe(path, plugins, overrides, check_output_dir=True)


def _summary(recipe: Recipe | Pipeline) -> str:
    from microvlm.recipes.config import Pipeline

    if isinstance(recipe, Pipeline):
        names = " -> ".join(s.recipe.run.name for s in recipe.stages)
        return f"pipeline of {len(recipe.stages)} stages: {names}"
    m = recipe.model
    data = ", ".join(f"{e.dataset.name}/{e.task.name}" for e in recipe.data)
    return f"{recipe.run.name}: {m.encoder.name} -> {m.bridge.name} -> {m.llm.name}; data: {data}"


@click.group("recipe")
def recipe_group() -> None:
    """Validate and inspect TOML recipes."""


@recipe_group.command("check")
@click.argument("recipes", nargs=-1, required=True, type=click.Path(dir_okay=False))
@_override_option
@click.option(
    "--print", "show", is_flag=True, help="Print the fully resolved recipe (defaults included) as TOML."
)
@click.pass_obj
def check_command(plugins: Plugins, recipes: tuple[str, ...], overrides: tuple[str, ...], show: bool) -> None:
    """Validate RECIPES without running them; exits non-zero if any is invalid."""
    failed = 0
    extra = collect_overrides(overrides)
    for typed in recipes:
        path = typed
        try:
            path = resolve_recipe_path(typed)
            recipe = _load(path, plugins, extra)
        except RecipeError as exc:
            failed += 1
            click.echo(f"FAIL {path}", err=True)
            for line in exc.problems:
                click.echo(f"  {line}", err=True)
            continue
        click.echo(f"ok   {path}  ({_summary(recipe)})")
        if show:
            click.echo(resolved_toml(recipe))
    if failed:
        raise click.ClickException(f"{failed} of {len(recipes)} recipes are invalid")


def resolved_toml(recipe: Recipe | Pipeline) -> str:
    """The resolved recipe as TOML text; a pipeline prints each stage after a header comment."""
    import tomli_w

    from microvlm.recipes.config import Recipe
    from microvlm.recipes.load import recipe_to_table

    if isinstance(recipe, Recipe):
        return tomli_w.dumps(recipe_to_table(recipe))
    parts = []
    for i, stage in enumerate(recipe.stages, 1):
        chained = " (init_from chained from the previous stage)" if stage.chained else ""
        parts.append(
            f"# ---- stage {i}: {stage.recipe.source}{chained}\n"
            + tomli_w.dumps(recipe_to_table(stage.recipe))
        )
    return "\n".join(parts)


def _make_run_command(name: str, help: str, hidden: bool = False) -> click.Command:
    @click.command(name, help=help, hidden=hidden)
    @click.argument("recipe", required=False, type=click.Path(dir_okay=False))
    @click.option("--cfg-path", "cfg_path", hidden=True, help="The seed's spelling of RECIPE.")
    @_override_option
    @click.option("--dry-run", is_flag=True, help="Validate and print the resolved recipe, then stop.")
    @click.option("--vision-encoder", metavar="NAME", help="Image encoder, e.g. diet_tiny or diet_small.")
    @click.option("--use-lora", is_flag=True, help='LoRA adapters on the LLM (model.llm.adapter="lora").')
    @click.option("--use-qlora", is_flag=True, help='4-bit NF4 base + LoRA (model.llm.adapter="qlora").')
    @click.option("--lora-r", type=int, help="LoRA rank (sets model.llm.lora_r; default 64).")
    @click.option(
        "--nproc",
        type=click.IntRange(min=1),
        metavar="N",
        help="Train with N processes on this machine (DDP: one per GPU, or gloo on CPU); "
        "relaunches the command through torchrun. run.batch_size is per process.",
    )
    @click.pass_context
    def command(
        ctx: click.Context,
        recipe: str | None,
        cfg_path: str | None,
        overrides: tuple[str, ...],
        dry_run: bool,
        vision_encoder: str | None,
        use_lora: bool,
        use_qlora: bool,
        lora_r: int | None,
        nproc: int | None,
    ) -> None:
        plugins: Plugins = ctx.obj
        path = recipe or cfg_path
        if path is None:
            raise click.UsageError("name a recipe, e.g. microvlm run recipes/stage1_alignment.toml")
        extra = collect_overrides(overrides, vision_encoder, use_lora, use_qlora, lora_r)
        path = resolve_recipe_path(path)
        loaded = _load(path, plugins, extra)
        launching = nproc is not None and nproc > 1 and not dry_run
        if not launching and os.environ.get("RANK", "0") == "0":  # once: rank 0 of the workers
            click.echo(f"recipe {path}: {_summary(loaded)}", err=True)
        if dry_run:
            click.echo(resolved_toml(loaded))
            return
        if launching:
            if torchrun_worker():
                raise click.UsageError("--nproc starts torchrun; this process already runs under it")
            verbose = ctx.find_root().params.get("verbose", 0)
            argv = [*(["-" + "v" * verbose] if verbose else []), name, path]
            argv += [word for o in extra for word in ("--set", o)]
            launch(nproc, argv)
        dispatch(loaded, plugins)

    return command


def torchrun_worker() -> bool:
    """True in a process started by torchrun (``WORLD_SIZE`` set)."""
    return "WORLD_SIZE" in os.environ


def torchrun_command(nproc: int, argv: list[str]) -> list[str]:
    """``python -m torch.distributed.run --standalone --nproc_per_node N -m microvlm ARGV``."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "microvlm",
        *argv,
    ]


def launch(nproc: int, argv: list[str]) -> NoReturn:
    """Replace this process with torchrun running ``microvlm ARGV`` in ``nproc`` processes.

    On POSIX the process is replaced (exec), so signals (SIGTERM from a scheduler, Ctrl-C)
    reach torchrun, which forwards them to the workers; elsewhere it waits for torchrun and
    exits with its status.
    """
    command = torchrun_command(nproc, argv)
    click.echo(f"launching {nproc} processes: {' '.join(command[1:])}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execv(sys.executable, command)
    sys.exit(subprocess.call(command))  # pragma: no cover - Windows


def dispatch(recipe: Recipe | Pipeline, plugins: Plugins) -> None:
    """Hand a validated recipe to the training runner (``microvlm.train``)."""
    try:
        runner = importlib.import_module("microvlm.train")
    except ModuleNotFoundError as exc:
        if exc.name != "microvlm.train":
            raise
        raise MicroVLMError(
            "this microvlm-core has no training runner yet; the recipe is valid "
            "(see it resolved with: microvlm recipe check --print RECIPE)"
        ) from None
    final = runner.run(recipe, plugins)
    results = final.parent / "results.json"
    if results.is_file():
        from microvlm.cli.results_table import print_results

        print_results(results)
    click.echo(f"final checkpoint: {final}", err=True)


_RUN_HELP = """Run RECIPE: one training stage, or a pipeline recipe that runs stages in order.

\b
  microvlm run recipes/stage1_alignment.toml --set run.lr=2e-4
  microvlm run recipes/pipeline.toml
  microvlm run recipes/stage2_lora.toml --options model.lora_r=32   (seed spelling)
"""

run_command = _make_run_command("run", _RUN_HELP)
train_command = _make_run_command("train", "Alias of 'microvlm run' (the seed's train.py).", hidden=True)
