"""Package smoke test: version, public names, entry point, and a light plugin import."""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys

import microvlm
import microvlm_encoders

ENCODERS = {"diet_tiny", "diet_small", "deit_tiny", "deit_small", "timm"}


def test_version_matches_the_installed_distribution() -> None:
    assert microvlm_encoders.__version__ == md.version("microvlm-encoders")


def test_every_public_name_resolves() -> None:
    for name in microvlm_encoders.__all__:
        assert getattr(microvlm_encoders, name) is not None, name


def test_the_entry_point_registers_the_five_encoders() -> None:
    entry_points = md.entry_points(group="microvlm")
    assert any(ep.value == "microvlm_encoders.plugin" for ep in entry_points)
    plugins = microvlm.load_plugins()
    mine = {
        n for n in plugins.names("encoder") if plugins.get("encoder", n).distribution == "microvlm-encoders"
    }
    assert mine == ENCODERS


def test_loading_the_plugin_imports_neither_torch_nor_timm() -> None:
    code = (
        "import sys, microvlm, microvlm_encoders, microvlm_encoders.plugin\n"
        "microvlm.load_plugins().get('encoder', 'diet_tiny')\n"
        "heavy = sorted(m for m in ('torch', 'timm', 'torchvision') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
