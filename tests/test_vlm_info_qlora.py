"""``model-info`` of a qlora model counts its base's linear layers at what the quantizer plugin
(nf4, microvlm-quant) says they take: core holds no NF4 arithmetic of its own."""

from __future__ import annotations

import pytest
import torch

from microvlm import load_plugins, load_recipe
from microvlm.errors import MicroVLMError
from microvlm.models.info import count_model, counting_config, model_info
from microvlm.models.vlm import MicroVLM
from microvlm.testing.fixtures import tiny_llm_path
from microvlm.testing.toys import ToyPlugin, toy_training_recipe
from microvlm_quant.nf4 import nf4_bytes


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(extra=[("toys", ToyPlugin())])


@pytest.fixture
def recipe_file(tmp_path):
    path = tmp_path / "toy.toml"
    path.write_text(toy_training_recipe(str(tmp_path / "out"), str(tiny_llm_path())))
    return path


def test_qlora_weights_are_counted_by_the_quantizer(plugins, recipe_file):
    lora = load_recipe(recipe_file, plugins, ['model.llm.adapter="lora"'])
    qlora = load_recipe(recipe_file, plugins, ['model.llm.adapter="qlora"'])
    lora_info, qlora_info = model_info(lora.model, plugins), model_info(qlora.model, plugins)
    assert qlora_info.part("llm").parameters == lora_info.part("llm").parameters
    assert qlora_info.part("llm").dtype == "float32+nf4"
    assert qlora_info.part("lora").bytes == lora_info.part("lora").bytes  # LoRA stays in float
    model = MicroVLM.from_config(lora.model, plugins)
    head = model.llm.base_model.get_output_embeddings()
    linears = [
        m.weight
        for n, m in model.llm.base_model.named_modules()
        if isinstance(m, torch.nn.Linear) and "lora_" not in n and m is not head
    ]
    float_bytes = 4 * (lora_info.part("llm").parameters - sum(w.numel() for w in linears))
    assert qlora_info.part("llm").bytes == float_bytes + sum(nf4_bytes(w.numel()) for w in linears)


def test_counting_qlora_without_plugins_says_why(plugins, recipe_file):
    qlora = load_recipe(recipe_file, plugins, ['model.llm.adapter="qlora"'])
    model = MicroVLM.from_config(counting_config(qlora.model), plugins, device="meta")
    with pytest.raises(MicroVLMError, match="quantizer 'nf4' says how many bytes"):
        count_model(model)
