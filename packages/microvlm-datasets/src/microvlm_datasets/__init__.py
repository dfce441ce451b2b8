"""Dataset builders for MicroVLM-E, registered as plugins through the ``microvlm`` entry point."""

from __future__ import annotations

import importlib.metadata as _md

try:
    __version__ = _md.version("microvlm-datasets")
except _md.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
