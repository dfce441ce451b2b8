"""The seed's ``microvlm_e.models``: ``MicroVLM`` is now ``from microvlm import MicroVLM``."""

from __future__ import annotations

import warnings

__all__ = ["MicroVLM"]


def __getattr__(name: str) -> object:
    """``MicroVLM`` from :mod:`microvlm`, with a :class:`DeprecationWarning` at the caller's line."""
    if name == "MicroVLM":
        warnings.warn(
            "microvlm_e.models is the seed's import path; use `from microvlm import MicroVLM`",
            DeprecationWarning,
            stacklevel=2,
        )
        import microvlm

        globals()[name] = microvlm.MicroVLM  # warn once: `from ... import` looks the name up twice
        return microvlm.MicroVLM
    raise AttributeError(
        f"module 'microvlm_e.models' has no attribute {name!r}; the model is `from microvlm import MicroVLM`"
    )
