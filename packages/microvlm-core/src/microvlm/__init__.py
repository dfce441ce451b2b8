"""MicroVLM-E: a compact vision-language model and the plugin framework around it.

The public API is re-exported here, lazily (PEP 562): ``import microvlm`` loads only the
errors and ``hookimpl``, which every plugin module needs, so that ``microvlm --help`` and
plugin discovery stay fast and torch-free. Each other name is imported on first access:
the recipe reader (cattrs), the plugin manager, the version (``importlib.metadata``), and
the heavy objects (the model and processors, torch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from microvlm.contracts.hookspecs import hookimpl
from microvlm.errors import (
    DuplicateComponentError,
    MicroVLMError,
    PluginError,
    RecipeError,
    UnknownComponentError,
)

if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from microvlm.models.processors import ImageEvalProcessor, ImageTrainProcessor
    from microvlm.models.vlm import MicroVLM
    from microvlm.plugins.manager import Component, Plugins, load_plugins, make_plugin_manager
    from microvlm.recipes.load import load_recipe

#: public name -> the module that defines it, imported on first access
_LAZY = {
    "Component": "microvlm.plugins.manager",
    "Plugins": "microvlm.plugins.manager",
    "load_plugins": "microvlm.plugins.manager",
    "make_plugin_manager": "microvlm.plugins.manager",
    "load_recipe": "microvlm.recipes.load",
    "MicroVLM": "microvlm.models.vlm",
    "ImageEvalProcessor": "microvlm.models.processors",
    "ImageTrainProcessor": "microvlm.models.processors",
}


def _version() -> str:
    import importlib.metadata as md

    try:
        return md.version("microvlm-core")
    except md.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def __getattr__(name: str) -> object:
    """``from microvlm import MicroVLM`` imports torch only when it is asked for."""
    if name == "__version__":
        value: object = _version()
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'microvlm' has no attribute {name!r}")
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "Component",
    "DuplicateComponentError",
    "ImageEvalProcessor",
    "ImageTrainProcessor",
    "MicroVLM",
    "MicroVLMError",
    "PluginError",
    "Plugins",
    "RecipeError",
    "UnknownComponentError",
    "__version__",
    "hookimpl",
    "load_plugins",
    "load_recipe",
    "make_plugin_manager",
]
