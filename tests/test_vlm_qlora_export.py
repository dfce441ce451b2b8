"""A QLoRA-trained MicroVLM exported with save_pretrained: its LoRA loads onto a float base."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from microvlm import load_plugins
from microvlm.errors import MicroVLMError
from microvlm.models.vlm import MicroVLM
from microvlm.recipes.load import build_model_config
from microvlm.testing.fixtures import tiny_llm_path
from microvlm.testing.toys import ToyPlugin

pytest.importorskip("bitsandbytes")


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(extra=[("toys", ToyPlugin())])


def test_qlora_export_loads_onto_a_float_base(plugins, tmp_path):
    section = {
        "encoder": {"name": "toy_encoder", "width": 16, "image_size": 32},
        "bridge": {"name": "qformer", "num_queries": 4, "num_layers": 1, "hidden_size": 32, "num_heads": 4},
        "llm": {"name": "hf_causal_lm", "model": str(tiny_llm_path()), "adapter": "qlora", "lora_r": 4},
    }
    torch.manual_seed(0)
    model = MicroVLM.from_config(build_model_config(section, plugins), plugins)
    assert model.llm.quantization is not None
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_()
    lora = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
    assert lora

    with pytest.raises(MicroVLMError, match="quantised"):
        model.save_pretrained(tmp_path / "all", weights="all")
    assert not (tmp_path / "all").exists()

    directory = model.save_pretrained(tmp_path / "export")
    assert set(lora) <= set(load_file(str(directory / "model.safetensors")))
    torch.manual_seed(0)
    floating = MicroVLM.from_pretrained(directory, plugins, **{"llm.adapter": "lora"})
    assert floating.llm.quantization is None
    loaded = dict(floating.named_parameters())
    for name, tensor in lora.items():
        assert torch.equal(loaded[name], tensor.to(loaded[name].dtype)), name
    [answer] = floating.generate(
        {"image": torch.randn(1, 3, 32, 32), "prompt": "Describe."}, max_new_tokens=4
    )
    assert isinstance(answer, str)
