"""Text from users, recipes and plugins in rich output: shown as written, never read as markup.

Rich reads ``[...]`` in a plain ``str`` as markup: ``"the [wandb] extra"`` loses its brackets
and ``"[/]"`` raises ``MarkupError``. Wrap such text with :func:`literal`. Rich is imported
inside the functions, so importing this module stays cheap (``microvlm --help``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text


def literal(value: object) -> Text:
    """``str(value)`` as rich text that is not parsed for markup."""
    from rich.text import Text

    return Text(str(value))


def add_literal_row(table: Table, *cells: object, style: str | None = None) -> None:
    """``table.add_row`` with every cell shown as written."""
    table.add_row(*(literal(c) for c in cells), style=style)
