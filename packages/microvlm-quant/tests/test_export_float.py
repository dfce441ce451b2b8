"""The fp16 / bf16 exporters: LoRA merged, a plain HF ``llm/`` folder, offline reload, QLoRA."""

from __future__ import annotations

import copy
import json
import sys

import pytest
import torch
from safetensors.torch import load_file

from microvlm.contracts.kinds import missing_members
from microvlm.errors import MicroVLMError
from microvlm_quant.export_common import merged_llm

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

EPS = {"fp16": 2.0**-11, "bf16": 2.0**-8}  # unit roundoff of the stored format
DTYPE = {"fp16": torch.float16, "bf16": torch.bfloat16}


@pytest.mark.parametrize("name", ["fp16", "bf16"])
def test_round_trip_stays_within_the_formats_rounding(kit, plugins, tmp_path, name):
    model = kit.tiny_vlm(plugins)
    exporter, report, loaded = kit.round_trip(plugins, model, name, tmp_path / "export")
    assert missing_members(exporter, "exporter") == []
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert loaded.config.llm.config.adapter == "none" and not loaded.llm.is_peft
    a, b = kit.logits(model), kit.logits(loaded)
    # Weights rounded to the format's unit roundoff move the logits by a few of it, relatively.
    bound = 8 * EPS[name] * a.abs().max()
    assert (a - b).abs().max() <= bound
    assert not torch.equal(a, b)  # really rounded
    found = kit.groups(report)
    assert {"llm.linear", "llm.embeddings", "encoder", "bridge", "projection", "norms+biases"} <= set(found)
    assert all(g.bits_per_weight == 16 for g in report.groups)
    assert any("LoRA merged" in n for n in report.notes) and any("tied" in n for n in report.notes)


def test_llm_folder_holds_the_merged_weights_and_loads_with_plain_transformers(kit, plugins, tmp_path):
    from transformers import AutoModelForCausalLM

    model = kit.tiny_vlm(plugins)
    directory = tmp_path / "export"
    _, _, loaded = kit.round_trip(plugins, model, "fp16", directory)
    # peft's own merge, on a copy, is what the file holds (rounded to fp16).
    reference = copy.deepcopy(model.llm.model).merge_and_unload().state_dict()
    stored = load_file(str(directory / "llm" / "model.safetensors"))
    assert "lm_head.weight" not in stored  # tied: stored once, as transformers saves Qwen2.5
    assert set(stored) == set(reference) - {"lm_head.weight"}
    for key, tensor in stored.items():
        assert tensor.dtype == torch.float16
        torch.testing.assert_close(tensor, reference[key].half(), rtol=0, atol=0)

    plain = AutoModelForCausalLM.from_pretrained(str(directory / "llm"), dtype=torch.float32)
    assert plain.lm_head.weight is plain.model.embed_tokens.weight
    ids = loaded.tokenizer(["a red circle on the left"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        theirs = plain(input_ids=ids).logits
        ours = loaded.llm.lm_head(loaded.llm.hidden_states(loaded.llm.embed(ids)).hidden_states)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_folder_rebuilds_offline_and_never_trusts_remote_code(kit, plugins, tmp_path):
    model = kit.tiny_vlm(plugins)
    directory = tmp_path / "export"
    exporter, _, _ = kit.round_trip(plugins, model, "bf16", directory)
    table_file = directory / "model.toml"
    table = tomllib.loads(table_file.read_text())["model"]
    assert table["llm"]["model"] == "llm" and table["llm"]["trust_remote_code"] is False
    assert (table["llm"]["adapter"], table["llm"]["init"], table["llm"]["dtype"]) == (
        "none",
        "pretrained",
        "bfloat16",
    )
    assert json.loads((directory / "preprocessor_config.json").read_text())["input_size"] == [3, 32, 32]
    assert json.loads((directory / "llm" / "config.json").read_text())["dtype"] == "bfloat16"
    text = table_file.read_text()
    assert text.count("trust_remote_code = false") == 1
    table_file.write_text(text.replace("trust_remote_code = false", "trust_remote_code = true"))
    again = exporter.load(directory, plugins=plugins)
    assert again.config.llm.config.trust_remote_code is False


def test_stored_compute_keeps_half_precision(kit, plugins, tmp_path):
    model = kit.tiny_vlm(plugins)
    _, _, loaded = kit.round_trip(plugins, model, "fp16", tmp_path / "export", cpu_compute="stored")
    assert loaded.llm.dtype == torch.float16
    assert (kit.logits(model) - kit.logits(loaded)).abs().max() <= 16 * EPS["fp16"] * kit.logits(
        model
    ).abs().max()


def test_qlora_base_is_dequantised_then_merged(kit, plugins, tmp_path):
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb

    model = kit.tiny_vlm(plugins, adapter="qlora")
    directory = tmp_path / "export"
    _, report, loaded = kit.round_trip(plugins, model, "fp16", directory)
    assert any("QLoRA base dequantised" in n for n in report.notes)
    stored = load_file(str(directory / "llm" / "model.safetensors"))
    layer = model.llm.base_model.model.layers[0].self_attn.q_proj  # peft LoRA layer over a Linear4bit
    base = bnb.functional.dequantize_4bit(layer.base_layer.weight.data, layer.base_layer.weight.quant_state)
    delta = layer.lora_B["default"].weight @ layer.lora_A["default"].weight * layer.scaling["default"]
    expected = (base.float() + delta).half()
    torch.testing.assert_close(
        stored["model.layers.0.self_attn.q_proj.weight"], expected, rtol=0, atol=2**-14
    )
    assert "quantization_config" not in json.loads((directory / "llm" / "config.json").read_text())
    a, b = kit.logits(model), kit.logits(loaded)
    assert (a - b).abs().max() <= 8 * EPS["fp16"] * a.abs().max()


@pytest.mark.parametrize("file", ["model.safetensors", "llm/model.safetensors"])
def test_truncated_weights_are_a_clear_error_naming_the_file(kit, plugins, tmp_path, file):
    model = kit.tiny_vlm(plugins, adapter="none")
    directory = tmp_path / "export"
    exporter, _, _ = kit.round_trip(plugins, model, "fp16", directory)
    path = directory / file
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(MicroVLMError, match=str(path).replace(".", r"\.")):
        exporter.load(directory, plugins=plugins)


def test_merging_leaves_the_source_model_unchanged(kit, plugins):
    model = kit.tiny_vlm(plugins)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    merged = merged_llm(model.llm)
    assert model.llm.is_peft and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert len(merged.linears) == 2 * 7 and merged.tied and merged.head == "lm_head"
