"""The README's "Getting the data" table names every source the catalogue has, and only those."""

from __future__ import annotations

import re
from pathlib import Path

from microvlm_datasets.download.sources import load_catalogue

README = Path(__file__).resolve().parents[1] / "README.md"


def test_getting_the_data_lists_every_source() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Getting the data", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    named = {name for row in rows for name in re.findall(r"`([a-z0-9_]+)`", row.split("|")[1])}
    assert named == set(load_catalogue())
