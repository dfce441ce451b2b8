"""Shared pieces of the exporter tests: a tiny MicroVLM on core's toy encoder (no
microvlm-encoders here), its logits on a fixed input, and an export-then-load round trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import microvlm
from microvlm.models.vlm import MicroVLM
from microvlm.recipes.load import build_model_config
from microvlm.testing.fixtures import tiny_llm_path
from microvlm.testing.toys import ToyPlugin

BRIDGE = {"name": "qformer", "num_queries": 4, "num_layers": 1, "hidden_size": 32, "num_heads": 4}


@pytest.fixture(scope="session")
def plugins() -> microvlm.Plugins:
    return microvlm.load_plugins(extra=[("toys", ToyPlugin())])


def tiny_vlm(plugins: Any, adapter: str = "lora", llm: Path | None = None) -> MicroVLM:
    """A tiny MicroVLM with non-zero LoRA matrices (LoRA's B starts at zero), in eval mode."""
    section = {
        "encoder": {"name": "toy_encoder", "width": 16, "image_size": 32},
        "bridge": BRIDGE,
        "llm": {
            "name": "hf_causal_lm",
            "model": str(llm or tiny_llm_path()),
            "adapter": adapter,
            "lora_r": 4,
            "lora_dropout": 0.0,
            "dtype": "float32",
        },
    }
    torch.manual_seed(0)
    model = MicroVLM.from_config(build_model_config(section, plugins), plugins)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))
    return model.eval()


def logits(model: MicroVLM) -> torch.Tensor:
    """``[2, T, V]`` logits of two fixed prompts after two fixed images."""
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    tok = model.tokenizer
    enc = tok(["what colour is the square", "how many shapes are there"], return_tensors="pt", padding=True)
    with torch.no_grad():
        hidden = model.text_predictors(images, enc["input_ids"], torch.ones_like(enc["input_ids"]))
        return model.llm.lm_head(hidden).float()


def round_trip(plugins: Any, model: MicroVLM, name: str, directory: Path, **settings: Any) -> tuple:
    """``(exporter, report, loaded model)`` after exporting ``model`` as ``name`` to ``directory``."""
    component = plugins.get("exporter", name)
    exporter = component.build(component.config_cls(**settings))
    directory.mkdir()
    report = exporter.export(model, directory)
    return exporter, report, exporter.load(directory, plugins=plugins)


def groups(report: Any) -> dict[str, Any]:
    return {g.name: g for g in report.groups}


@pytest.fixture(scope="session")
def kit() -> Any:
    """The helpers above, for test modules (``--import-mode=importlib`` cannot import conftest)."""
    import types

    return types.SimpleNamespace(tiny_vlm=tiny_vlm, logits=logits, round_trip=round_trip, groups=groups)
