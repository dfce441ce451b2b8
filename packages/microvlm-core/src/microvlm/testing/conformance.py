"""The conformance kit: checks a plugin author runs in their own tests to prove a component does
what its kind's contract (:mod:`microvlm.contracts`) says, the way fsspec's
``fsspec.tests.abstract`` and SQLAlchemy's ``testing.suite`` serve third-party backends.

Each ``check_*`` builds the component as core would and exercises it on a small input; a
failure raises :class:`ConformanceError` (an ``AssertionError``) naming the component and what
is wrong. No pytest import: the kit runs under any runner::

    from microvlm.testing.conformance import check_encoder
    check_encoder(build_my_encoder, MyEncoderConfig())

:func:`check_component` runs the right check for a registered
:class:`~microvlm.plugins.manager.Component`, e.g. over ``load_plugins().components()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from microvlm.plugins.manager import Component
from microvlm.testing.conformance_base import ConformanceError, check_members
from microvlm.testing.conformance_data import (
    check_dataset,
    check_logger,
    check_quantizer,
    check_source,
    check_task,
)
from microvlm.testing.conformance_model import (
    check_bridge,
    check_encoder,
    check_exporter,
    check_llm,
    check_qat,
)


def check_component(component: Component, config: Any = None, **context: Any) -> Any:
    """Run the check of ``component.kind`` on ``component`` (``config``: its config class's
    defaults when ``None``). ``context`` holds what that check needs: ``encoder_dim`` (bridge),
    ``plugins`` (llm, exporter; loaded when absent), ``samples`` (task), ``model`` (exporter),
    ``tmp_path`` (logger). :returns: the built component."""
    config = component.config_cls() if config is None else config
    factory, name, kind = component.factory, component.name, component.kind
    if kind == "encoder":
        return check_encoder(factory, config, name=name, **context)
    if kind == "bridge":
        return check_bridge(factory, config, name=name, **context)
    if kind == "llm":
        return check_llm(factory, config, name=name, **{"plugins": _plugins(context), **context})
    if kind == "dataset":
        return check_dataset(factory, config, name=name, **context)
    if kind == "task":
        return check_task(factory, config, name=name, **context)
    if kind == "source":
        return check_source(factory, config, name=name, **context)
    if kind == "quantizer":
        return check_quantizer(factory, config, name=name, **context)
    if kind == "exporter":
        return check_exporter(factory, config, name=name, **{"plugins": _plugins(context), **context})
    if kind == "qat":
        return check_qat(factory, config, name=name, **context)
    if kind == "logger":
        tmp_path = Path(context.pop("tmp_path"))
        return check_logger(factory, config, tmp_path, name=name, **context)
    raise ConformanceError(f"{kind} '{name}': the kit has no check for kind {kind!r}")


def _plugins(context: dict[str, Any]) -> Any:
    if "plugins" in context:
        return context["plugins"]
    from microvlm.plugins.manager import load_plugins

    return load_plugins()


__all__ = [
    "ConformanceError",
    "check_bridge",
    "check_component",
    "check_dataset",
    "check_encoder",
    "check_exporter",
    "check_llm",
    "check_logger",
    "check_members",
    "check_qat",
    "check_quantizer",
    "check_source",
    "check_task",
]
