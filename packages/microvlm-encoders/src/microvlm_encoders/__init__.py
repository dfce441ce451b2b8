"""Image encoders for MicroVLM-E, registered as plugins through the ``microvlm`` entry point.

``diet_tiny`` / ``diet_small`` (timm DeiT, the seed's names), their ``deit_*`` aliases, and
``timm`` (any timm model). Importing this package is light; the torch/timm parts
(:class:`TimmEncoder`, :func:`build_timm_encoder`) load on first access.
"""

from __future__ import annotations

import importlib
import importlib.metadata as _md
from typing import TYPE_CHECKING, Any

from microvlm_encoders.config import DEIT_MODELS, EncoderConfig, TimmEncoderConfig
from microvlm_encoders.factories import TimmEncoderFactory

if TYPE_CHECKING:
    from microvlm_encoders.timm_encoder import TimmEncoder, build_timm_encoder

try:
    __version__ = _md.version("microvlm-encoders")
except _md.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

_LAZY = {
    "TimmEncoder": "microvlm_encoders.timm_encoder",
    "build_timm_encoder": "microvlm_encoders.timm_encoder",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'microvlm_encoders' has no attribute {name!r}")


__all__ = [
    "DEIT_MODELS",
    "EncoderConfig",
    "TimmEncoder",
    "TimmEncoderConfig",
    "TimmEncoderFactory",
    "__version__",
    "build_timm_encoder",
]
