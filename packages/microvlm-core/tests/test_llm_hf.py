"""The ``hf_causal_lm`` plugin on a tiny Qwen2 saved to a local directory (the hub-id code path)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import microvlm
from microvlm.errors import MicroVLMError
from microvlm.models.llm import HFCausalLMConfig, LanguageModel
from microvlm.recipes.structure import ConfigErrors, structure
from microvlm.testing.fixtures import IM_END, IM_START

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@pytest.fixture(scope="module")
def plugins() -> microvlm.Plugins:
    return microvlm.load_plugins()


def build(plugins: microvlm.Plugins, model: Path | str, **settings) -> LanguageModel:
    settings.setdefault("dtype", "float32")
    return plugins.build(
        "llm", "hf_causal_lm", HFCausalLMConfig(model=str(model), **settings), plugins=plugins
    )


def batch(lm: LanguageModel, texts: list[str], side: str = "right") -> dict[str, torch.Tensor]:
    lm.tokenizer.padding_side = side
    return lm.tokenizer(texts, return_tensors="pt", padding=True)


# -- config --------------------------------------------------------------------------------


def test_plugin_registered_with_its_config(plugins):
    component = plugins.get("llm", "hf_causal_lm")
    assert component.config_cls is HFCausalLMConfig
    assert component.distribution == "microvlm-core"


def test_recipe_table_of_base_toml_structures():
    table = {
        "model": "Qwen/Qwen2.5-0.5B",
        "adapter": "lora",
        "lora_r": 64,
        "lora_alpha": 16,
        "lora_dropout": 0.05,
    }
    config = structure(table, HFCausalLMConfig)
    assert (config.adapter, config.lora_r, config.trust_remote_code) == ("lora", 64, False)
    assert config.lora_target_modules == TARGETS
    assert config.tokenizer_source == "Qwen/Qwen2.5-0.5B"


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ({"adapter": "qlroa"}, "adapter"),
        ({"lora_r": 0}, "lora_r"),
        ({"lora_dropout": 1.0}, "lora_dropout"),
        ({"lora_target_modules": []}, "lora_target_modules"),
        ({"model": ""}, "model"),
        ({"dtype": "fp32"}, "dtype"),
        ({"lora_rank": 8}, "lora_rank"),
    ],
)
def test_invalid_settings_name_the_field(table, field):
    with pytest.raises(ConfigErrors) as info:
        structure(table, HFCausalLMConfig)
    assert [p[0] for p, _ in info.value.problems] == [field]


# -- loading -------------------------------------------------------------------------------


def test_loads_local_directory_frozen(plugins, tiny_llm_dir):
    from safetensors.torch import load_file
    from transformers import Qwen2ForCausalLM

    lm = build(plugins, tiny_llm_dir)
    assert isinstance(lm, LanguageModel) and isinstance(lm.model, Qwen2ForCausalLM)
    assert (lm.hidden_size, lm.vocab_size, lm.dtype) == (64, len(lm.tokenizer), torch.float32)
    assert lm.trainable_parameters() == []
    assert lm.quantization is None and not lm.is_peft
    saved = load_file(str(tiny_llm_dir / "model.safetensors"))
    loaded = lm.model.state_dict()
    name = "model.layers.1.mlp.down_proj.weight"
    assert torch.equal(loaded[name], saved[name])


def test_random_init_from_local_directory(plugins, tiny_llm_dir):
    pretrained = build(plugins, tiny_llm_dir)
    random = build(plugins, tiny_llm_dir, init="random")
    assert random.hf_config.to_dict()["num_hidden_layers"] == 2
    assert random.num_parameters() == pretrained.num_parameters()
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(random.model.state_dict()[name], pretrained.model.state_dict()[name])


def test_random_init_of_default_hub_id_uses_shipped_config(plugins, hub_offline):
    # Offline mode is on: any hub request would raise. The shipped config builds the real shape.
    lm = plugins.build("llm", "hf_causal_lm", HFCausalLMConfig(init="random"), plugins=plugins, device="meta")
    cfg = lm.hf_config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size) == (896, 24, 151936)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.intermediate_size) == (14, 2, 4864)
    assert cfg.tie_word_embeddings
    assert lm.num_parameters() == 494_032_768  # the reference count of Qwen2.5-0.5B


def test_lora_count_of_qwen_05b_matches_analytic(plugins, hub_offline):
    config = HFCausalLMConfig(init="random", adapter="lora", lora_r=64)
    lm = plugins.build("llm", "hf_causal_lm", config, plugins=plugins, device="meta")
    h, kv, inter, r = 896, 2 * 64, 4864, 64
    per_layer = r * ((h + h) * 2 + (h + kv) * 2 + (h + inter) * 3)  # q,o + k,v + gate,up,down
    assert lm.num_parameters(trainable_only=True) == 24 * per_layer == 35_192_832


def test_tokenizer_is_loaded_lazily(plugins, hub_offline):
    lm = plugins.build("llm", "hf_causal_lm", HFCausalLMConfig(init="random"), plugins=plugins, device="meta")
    with pytest.raises(MicroVLMError, match=r"(?s)tokenizer 'Qwen/Qwen2\.5-0\.5B'.*local directory"):
        _ = lm.tokenizer


def test_meta_device_needs_random_init(plugins, tiny_llm_dir):
    with pytest.raises(MicroVLMError, match='init = "random"'):
        plugins.build("llm", "hf_causal_lm", HFCausalLMConfig(model=str(tiny_llm_dir)), device="meta")


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["./no/such/model", "/no/such/model", "a/b/c"])
def test_missing_directory_is_a_clear_error(plugins, name):
    with pytest.raises(MicroVLMError, match=f"model directory '{name}' does not exist"):
        build(plugins, name)


def test_directory_without_config_json(plugins, tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(MicroVLMError, match=r"no config\.json"):
        build(plugins, tmp_path)


def test_unreachable_hub_id_says_what_to_do(plugins, hub_offline):
    with pytest.raises(MicroVLMError) as info:
        build(plugins, "microvlm-tests/no-such-model")
    message = str(info.value)
    assert "'microvlm-tests/no-such-model'" in message
    assert "local directory" in message and 'init = "random"' in message


def test_qlora_without_microvlm_quant_says_what_to_install(tiny_llm_dir, monkeypatch):
    import microvlm.plugins.manager

    core_only = microvlm.load_plugins(allow=[])
    assert core_only.names("quantizer") == []
    monkeypatch.setattr(microvlm.plugins.manager, "_installed", lambda dist: dist != "microvlm-quant")
    with pytest.raises(MicroVLMError, match="pip install microvlm-quant") as info:
        build(core_only, tiny_llm_dir, adapter="qlora")
    assert "quantizer plugin 'nf4'" in str(info.value)


def test_unknown_lora_target_module(plugins, tiny_llm_dir):
    with pytest.raises(MicroVLMError, match="lora_target_modules"):
        build(plugins, tiny_llm_dir, adapter="lora", lora_target_modules=("no_such_proj",))


def test_trust_remote_code_is_passed_through(plugins, tiny_llm_dir, monkeypatch):
    import transformers

    seen: list[tuple[str, object]] = []
    for auto in (transformers.AutoModelForCausalLM, transformers.AutoTokenizer):
        original = auto.from_pretrained

        def spy(*args, _original=original, _name=auto.__name__, **kwargs):
            seen.append((_name, kwargs.get("trust_remote_code", "absent")))
            return _original(*args, **kwargs)

        monkeypatch.setattr(auto, "from_pretrained", spy)
    build(plugins, tiny_llm_dir).tokenizer  # noqa: B018 - loads the tokenizer
    build(plugins, tiny_llm_dir, trust_remote_code=True).tokenizer  # noqa: B018
    assert seen == [
        ("AutoModelForCausalLM", False),
        ("AutoTokenizer", False),
        ("AutoModelForCausalLM", True),
        ("AutoTokenizer", True),
    ]


# -- computation ---------------------------------------------------------------------------


def test_hidden_states_and_lm_head_equal_the_models_logits(plugins, tiny_llm_dir):
    lm = build(plugins, tiny_llm_dir)
    enc = batch(lm, ["a red circle on the left", "how many"])
    reference = lm.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    hidden, cache = lm.hidden_states(lm.embed(enc["input_ids"]), enc["attention_mask"])
    assert hidden.shape == (2, enc["input_ids"].shape[1], 64) and cache is None
    real = enc["attention_mask"].bool()
    torch.testing.assert_close(lm.lm_head(hidden[real]), reference[real])


def test_left_padding_gets_the_positions_of_the_unpadded_row(plugins, tiny_llm_dir):
    lm = build(plugins, tiny_llm_dir)
    enc = batch(lm, ["a red circle on the left", "yes"], side="left")
    hidden, _ = lm.hidden_states(lm.embed(enc["input_ids"]), enc["attention_mask"])
    alone = lm.tokenizer("yes", return_tensors="pt")["input_ids"]
    hidden_alone, _ = lm.hidden_states(lm.embed(alone), torch.ones_like(alone))
    torch.testing.assert_close(hidden[1, -alone.shape[1] :], hidden_alone[0])


def test_kv_cache_continues_the_sequence(plugins, tiny_llm_dir):
    lm = build(plugins, tiny_llm_dir)
    ids = lm.tokenizer("what colour is the square", return_tensors="pt")["input_ids"]
    mask = torch.ones_like(ids)
    full, _ = lm.hidden_states(lm.embed(ids), mask)
    _, cache = lm.hidden_states(lm.embed(ids[:, :-1]), mask[:, :-1], use_cache=True)
    assert cache is not None
    step, _ = lm.hidden_states(lm.embed(ids[:, -1:]), mask, past_key_values=cache, use_cache=True)
    torch.testing.assert_close(step[:, 0], full[:, -1])


def test_chat_template_renders_chatml(plugins, tiny_llm_dir, tiny_tokenizer_dir):
    lm = build(plugins, tiny_llm_dir)
    messages = [{"role": "user", "content": "How many red circles?"}, {"role": "assistant", "content": "2"}]
    text = lm.apply_chat_template(messages, tokenize=False)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHow many red circles?<|im_end|>\n"
        "<|im_start|>assistant\n2<|im_end|>\n"
    )
    prompt = lm.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n") and lm.chat_template
    tok = lm.tokenizer
    assert tok.pad_token == tok.eos_token == "<|endoftext|>"
    for special in (IM_START, IM_END):
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1
    # The tokenizer alone (TokenizersBackend) and inside the model dir (Qwen2Tokenizer) agree.
    alone = build(plugins, tiny_llm_dir, tokenizer=str(tiny_tokenizer_dir)).tokenizer
    assert alone(text)["input_ids"] == tok(text)["input_ids"]
    assert tok.decode(tok(text)["input_ids"]) == text


# -- LoRA ----------------------------------------------------------------------------------


def test_lora_wraps_targets_and_trains_only_lora(plugins, tiny_llm_dir):
    from peft.tuners.lora import LoraLayer

    base = build(plugins, tiny_llm_dir)
    lm = build(plugins, tiny_llm_dir, adapter="lora", lora_r=4, lora_alpha=8)
    assert lm.is_peft
    wrapped = {
        name.rsplit(".", 1)[-1] for name, m in lm.base_model.named_modules() if isinstance(m, LoraLayer)
    }
    assert wrapped == set(TARGETS)
    trainable = {n for n, p in lm.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    h, kv, inter, r = 64, 2 * 16, 128, 4
    per_layer = r * ((h + h) * 2 + (h + kv) * 2 + (h + inter) * 3)
    assert lm.num_parameters(trainable_only=True) == 2 * per_layer
    assert lm.num_parameters() == base.num_parameters() + 2 * per_layer

    enc = batch(lm, ["a red circle", "a blue square on the right"])
    lm.train()
    hidden, _ = lm.hidden_states(lm.embed(enc["input_ids"]), enc["attention_mask"])
    base_hidden, _ = base.hidden_states(base.embed(enc["input_ids"]), enc["attention_mask"])
    torch.testing.assert_close(hidden, base_hidden)  # lora_B starts at zero
    lm.lm_head(hidden).logsumexp(-1).mean().backward()
    grads = {n for n, p in lm.named_parameters() if p.grad is not None}
    assert grads == trainable


def test_lora_adapter_round_trip(plugins, tiny_llm_dir, tmp_path):
    lm = build(plugins, tiny_llm_dir, adapter="lora", lora_r=4)
    with torch.no_grad():
        for p in lm.trainable_parameters():
            p.normal_()
    path = lm.save_adapter(tmp_path)
    assert path.name == "adapter_model.safetensors"
    other = build(plugins, tiny_llm_dir, adapter="lora", lora_r=4)
    other.load_adapter(tmp_path)
    ids = lm.tokenizer("a green star", return_tensors="pt")["input_ids"]
    torch.testing.assert_close(other.hidden_states(other.embed(ids))[0], lm.hidden_states(lm.embed(ids))[0])
    mismatched = build(plugins, tiny_llm_dir, adapter="lora", lora_r=8)
    with pytest.raises(MicroVLMError, match="lora_r"):
        mismatched.load_adapter(tmp_path)


def test_gradient_checkpointing_with_lora(plugins, tiny_llm_dir):
    lm = build(plugins, tiny_llm_dir, adapter="lora", lora_r=4, gradient_checkpointing=True)
    base = lm.base_model
    assert getattr(base, "is_activation_checkpointing", None) or base.is_gradient_checkpointing
    lm.train()
    ids = lm.tokenizer("a red circle", return_tensors="pt")["input_ids"]
    hidden, _ = lm.hidden_states(lm.embed(ids), torch.ones_like(ids))
    lm.lm_head(hidden).logsumexp(-1).mean().backward()
    assert all(p.grad is not None for p in lm.trainable_parameters())


# -- the fixtures themselves ---------------------------------------------------------------


def test_tiny_llm_is_deterministic_and_leaves_the_rng_alone(tmp_path, tiny_llm_dir):
    from safetensors.torch import load_file

    from microvlm.testing.fixtures import make_tiny_llm

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    make_tiny_llm(tmp_path / "again")
    assert torch.equal(torch.rand(3), expected)
    a = load_file(str(tmp_path / "again" / "model.safetensors"))
    b = load_file(str(tiny_llm_dir / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    generation = json.loads((tiny_llm_dir / "generation_config.json").read_text())
    assert len(generation["eos_token_id"]) == 2
