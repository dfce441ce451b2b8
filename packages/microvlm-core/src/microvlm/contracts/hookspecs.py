"""The hooks a MicroVLM plugin can implement.

Every component kind has one registration hook. Core calls each plugin's implementation
with a ``register`` callable; the plugin calls it once per component it provides::

    @microvlm.hookimpl
    def register_encoders(register):
        register("my_vit", build_my_vit, MyViTConfig, description="My ViT, 256-d")

``register(name, factory, config_cls, *, description="")``:

- ``name``: the name recipes use (``[model.encoder] name = "my_vit"``);
- ``factory``: a callable ``factory(config, **context)`` that builds the component. Keep
  heavy imports (torch, timm, transformers) inside it so that ``microvlm --help`` and
  ``microvlm plugins`` stay fast;
- ``config_cls``: a frozen ``attrs`` class. The recipe table of the component (minus its
  ``name``) is structured into it, so the plugin receives typed, validated settings.

Like pluggy's own guidance (and ``llm``'s hooks), an implementation may accept fewer
arguments than the spec names, so a spec can grow an argument without breaking plugins.
This module imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    import click

PROJECT = "microvlm"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class Register(Protocol):
    """The callable a registration hook receives."""

    def __call__(
        self,
        name: str,
        factory: Callable[..., Any],
        config_cls: type,
        *,
        description: str = "",
    ) -> None: ...


# -------------------------------------------------------------------------------------
# Model components
# -------------------------------------------------------------------------------------


@hookspec
def register_encoders(register: Register) -> None:
    """Register image encoders: images ``[B, 3, H, W]`` -> patch features ``[B, N, D_v]``.

    :param register: ``register(name, factory, config_cls, *, description="")``. The
        factory is called as ``factory(config)`` and returns an ``nn.Module`` satisfying
        :class:`microvlm.contracts.model.Encoder` (``out_dim``, ``data_config``, ``patch_grid``).
    :returns: nothing; results are collected through ``register``.
    """


@hookspec
def register_bridges(register: Register) -> None:
    """Register bridges: patch features ``[B, N, D_v]`` -> query features ``[B, Q, D_q]``.

    :param register: ``register(name, factory, config_cls, *, description="")``. The
        factory is called as ``factory(config, encoder_dim=D_v)`` and returns an
        ``nn.Module`` satisfying :class:`microvlm.contracts.model.Bridge` (``out_dim``
        ``D_q``, ``num_queries`` ``Q``, ``forward(features, return_attentions=False)`` ->
        :class:`~microvlm.contracts.model.BridgeOutput`).
    :returns: nothing; results are collected through ``register``.
    """


@hookspec
def register_llms(register: Register) -> None:
    """Register causal language models together with their tokenizer and adapters.

    :param register: ``register(name, factory, config_cls, *, description="")``. The
        factory is called as ``factory(config, plugins=..., device=None)`` and returns an
        ``nn.Module`` satisfying :class:`microvlm.contracts.model.LanguageModel`.
    :returns: nothing; results are collected through ``register``.
    """


# -------------------------------------------------------------------------------------
# Data and tasks
# -------------------------------------------------------------------------------------


@hookspec
def register_datasets(register: Register) -> None:
    """Register dataset builders: a source of typed samples read from files on disk.

    :param register: ``register(name, factory, config_cls, *, description="")``. The
        factory is called as ``factory(config)`` and returns a
        :class:`microvlm.contracts.data.DatasetBuilder`.
    :returns: nothing; results are collected through ``register``.
    """


@hookspec
def register_tasks(register: Register) -> None:
    """Register tasks: sample -> (prompt, target) for training; predictions -> metrics.

    :param register: ``register(name, factory, config_cls, *, description="")``. The
        factory is called as ``factory(config)`` and returns a
        :class:`microvlm.contracts.data.Task`.
    :returns: nothing; results are collected through ``register``.
    """


@hookspec
def register_sources(register: Register) -> None:
    """Register dataset sources: where a dataset's files are fetched from (``microvlm datasets download``).

    :param register: ``register(name, factory, config_cls, *, description="")``. The
        factory is called as ``factory(config)`` and returns a
        :class:`microvlm.contracts.data.DataSource` (name, folder under the data root,
        description, licence, login); microvlm-datasets' ``DatasetSource`` is the full form
        its downloader reads.
    :returns: nothing; results are collected through ``register``.
    """


# -------------------------------------------------------------------------------------
# Quantisation, logging and the command line
# -------------------------------------------------------------------------------------


@hookspec
def register_quantizers(register: Register) -> None:
    """Register quantisers: load-time quantisation of a base model (NF4 for QLoRA).

    :param register: ``register(name, factory, config_cls, *, description="")``. The
        factory is called as ``factory(config)`` and returns a
        :class:`microvlm.contracts.quant.Quantizer`.
    :returns: nothing; results are collected through ``register``.
    """


@hookspec
def register_exporters(register: Register) -> None:
    """Register exporters: a trained model -> a deployable folder -> a runnable model.

    :param register: ``register(name, factory, config_cls, *, description="")``. The
        factory is called as ``factory(config)`` and returns a
        :class:`microvlm.contracts.quant.Exporter`; ``microvlm export --format NAME`` uses it.
    :returns: nothing; results are collected through ``register``.
    """


@hookspec
def register_qat_schemes(register: Register) -> None:
    """Register quantisation-aware training schemes (a recipe's ``[qat] name = "..."``).

    :param register: ``register(name, factory, config_cls, *, description="")``. The
        factory is called as ``factory(config)`` and returns a
        :class:`microvlm.contracts.quant.QATScheme`.
    :returns: nothing; results are collected through ``register``.
    """


@hookspec
def register_loggers(register: Register) -> None:
    """Register metric sinks (console, JSON lines, experiment trackers).

    :param register: ``register(name, factory, config_cls, *, description="")``. The
        factory is called as ``factory(config, run_dir=..., run_config=...)`` and returns
        a :class:`microvlm.contracts.logger.Logger` (``log(metrics, step)``, ``close()``).
    :returns: nothing; results are collected through ``register``.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add sub-commands to the ``microvlm`` command line.

    :param cli: the top-level ``click`` group; decorate functions with ``@cli.command()``
        or add groups with ``cli.add_command(...)``. Import heavy modules inside the
        command bodies, not at module level. A command under a name that is taken (a
        built-in such as ``run``, or an earlier plugin's) is refused with a warning and
        listed by ``microvlm plugins``; if the hook raises, none of its commands are added.
    :returns: nothing.
    """


#: The component kinds, in the order ``microvlm plugins`` lists them, each with the hook
#: that registers it. ``register_commands`` is not a component kind: it has no registry.
COMPONENT_HOOKS: dict[str, str] = {
    "encoder": "register_encoders",
    "bridge": "register_bridges",
    "llm": "register_llms",
    "dataset": "register_datasets",
    "task": "register_tasks",
    "source": "register_sources",
    "quantizer": "register_quantizers",
    "exporter": "register_exporters",
    "qat": "register_qat_schemes",
    "logger": "register_loggers",
}

__all__ = ["COMPONENT_HOOKS", "PROJECT", "Register", "hookimpl", "hookspec"]
