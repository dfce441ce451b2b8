"""Model components of microvlm-core: the Q-Former bridge and the projection.

Importing this package does not import torch: the configs live in light modules and the
torch modules are loaded on first attribute access (``microvlm.models.QFormer``).
"""

from __future__ import annotations

import importlib
from typing import Any

from microvlm.models.qformer_config import QFormerConfig

_LAZY = {
    "QFormer": "microvlm.models.qformer",
    "QFormerOutput": "microvlm.models.qformer",
    "Projection": "microvlm.models.projection",
    "build_qformer": "microvlm.models.qformer",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Projection", "QFormer", "QFormerConfig", "QFormerOutput", "build_qformer"]
