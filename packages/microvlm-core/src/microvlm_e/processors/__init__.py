"""The seed's ``microvlm_e.processors``: the image processors are now in :mod:`microvlm`."""

from __future__ import annotations

import warnings

__all__ = ["ImageEvalProcessor", "ImageTrainProcessor"]


def __getattr__(name: str) -> object:
    """An image processor from :mod:`microvlm`, with a :class:`DeprecationWarning` at the caller's line."""
    if name in __all__:
        warnings.warn(
            f"microvlm_e.processors is the seed's import path; use `from microvlm import {name}`",
            DeprecationWarning,
            stacklevel=2,
        )
        import microvlm

        globals()[name] = getattr(microvlm, name)  # warn once: `from ... import` looks it up twice
        return globals()[name]
    raise AttributeError(
        f"module 'microvlm_e.processors' has no attribute {name!r}; "
        "use `from microvlm import ImageEvalProcessor, ImageTrainProcessor`"
    )
