"""Strict structuring of recipe tables into frozen attrs config classes (cattrs).

cattrs on its own coerces (``int("6")``, ``bool("false") is True``); recipes must not, so
the primitive hooks here check types the way TOML spells them. Errors come back as
``(dotted path, message)`` pairs that the recipe loader prefixes with the file name.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any, Literal, TypeVar

import attrs
import cattrs
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)

from microvlm.errors import did_you_mean

T = TypeVar("T")

_TOML_NAMES = {
    str: "string",
    int: "integer",
    float: "float",
    bool: "boolean",
    list: "array",
    tuple: "array",
    dict: "table",
}


class ConfigTypeError(TypeError):
    """A value of the wrong TOML type; the message says what was expected and found."""

    def __init__(self, expected: str, value: Any) -> None:
        super().__init__(f"expected {expected}, got {describe_value(value)}")


class FieldValueError(ValueError):
    """Raised by config validators: a value of the right type that breaks a rule.

    Carries the field name so the message lands on ``section.field`` in the recipe.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


def describe_value(value: Any) -> str:
    """``'six' (string)``, ``6.5 (float)``, ``[1, 2] (array)``."""
    kind = _TOML_NAMES.get(type(value), type(value).__name__)
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({kind})"


def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise ConfigTypeError("a string", value)
    return value


def _strict_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigTypeError("an integer", value)
    return value


def _strict_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigTypeError("a number", value)
    return float(value)


def _strict_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise ConfigTypeError("true or false", value)
    return value


def _is_literal(tp: Any) -> bool:
    return typing.get_origin(tp) is Literal


def _literal_hook(tp: Any) -> Any:
    choices = typing.get_args(tp)

    def structure(value: Any, _: type) -> Any:
        if value in choices and type(value) in {type(c) for c in choices}:
            return value
        shown = ", ".join(repr(c) for c in choices)
        hint = did_you_mean(value, [str(c) for c in choices]) if isinstance(value, str) else ""
        raise ValueError(f"expected one of {shown}, got {describe_value(value)}{hint}")

    return structure


def make_converter() -> cattrs.Converter:
    """A cattrs converter that forbids unknown keys and never coerces types."""
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(bool, _strict_bool)
    conv.register_structure_hook_factory(_is_literal, _literal_hook)

    def _is_array(tp: Any) -> bool:
        return typing.get_origin(tp) in (list, tuple)

    def _array_hook(tp: Any) -> Any:
        args = typing.get_args(tp)
        homogeneous = typing.get_origin(tp) is list or (len(args) == 2 and args[1] is Ellipsis)
        out = list if typing.get_origin(tp) is list else tuple

        def structure(value: Any, _: type) -> Any:
            if not isinstance(value, (list, tuple)):
                raise ConfigTypeError("an array", value)
            if homogeneous:
                types = [args[0] if args else Any] * len(value)
            elif len(value) != len(args):
                raise ValueError(f"expected an array of {len(args)} items, got {describe_value(value)}")
            else:
                types = list(args)
            items, errors = [], []
            for i, (item, item_type) in enumerate(zip(value, types, strict=True)):
                try:
                    items.append(item if item_type is Any else conv.structure(item, item_type))
                except Exception as exc:
                    exc.__notes__ = [
                        *getattr(exc, "__notes__", []),
                        IterableValidationNote(f"item {i}", i, item_type),
                    ]
                    errors.append(exc)
            if errors:
                raise IterableValidationError(f"while structuring {tp!r}", errors, tp)
            return out(items)

        return structure

    conv.register_structure_hook_factory(_is_array, _array_hook)

    def _is_attrs(tp: Any) -> bool:
        return attrs.has(tp)

    def _attrs_hook(tp: Any) -> Any:
        inner = conv.gen_structure_attrs_fromdict(tp)

        def structure(value: Any, _: type) -> Any:
            if not isinstance(value, dict):
                raise ConfigTypeError("a table", value)
            return inner(value, tp)

        return structure

    conv.register_structure_hook_factory(_is_attrs, _attrs_hook)
    return conv


CONVERTER = make_converter()


def structure(data: Any, cls: type[T], converter: cattrs.Converter = CONVERTER) -> T:
    """Structure ``data`` into ``cls``; raises :class:`ConfigErrors` listing every problem."""
    try:
        return converter.structure(data, cls)
    except Exception as exc:
        problems = list(iter_problems(exc, (), cls))
        raise ConfigErrors(problems) from exc


class ConfigErrors(ValueError):
    """Structuring failed; ``problems`` is a list of ``(path tuple, message)``."""

    def __init__(self, problems: list[tuple[tuple[str, ...], str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{'.'.join(p) or '<root>'}: {m}" for p, m in problems))


def iter_problems(
    exc: BaseException, path: tuple[str, ...], cls: Any = None
) -> Iterator[tuple[tuple[str, ...], str]]:
    """Flatten a cattrs exception tree into ``(path, message)`` pairs."""
    if isinstance(exc, ForbiddenExtraKeysError):
        names = [f.name for f in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        for key in sorted(exc.extra_fields):
            yield (*path, key), f"unknown key{did_you_mean(key, names)}; known keys: {', '.join(names)}"
    elif isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            if isinstance(sub, KeyError):
                yield (*path, note.name), "missing required key"
            else:
                yield from iter_problems(sub, (*path, note.name), note.type)
        for sub in without:
            yield from iter_problems(sub, path, cls)
    elif isinstance(exc, IterableValidationError):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            yield from iter_problems(sub, (*path, str(note.index)), note.type)
        for sub in without:
            yield from iter_problems(sub, path, cls)
    elif isinstance(exc, FieldValueError):
        yield (*path, exc.field), str(exc)
    elif isinstance(exc, (ConfigTypeError, ValueError, TypeError)):
        yield path, str(exc)
    else:
        yield path, f"{type(exc).__name__}: {exc}"


def unstructure(obj: Any) -> Any:
    """Config object -> plain dict (``None`` values dropped, as TOML has no null)."""
    return _drop_none(CONVERTER.unstructure(obj))


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_drop_none(v) for v in value]
    return value
