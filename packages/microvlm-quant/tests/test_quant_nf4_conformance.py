"""nf4 through the conformance kit, and the NF4 storage arithmetic ``microvlm model-info`` asks it for."""

from __future__ import annotations

import pytest

import microvlm
from microvlm.testing.conformance import check_component
from microvlm_quant.config import NF4Config
from microvlm_quant.nf4 import NF4Quantizer, nf4_bytes

pytest.importorskip("bitsandbytes")


@pytest.mark.parametrize("config", [NF4Config(), NF4Config(quant_type="fp4", double_quant=False)])
def test_nf4_passes_the_kit(config: NF4Config) -> None:
    component = microvlm.load_plugins(allow=["microvlm-quant"]).get("quantizer", "nf4")
    quantizer = check_component(component, config)
    assert quantizer.storage_bytes(64 * 256) == nf4_bytes(64 * 256, config.double_quant)


def test_nf4_bytes() -> None:
    n = 64 * 256  # 256 blocks of 64 weights
    assert nf4_bytes(n) == n // 2 + 256 + 4  # codes + 8-bit scales + one float32 per 256 scales
    assert nf4_bytes(n, double_quant=False) == n // 2 + 4 * 256
    assert nf4_bytes(1) == 1 + 1 + 4


def test_storage_bytes_follows_double_quant() -> None:
    n = 64 * 256
    assert NF4Quantizer(NF4Config()).storage_bytes(n) == n // 2 + 256 + 4
    assert NF4Quantizer(NF4Config(double_quant=False)).storage_bytes(n) == n // 2 + 4 * 256
