"""What every check of the conformance kit does first: build the component and hold it to its
kind's protocol (:data:`microvlm.contracts.kinds.PROTOCOLS`). Failures are ``AssertionError``
with a message that names the component, so the kit works under any test runner."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from microvlm.contracts.kinds import PROTOCOLS, missing_members


class ConformanceError(AssertionError):
    """A component that does not do what its kind's contract says."""


def label_of(kind: str, factory: Callable[..., Any], name: str | None) -> str:
    """``"encoder 'my_vit'"``, or the factory's name when no component name is given."""
    return f"{kind} '{name or getattr(factory, '__name__', type(factory).__name__)}'"


def require(condition: object, label: str, message: str) -> None:
    """Raise :class:`ConformanceError` ``"{label}: {message}"`` unless ``condition`` holds."""
    if not condition:
        raise ConformanceError(f"{label}: {message}")


def build_checked(kind: str, factory: Callable[..., Any], config: Any, label: str, **context: Any) -> Any:
    """``factory(config, **context)``, refused when it lacks a member of ``kind``'s protocol."""
    require(callable(factory), label, f"the factory {factory!r} is not callable")
    built = factory(config, **context)
    check_members(built, kind, label)
    return built


def check_members(obj: object, kind: str, label: str) -> None:
    """The members of ``kind``'s protocol that ``obj`` lacks, as one failure naming them all."""
    missing = missing_members(obj, kind)
    protocol = PROTOCOLS[kind]
    require(
        not missing,
        label,
        f"{type(obj).__name__} lacks {', '.join(missing)} "
        f"(see {protocol.__module__}.{protocol.__qualname__})",
    )


def shape(tensor: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in tensor.shape)


def finite(tensor: Any) -> bool:
    import torch

    return bool(torch.isfinite(tensor.float()).all())


__all__ = ["ConformanceError", "build_checked", "check_members", "finite", "label_of", "require", "shape"]
