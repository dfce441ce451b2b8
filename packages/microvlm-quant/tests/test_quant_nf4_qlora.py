"""The nf4 quantiser and QLoRA end to end on the CPU (bitsandbytes' CPU backend), tiny Qwen2."""

from __future__ import annotations

import pytest
import torch

import microvlm
from microvlm.models.llm import HFCausalLMConfig, LanguageModel
from microvlm.testing.fixtures import tiny_llm_path
from microvlm_quant.config import NF4Config
from microvlm_quant.nf4 import NF4Quantizer

bnb = pytest.importorskip("bitsandbytes")


@pytest.fixture(scope="module")
def plugins() -> microvlm.Plugins:
    return microvlm.load_plugins()


def build(plugins: microvlm.Plugins, **settings) -> LanguageModel:
    config = HFCausalLMConfig(model=str(tiny_llm_path()), dtype="float32", lora_r=4, **settings)
    return plugins.build("llm", "hf_causal_lm", config, plugins=plugins)


def linear_layers(lm: LanguageModel) -> dict[str, torch.nn.Module]:
    return {
        n: m for n, m in lm.base_model.named_modules() if isinstance(m, (torch.nn.Linear, bnb.nn.Linear4bit))
    }


def test_quantization_config_follows_the_settings():
    from transformers import BitsAndBytesConfig

    config = NF4Quantizer(NF4Config()).quantization_config(torch.float32)
    assert isinstance(config, BitsAndBytesConfig) and config.load_in_4bit
    assert (config.bnb_4bit_quant_type, config.bnb_4bit_use_double_quant) == ("nf4", True)
    assert config.bnb_4bit_compute_dtype == torch.float32
    fp4 = NF4Quantizer(NF4Config(quant_type="fp4", double_quant=False, compute_dtype="bfloat16"))
    config = fp4.quantization_config(torch.float32)
    assert (config.bnb_4bit_quant_type, config.bnb_4bit_use_double_quant) == ("fp4", False)
    assert config.bnb_4bit_compute_dtype == torch.bfloat16
    assert fp4.describe() == {
        "name": "nf4",
        "quant_type": "fp4",
        "double_quant": False,
        "compute_dtype": "bfloat16",
    }


@pytest.mark.parametrize(("init", "checkpointing"), [("pretrained", False), ("random", True)])
def test_qlora_trains_lora_on_a_4bit_base(plugins, init, checkpointing):
    lm = build(plugins, adapter="qlora", init=init, gradient_checkpointing=checkpointing)
    assert lm.quantization == {
        "name": "nf4",
        "quant_type": "nf4",
        "double_quant": True,
        "compute_dtype": "auto",
    }
    layers = linear_layers(lm)
    four_bit = {n for n, m in layers.items() if isinstance(m, bnb.nn.Linear4bit)}
    # Every projection of every layer is 4-bit (peft's base_layer); the tied output head is not.
    assert len(four_bit) == 2 * 7 and all(n.endswith(".base_layer") for n in four_bit)
    assert not isinstance(lm.base_model.get_output_embeddings(), bnb.nn.Linear4bit)
    assert all(m.weight.dtype == torch.uint8 for n, m in layers.items() if n in four_bit)
    trainable = {n for n, p in lm.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)

    lm.train()
    enc = lm.tokenizer(["a red circle on the left", "how many"], return_tensors="pt", padding=True)
    hidden, _ = lm.hidden_states(lm.embed(enc["input_ids"]), enc["attention_mask"])
    labels = enc["input_ids"][:, 1:]
    keep = enc["attention_mask"][:, 1:].bool()
    logits = lm.lm_head(hidden[:, :-1][keep])  # labelled positions only
    loss = torch.nn.functional.cross_entropy(logits, labels[keep])
    assert torch.isfinite(loss)
    loss.backward()
    assert {n for n, p in lm.named_parameters() if p.grad is not None} == trainable
    assert all(torch.isfinite(p.grad).all() for p in lm.trainable_parameters())
    before = [p.detach().clone() for p in lm.trainable_parameters()]
    torch.optim.AdamW(lm.trainable_parameters(), lr=1e-2).step()
    assert any(not torch.equal(a, p) for a, p in zip(before, lm.trainable_parameters(), strict=True))


def test_4bit_base_stays_close_to_the_float_model(plugins):
    full = build(plugins)
    quantised = build(plugins, adapter="qlora")
    ids = full.tokenizer("what colour is the square", return_tensors="pt")["input_ids"]
    a = full.hidden_states(full.embed(ids))[0]
    b = quantised.hidden_states(quantised.embed(ids))[0]
    assert not torch.equal(a, b)  # really quantised
    assert torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0) > 0.9


def test_qlora_weights_load_onto_a_float_base(plugins, tmp_path):
    qlora = build(plugins, adapter="qlora")
    with torch.no_grad():
        for p in qlora.trainable_parameters():
            p.normal_()
    qlora.save_adapter(tmp_path)
    lora = build(plugins, adapter="lora")
    lora.load_adapter(tmp_path)
    trained, loaded = qlora.adapter_state_dict(), lora.adapter_state_dict()
    assert trained.keys() == loaded.keys() and len(trained) == 2 * 7 * 2
    assert all(torch.equal(trained[k], loaded[k]) for k in trained)


def test_quantize_model_replaces_linears_but_not_the_head():
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llm_path()))
    ids = torch.tensor([[5, 6, 7, 8]])
    before = model(input_ids=ids).logits
    NF4Quantizer(NF4Config(quant_type="fp4")).quantize_model(model)
    assert model.is_loaded_in_4bit
    kinds = {type(m).__name__ for n, m in model.named_modules() if n.endswith(("_proj", "lm_head"))}
    assert kinds == {"Linear4bit", "Linear"}
    assert type(model.lm_head) is torch.nn.Linear and model.lm_head.weight is model.model.embed_tokens.weight
    after = model(input_ids=ids).logits
    assert torch.isfinite(after).all() and not torch.equal(before, after)
