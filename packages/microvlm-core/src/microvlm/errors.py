"""Errors MicroVLM raises on purpose. The CLI prints these as one clear message, no traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MicroVLMError(Exception):
    """Base class: a user-facing problem whose message says what to do."""


class RecipeError(MicroVLMError):
    """A recipe that cannot be read, merged or validated.

    ``problems`` holds one line per problem, each naming the file and the dotted path.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class FieldValueError(ValueError):
    """Raised by config validators: a value of the right type that breaks a rule.

    Carries the field name so the message lands on ``section.field`` in the recipe. It lives
    here, not in :mod:`microvlm.recipes.structure`, so config modules can raise it without importing
    cattrs (plugin discovery and ``microvlm --help`` stay fast).
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class PluginError(MicroVLMError):
    """A problem with the set of installed plugins or a lookup in it."""


class UnknownComponentError(PluginError, LookupError):
    """A recipe or call asked for a component name nobody registered."""


class DuplicateComponentError(PluginError):
    """Two plugins registered the same name for the same kind."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""`` if none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
