"""microvlm-quant as an installed distribution: version, entry point, light registration."""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys

import pytest

import microvlm
import microvlm_quant
from microvlm.recipes.structure import ConfigErrors, structure
from microvlm_quant.config import NF4Config


def test_version_matches_the_installed_distribution():
    assert microvlm_quant.__version__ == md.version("microvlm-quant")


def test_entry_point_registers_nf4():
    plugins = microvlm.load_plugins(allow=["microvlm-quant"])
    component = plugins.get("quantizer", "nf4")
    assert component.distribution == "microvlm-quant"
    assert component.config_cls is NF4Config
    assert "nf4" not in microvlm.load_plugins(allow=[]).names("quantizer")


def test_registration_does_not_import_torch():
    code = (
        "import sys, microvlm; p = microvlm.load_plugins(allow=['microvlm-quant']); "
        "assert 'nf4' in p.names('quantizer'); "
        "print(sorted(m for m in ('torch', 'transformers', 'bitsandbytes') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_config_is_strict():
    assert structure({"quant_type": "fp4", "double_quant": False}, NF4Config) == NF4Config(
        quant_type="fp4", double_quant=False
    )
    with pytest.raises(ConfigErrors, match="quant_type"):
        structure({"quant_type": "int4"}, NF4Config)
    with pytest.raises(ConfigErrors, match="compute_dtype"):
        structure({"compute_dtype": "fp16"}, NF4Config)
