"""The seed's import paths (its README's Quick Start and Attention Visualization sections)
lead to ours: ``microvlm_e.models`` / ``.processors`` warn and re-export, the rest say what
replaced them (issue 14, item 7)."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import microvlm


def test_the_seeds_install_check_runs_and_warns():
    # verbatim from the seed's README, "Verify Installation"
    code = "from microvlm_e.models import MicroVLM; print('Installation successful!')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "Installation successful!"
    # shown under Python's default warning filters, at the user's line
    assert "<string>:1: DeprecationWarning" in out.stderr
    assert "use `from microvlm import MicroVLM`" in out.stderr
    assert out.stderr.count("DeprecationWarning") == 1  # once, though `from` looks the name up twice


@pytest.mark.parametrize(
    ("module", "name"),
    [("microvlm_e.models", "MicroVLM"), ("microvlm_e.processors", "ImageEvalProcessor")],
)
def test_quick_start_imports_are_ours_with_a_deprecation_warning(module, name, monkeypatch):
    monkeypatch.delitem(sys.modules, module, raising=False)  # a fresh import, so it warns again
    with pytest.warns(DeprecationWarning, match=rf"use `from microvlm import {name}`"):
        got = getattr(importlib.import_module(module), name)
    assert got is getattr(microvlm, name)


@pytest.mark.parametrize(
    ("statement", "says"),
    [
        ("from microvlm_e.visualization import AlignmentVisualizer", "not built yet"),
        ("import microvlm_e.visualization", "`microvlm visualize` command (issue 19)"),
        ("from microvlm_e import visualization", "issue 19"),
        ("from microvlm_e.common.registry import registry", "`microvlm.load_plugins()`"),
        ("import microvlm_e.models.quantization.int8_quant", "microvlm export --checkpoint C --8bit"),
        ("from microvlm_e.models.qformer import QFormer", "microvlm.models.qformer"),
        ("import microvlm_e.runners.runner_base", "`microvlm run RECIPE`"),
        ("import microvlm_e.common", "registry: plugins are entry points"),  # each module it held
        ("import microvlm_e.no_such_module", "Coming from the original scripts"),
    ],
)
def test_other_seed_modules_say_what_replaced_them(statement, says):
    with pytest.raises(ImportError, match="was the seed's module") as caught:
        exec(statement, {})
    assert says in str(caught.value)
    assert not isinstance(caught.value, ModuleNotFoundError)  # `from x import y` would hide that one


def test_unknown_names_in_the_shims_say_where_to_look():
    import microvlm_e.models

    with pytest.raises(AttributeError, match="from microvlm import MicroVLM"):
        microvlm_e.models.DietEncoder  # noqa: B018


def test_the_wheel_ships_microvlm_e():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    pyproject = Path(__file__).parent.parent / "pyproject.toml"
    packages = tomllib.loads(pyproject.read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert "src/microvlm_e" in packages
