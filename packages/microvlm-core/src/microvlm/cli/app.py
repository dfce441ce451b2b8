"""Builds the ``microvlm`` click group: core commands plus those plugins add.

Built-in commands always win: a plugin command under a name that is taken (a built-in's or an
earlier plugin's) is refused with a warning and listed by ``microvlm plugins``. Nothing here
imports torch; commands import heavy modules inside their bodies.
"""

from __future__ import annotations

import errno
import logging
import sys
from collections.abc import Sequence
from typing import TypeVar

import click

from microvlm.cli import demo_cmd, export_cmd, info_cmd, model_cmds, plugins_cmd, recipe_cmd
from microvlm.errors import MicroVLMError
from microvlm.plugins.manager import (
    CORE_DISTRIBUTION,
    BrokenPlugin,
    Plugins,
    RefusedCommand,
    describe_error,
    load_plugins,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: Options that, like the seed's argparse ``nargs="+"``, take several KEY=VALUE words.
MULTI_VALUE_OPTIONS = ("--set", "--options")
#: Options that take several plain words (``--tasks vqa captioning grounding``).
MULTI_WORD_OPTIONS = ("--tasks", "--datasets")

EPILOG = """\b
Seed scripts and their commands:
  train.py --cfg-path X --options k=v   ->  microvlm run X --set k=v
  export_model.py --checkpoint C --8bit ->  microvlm export --checkpoint C --8bit
  microvlm recipe check X               ->  validate a recipe without running it
  microvlm plugins                      ->  what is installed, and what failed to load
"""


class MicroVLMGroup(click.Group):
    """Turns :class:`MicroVLMError` (and a full disk anywhere) into one clear message and a
    non-zero exit, no traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except MicroVLMError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            where = f"writing {exc.filename}: " if exc.filename else ""
            raise click.ClickException(
                f"{where}the disk is full. Free some space and rerun the same command (training "
                "resumes from its newest checkpoint, which is intact)."
            ) from None


def _version_option(plugins: Plugins):  # type: ignore[no-untyped-def]
    def show(ctx: click.Context, _: click.Parameter, value: bool) -> None:
        if not value or ctx.resilient_parsing:
            return
        for dist, version in plugins.distributions().items():
            click.echo(f"{dist} {version}")
        ctx.exit()

    return click.option(
        "--version",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=show,
        help="Show the versions of microvlm-core and the installed plugin packages.",
    )


def build_cli(plugins: Plugins | None = None) -> click.Group:
    """The ``microvlm`` group with core's commands and every plugin's ``register_commands``."""
    plugins = load_plugins() if plugins is None else plugins

    @click.group(cls=MicroVLMGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
    @_version_option(plugins)
    @click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
    @click.pass_context
    def cli(ctx: click.Context, verbose: int) -> None:
        """MicroVLM-E: train, evaluate, quantize and run a compact vision-language model.

        Every component (encoders, bridges, LLMs, datasets, tasks, quantizers, exporters,
        loggers) is a plugin; TOML recipes wire them together:
        microvlm run recipes/stage1_alignment.toml
        """
        ctx.obj = plugins
        _configure_logging(verbose)

    cli.add_command(plugins_cmd.plugins_command)
    cli.add_command(recipe_cmd.recipe_group)
    cli.add_command(recipe_cmd.run_command)
    cli.add_command(recipe_cmd.train_command)
    cli.add_command(model_cmds.eval_command)
    cli.add_command(model_cmds.infer_command)
    cli.add_command(demo_cmd.demo_command)
    cli.add_command(info_cmd.model_info_command)
    cli.add_command(export_cmd.export_command)
    _add_plugin_commands(cli, plugins)
    return cli


def _add_plugin_commands(cli: click.Group, plugins: Plugins) -> None:
    owners = {name: f"{CORE_DISTRIBUTION} (built-in)" for name in cli.commands}  # command -> who has it
    for impl in plugins.hook.register_commands.get_hookimpls():  # in load order: the first keeps a name
        dist, version = plugins.origin(impl.plugin_name)
        before = dict(cli.commands)
        try:
            impl.function(**{arg: cli for arg in impl.argnames})
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a broken plugin, even sys.exit(), must not take the CLI down
            cli.commands.clear()
            cli.commands.update(before)  # none of a broken plugin's commands stay
            error = describe_error(exc)
            logger.warning("plugin %s (%s) failed to add its commands: %s", impl.plugin_name, dist, error)
            _record(plugins.broken, BrokenPlugin(impl.plugin_name, dist, version, error))
            continue
        for name in sorted(set(before) | set(cli.commands)):
            if name not in before:
                owners[name] = f"plugin '{impl.plugin_name}' ({dist})"
            elif cli.commands.get(name) is not before[name]:
                cli.commands[name] = before[name]  # the first owner keeps the name
                logger.warning(
                    "plugin %s (%s) tried to replace the command '%s' of %s; refused, it stays as it was. "
                    "Rename the plugin's command or uninstall %s.",
                    impl.plugin_name,
                    dist,
                    name,
                    owners[name],
                    dist,
                )
                refused = RefusedCommand(name, impl.plugin_name, dist, version, owners[name])
                _record(plugins.refused_commands, refused)


def _record(problems: list[T], problem: T) -> None:
    if problem not in problems:  # build_cli may run more than once on the same Plugins
        problems.append(problem)


def _configure_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    root = logging.getLogger()
    if not root.handlers:
        from rich.console import Console
        from rich.logging import RichHandler

        # Logs go to stderr: stdout carries results (--json output stays parseable).
        handler = RichHandler(
            console=Console(stderr=True), show_path=False, show_time=False, rich_tracebacks=False
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("microvlm").setLevel(min(level, logging.INFO))


def expand_multi_value(argv: Sequence[str]) -> list[str]:
    """``--options a=1 b=2`` -> ``--options a=1 --options b=2`` (the seed's argparse style).

    Words after ``--set``/``--options`` are taken while they look like ``KEY=VALUE``; words
    after ``--tasks``/``--datasets`` while they do not start with ``-``.
    """
    out: list[str] = []
    current: str | None = None  # the multi-value option being filled
    taken = False  # whether it has received a value yet
    for word in argv:
        wanted = current in MULTI_WORD_OPTIONS or "=" in word
        if current is not None and wanted and not word.startswith("-"):
            out.extend((current, word))
            taken = True
            continue
        if current is not None and not taken:
            out.append(current)  # no KEY=VALUE followed: let click report it
        current = None
        if word in MULTI_VALUE_OPTIONS or word in MULTI_WORD_OPTIONS:
            current, taken = word, False
            continue
        out.append(word)
    if current is not None and not taken:
        out.append(current)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    args = expand_multi_value(sys.argv[1:] if argv is None else argv)
    try:
        cli = build_cli()
    except MicroVLMError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    cli.main(args=args, prog_name="microvlm")
