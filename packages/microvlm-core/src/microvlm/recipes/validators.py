"""Field validators for the frozen attrs config classes of core and of every plugin package.

One convention for all of them: a broken rule raises :class:`microvlm.errors.FieldValueError`
carrying the field name, with a message that says what is allowed and what was given
(``"must be > 0, got -1.0"``; a choice reads ``"expected one of 'a', 'b', got 'c'"``, the words
the recipe loader uses for ``Literal`` fields). The loader prints it at the field's dotted path
(``r.toml: run.lr: must be > 0, got -1.0``); code that builds a config directly sees the class
and field in a note on the exception (PEP 678), e.g. ``field: RunConfig.lr``.

Plain validators (``positive``, ``non_negative``, ``probability``, ``fraction``, ``finite``,
``non_empty``, ``names``) go straight into ``attrs.field(validator=...)``; factories
(``at_least(n)``, ``in_range(lo, hi)``, ``one_of(Literal[...])``, ``with_hint``) return one.
Comparisons are written ``not value > 0`` so that ``nan`` fails them too.

This module imports only attrs, the standard library and :mod:`microvlm.errors`, so config
modules stay light (``microvlm --help`` and plugin discovery import them).
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable
from typing import Any, NoReturn

import attrs

from microvlm.errors import FieldValueError

#: What ``attrs.field(validator=...)`` calls: ``validator(instance, attribute, value)``.
Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def fail(instance: Any, attribute: attrs.Attribute, message: str) -> NoReturn:
    """Raise ``attribute``'s :class:`FieldValueError`; ``message`` says what is allowed and what was given."""
    exc = FieldValueError(attribute.name, message)
    exc.add_note(f"field: {type(instance).__name__}.{attribute.name}")
    raise exc


# -------------------------------------------------------------------------------------
# Numbers
# -------------------------------------------------------------------------------------


def positive(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    """``value > 0`` (counts, sizes, learning rates)."""
    if not value > 0:
        fail(instance, attribute, f"must be > 0, got {value}")


def at_least(n: float) -> Validator:
    """``value >= n``, e.g. ``at_least(1)`` for layer counts, ``at_least(16)`` for an image side."""

    def check(instance: Any, attribute: attrs.Attribute, value: float) -> None:
        if not value >= n:
            fail(instance, attribute, f"must be >= {n}, got {value}")

    return check


#: ``value >= 0`` (optional counts where 0 means "off" or "default").
non_negative: Validator = at_least(0)


def in_range(
    lo: float, hi: float, *, open_lo: bool = False, open_hi: bool = False, hi_note: str = ""
) -> Validator:
    """``lo <= value <= hi``; ``open_lo`` / ``open_hi`` exclude that end.

    A closed range reads ``must be between 0 and 1``, a half-open one ``must be in [0, 1)``;
    ``hi_note`` explains the upper bound, e.g. ``"2**32 - 1"``.
    """
    shown_hi = f"{hi} ({hi_note})" if hi_note else f"{hi}"
    if open_lo or open_hi:
        allowed = f"in {'(' if open_lo else '['}{lo}, {shown_hi}{')' if open_hi else ']'}"
    else:
        allowed = f"between {lo} and {shown_hi}"

    def check(instance: Any, attribute: attrs.Attribute, value: float) -> None:
        above = value > lo if open_lo else value >= lo
        below = value < hi if open_hi else value <= hi
        if not (above and below):
            fail(instance, attribute, f"must be {allowed}, got {value}")

    return check


#: A dropout rate: ``0 <= value < 1`` (1 would drop everything).
probability: Validator = in_range(0, 1, open_hi=True)
#: A share: ``0 <= value <= 1``.
fraction: Validator = in_range(0, 1)


def finite(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    """Not ``inf`` or ``nan``."""
    if not math.isfinite(value):
        fail(instance, attribute, f"must be a finite number, got {value}")


# -------------------------------------------------------------------------------------
# Text and choices
# -------------------------------------------------------------------------------------


def non_empty(instance: Any, attribute: attrs.Attribute, value: str | tuple[Any, ...]) -> None:
    """A string that is not blank, or a tuple with at least one item."""
    if isinstance(value, str):
        if not value.strip():
            fail(instance, attribute, f"must not be empty, got {value!r}")
    elif not value:
        fail(instance, attribute, f"must list at least one item, got {value!r}")


def names(instance: Any, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    """A non-empty tuple of non-blank strings (module names, file extensions, ...)."""
    if not value or any(not isinstance(v, str) or not v.strip() for v in value):
        fail(instance, attribute, f"must be a non-empty array of non-empty strings, got {list(value)!r}")


def one_of(choices: Any) -> Validator:
    """``value`` is one of ``choices``: a ``Literal[...]`` type or an iterable of values.

    The recipe loader checks ``Literal`` fields before a class is built (with a "did you mean");
    this guards configs built in code.
    """
    allowed = typing.get_args(choices) if typing.get_origin(choices) is typing.Literal else tuple(choices)
    if not allowed:
        raise TypeError(f"one_of needs a Literal[...] type or some values, got {choices!r}")
    shown = ", ".join(repr(c) for c in allowed)

    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value not in allowed:
            fail(instance, attribute, f"expected one of {shown}, got {value!r}")

    return check


def with_hint(validator: Validator, hint: str) -> Validator:
    """``validator`` whose message ends with ``hint``: ``must not be empty, got ''; give a hub id``."""

    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        try:
            validator(instance, attribute, value)
        except FieldValueError as exc:
            message = f"{exc}; {hint}"
        else:
            return
        fail(instance, attribute, message)

    return check


#: attrs metadata key of a field whose value names another component (see :func:`component_name`)
COMPONENT_NAME = "microvlm_component"


def component_name(kind: str, *, used_when: Callable[[Any], bool] | None = None) -> dict[str, Any]:
    """``attrs.field(metadata=component_name("quantizer"))``: the field's value names a component
    of ``kind``; ``microvlm recipe check`` (and every recipe load) refuses a name nobody registered,
    listing the registered ones. The check runs when the recipe sets the field to something other
    than its default, or when ``used_when(config)`` says the value is in use (e.g. only
    ``adapter = "qlora"`` needs a quantizer), so a core-only install does not fail on a default it
    never uses, even where a checkpoint's ``model.toml`` spells every default out."""
    return {COMPONENT_NAME: (kind, used_when)}


__all__ = [
    "COMPONENT_NAME",
    "Validator",
    "at_least",
    "component_name",
    "fail",
    "finite",
    "fraction",
    "in_range",
    "names",
    "non_empty",
    "non_negative",
    "one_of",
    "positive",
    "probability",
    "with_hint",
]
