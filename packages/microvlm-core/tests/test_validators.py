"""``microvlm.recipes.validators``: one error type and one message convention for every config field."""

from __future__ import annotations

import math
from typing import Literal

import attrs
import pytest

from microvlm.errors import FieldValueError
from microvlm.recipes import validators as v


def _make_config(validator: v.Validator, default: object) -> type:
    @attrs.frozen
    class Config:
        x: object = attrs.field(default=default, validator=validator)

    return Config


CASES = [
    # (validator, a valid value, an invalid value, words the message must hold)
    (v.positive, 1, 0, "must be > 0, got 0"),
    (v.positive, 0.5, math.nan, "must be > 0, got nan"),
    (v.non_negative, 0, -1, "must be >= 0, got -1"),
    (v.at_least(16), 16, 15, "must be >= 16, got 15"),
    (v.probability, 0.0, 1.0, "must be in [0, 1), got 1.0"),
    (v.fraction, 1.0, 1.5, "must be between 0 and 1, got 1.5"),
    (v.in_range(0, 1, open_lo=True), 1.0, 0.0, "must be in (0, 1], got 0.0"),
    (v.in_range(0, 9, hi_note="3**2"), 9, 10, "must be between 0 and 9 (3**2), got 10"),
    (v.finite, 1.0, math.inf, "must be a finite number, got inf"),
    (v.non_empty, "a", " ", "must not be empty, got ' '"),
    (v.non_empty, ("a",), (), "must list at least one item, got ()"),
    (v.names, ("a", "b"), ("a", ""), "must be a non-empty array of non-empty strings, got ['a', '']"),
    (v.names, ("a",), (), "must be a non-empty array of non-empty strings, got []"),
    (v.one_of(Literal["a", "b"]), "a", "c", "expected one of 'a', 'b', got 'c'"),
    (v.one_of(("patch", "all")), "all", "cls", "expected one of 'patch', 'all', got 'cls'"),
    (v.with_hint(v.non_empty, "give a path"), "p", "", "must not be empty, got ''; give a path"),
]


@pytest.mark.parametrize(("validator", "good", "bad", "message"), CASES)
def test_a_broken_rule_names_the_field_the_value_and_what_is_allowed(validator, good, bad, message) -> None:
    config = _make_config(validator, good)
    assert config(good).x == good
    with pytest.raises(FieldValueError) as error:
        config(bad)
    assert error.value.field == "x"
    assert str(error.value) == message
    assert error.value.__notes__ == ["field: Config.x"]  # where, for code that builds configs directly


def test_one_of_needs_choices() -> None:
    with pytest.raises(TypeError, match="Literal"):
        v.one_of(())


def test_the_validators_module_stays_light() -> None:
    """Config modules import it at plugin discovery: attrs, the standard library and errors only."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(v.__file__).read_text("utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert {m for m in imported if m.startswith("microvlm")} == {"microvlm.errors"}
    assert "torch" not in imported and "cattrs" not in imported
