"""MicroVLM-E: a compact vision-language model and the plugin framework around it.

The public API is re-exported here. Heavy objects (the model, processors) are imported
lazily on first access so that ``import microvlm`` stays fast and torch-free.
"""

from __future__ import annotations

import importlib.metadata as _md

from microvlm.errors import (
    DuplicateComponentError,
    MicroVLMError,
    PluginError,
    RecipeError,
    UnknownComponentError,
)
from microvlm.hookspecs import hookimpl
from microvlm.plugins import Component, Plugins, load_plugins, make_plugin_manager
from microvlm.recipe import load_recipe

_LAZY = {
    "MicroVLM": "microvlm.models.vlm",
    "ImageEvalProcessor": "microvlm.processors",
    "ImageTrainProcessor": "microvlm.processors",
}


def __getattr__(name: str) -> object:
    """``from microvlm import MicroVLM`` imports torch only when it is asked for."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'microvlm' has no attribute {name!r}")


try:
    __version__ = _md.version("microvlm-core")
except _md.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

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
