"""The README's "Writing a plugin" examples run as written, conformance-kit calls included, and
register through the plugin manager like an installed plugin: the README cannot rot."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest

from microvlm import load_plugins
from microvlm.testing.conformance import check_component

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = re.compile(r"\(readme-example: (\w+)\)")
EXPECTED = {"encoder": "my_vit", "dataset": "my_captions"}  # example -> the name it registers


def examples() -> dict[str, str]:
    """``{kind: code}`` of each python block in "Writing a plugin" that carries the marker."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Writing a plugin\n", 1)[1].split("\n## ", 1)[0]
    found = {}
    for block in re.findall(r"```python\n(.*?)```", section, flags=re.S):
        marker = MARKER.search(block.splitlines()[0])
        if marker:
            found[marker.group(1)] = block
    return found


def test_the_section_has_both_examples():
    assert set(examples()) == set(EXPECTED)


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_the_example_runs_and_registers(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    module = types.ModuleType(f"readme_{kind}")
    exec(
        compile(examples()[kind], f"README.md ({kind} example)", "exec"), module.__dict__
    )  # runs the kit calls
    plugins = load_plugins(entry_points=False, extra=[(module.__name__, module)])
    component = plugins.get(kind, EXPECTED[kind])
    if kind == "encoder":
        assert check_component(component).out_dim == 64
    else:
        assert plugins.names("dataset") == ["my_captions"]
