"""Strict structuring of recipe tables into frozen attrs config classes (cattrs).

cattrs on its own coerces (``int("6")``, ``bool("false") is True``); recipes must not, so
the primitive hooks here check types the way TOML spells them: integers are 64-bit (as
TOML defines them) and floats finite (``inf``/``nan`` only where a field's metadata says
:data:`ALLOW_INF`). Errors come back as ``(dotted path, message)`` pairs that the recipe
loader prefixes with the file name.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Iterator
from typing import Any, Literal, TypeVar

import attrs
import cattrs
import cattrs.gen
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)

from microvlm.errors import FieldValueError, did_you_mean  # FieldValueError: re-exported here

T = TypeVar("T")

#: ``attrs.field(metadata=ALLOW_INF)``: this float may be ``inf``/``-inf`` (never ``nan``).
ALLOW_INF = {"allow_inf": True}
#: How many unknown keys of one table get a "did you mean" hint (the rest are just listed).
MAX_HINTS = 20
INT64 = (-(2**63), 2**63 - 1)  # TOML's integer range

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


def describe_value(value: Any) -> str:
    """``'six' (string)``, ``6.5 (float)``, ``[1, 2] (array)``."""
    kind = _TOML_NAMES.get(type(value), type(value).__name__)
    if isinstance(value, int) and value.bit_length() > 64:  # repr() of a huge int is slow or fails
        text = f"{'-' if value < 0 else ''}<{value.bit_length()}-bit number>"
    else:
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
    if not INT64[0] <= value <= INT64[1]:
        raise ValueError(f"expected a 64-bit integer (-2**63 to 2**63 - 1), got {describe_value(value)}")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigTypeError("a number", value)
    try:
        return float(value)
    except OverflowError:  # an integer beyond float's range
        raise ValueError(f"expected a finite number, got {describe_value(value)}") from None


def _strict_float(value: Any, _: type) -> float:
    number = _number(value)
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {describe_value(value)}")
    return number


def _float_or_inf(value: Any, tp: Any) -> float | None:
    """The hook of a field with :data:`ALLOW_INF` metadata (``float`` or ``float | None``)."""
    if value is None and type(None) in typing.get_args(tp):
        return None
    number = _number(value)
    if math.isnan(number):
        raise ValueError(f"expected a number or inf, got {describe_value(value)}")
    return number


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
        allow_inf = [f.name for f in attrs.fields(tp) if f.metadata.get("allow_inf")]
        if allow_inf:
            attrs.resolve_types(tp)
            inner = cattrs.gen.make_dict_structure_fn(
                tp,
                conv,
                _cattrs_forbid_extra_keys=True,
                _cattrs_detailed_validation=True,
                **{name: cattrs.gen.override(struct_hook=_float_or_inf) for name in allow_inf},
            )
        else:
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
        for i, key in enumerate(sorted(exc.extra_fields)):
            hint = did_you_mean(key, names) if i < MAX_HINTS else ""  # difflib is slow on 100k keys
            yield (*path, key), f"unknown key{hint}; known keys: {', '.join(names)}"
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
