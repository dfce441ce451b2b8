"""The int8 exporter: int8 linears and embeddings on disk and at run time, a tied head stored once."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

import microvlm
from microvlm.errors import MicroVLMError
from microvlm.recipes.structure import ConfigErrors, structure
from microvlm.testing.fixtures import make_tiny_llm
from microvlm_quant.export_common import merged_llm
from microvlm_quant.export_config import BitNetExportConfig, FloatExportConfig, Int8ExportConfig
from microvlm_quant.int8 import Int8Embedding, Int8Linear, quantize_int8

HALF_STEP = 0.5 / 127  # int8 rounding error, relative to a row's largest weight


def test_entry_point_registers_the_four_exporters():
    plugins = microvlm.load_plugins(allow=["microvlm-quant"])
    classes = {name: plugins.get("exporter", name).config_cls for name in plugins.names("exporter")}
    assert classes == {
        "fp16": FloatExportConfig,
        "bf16": FloatExportConfig,
        "int8": Int8ExportConfig,
        "bitnet158": BitNetExportConfig,
    }
    assert structure({"skip": ["down_proj"]}, BitNetExportConfig) == BitNetExportConfig(skip=("down_proj",))
    with pytest.raises(ConfigErrors, match="embeddings"):
        structure({"embeddings": "int4"}, Int8ExportConfig)
    with pytest.raises(ConfigErrors, match="cpu_compute"):
        structure({"cpu_compute": "fp16"}, FloatExportConfig)


def test_round_trip_runs_on_int8_weights(kit, plugins, tmp_path):
    model = kit.tiny_vlm(plugins)
    directory = tmp_path / "export"
    _, report, loaded = kit.round_trip(plugins, model, "int8", directory)
    a, b = kit.logits(model), kit.logits(loaded)
    assert (a - b).abs().max() <= 16 * HALF_STEP * a.abs().max()
    assert (a.argmax(-1) == b.argmax(-1)).float().mean() >= 0.9
    images = torch.zeros(1, 3, 32, 32)
    assert isinstance(loaded.generate({"image": images, "prompt": "Describe."}, max_new_tokens=3)[0], str)

    base = loaded.llm.base_model
    decoder_linears = [m for n, m in base.named_modules() if n.endswith("_proj")]
    assert len(decoder_linears) == 2 * 7 and all(type(m) is Int8Linear for m in decoder_linears)
    table, head = base.get_input_embeddings(), base.get_output_embeddings()
    assert type(table) is Int8Embedding and type(head) is Int8Linear
    assert head.qweight is table.qweight and head.scale is table.scale  # tied: one copy
    small = [m for part in (loaded.bridge, loaded.projection) for m in part.modules()]
    assert not any(type(m) is nn.Linear for m in small) and any(type(m) is Int8Linear for m in small)
    # Nothing of the LLM, bridge or projection is a float matrix any more: only norms and biases.
    floats = [
        n
        for n, t in loaded.state_dict().items()
        if t.is_floating_point() and t.dim() >= 2 and not n.startswith("encoder.")
    ]
    assert floats == ["bridge.query_embeds"]

    stored = load_file(str(directory / "model.safetensors"))
    assert not any("lm_head" in k for k in stored)
    merged = merged_llm(model.llm)
    for name in merged.linears:
        q, scale = quantize_int8(merged.tensors[f"{name}.weight"])
        assert torch.equal(stored[f"llm.model.{name}.qweight"], q)
        assert torch.equal(stored[f"llm.model.{name}.scale"], scale)
    assert stored["encoder.proj.weight"].dtype == torch.float16
    assert loaded.encoder.proj.weight.dtype == torch.float32
    with safe_open(str(directory / "model.safetensors"), "pt") as f:
        assert f.metadata()["tied_head"] == "llm.model.lm_head=llm.model.model.embed_tokens"
    found = kit.groups(report)
    assert found["llm.linear"].storage.startswith("int8") and found["encoder"].storage == "fp16"
    assert 8 < found["llm.linear"].bits_per_weight < 9


def test_int8_is_about_half_of_fp16(kit, plugins, tmp_path):
    # Scales cost 32 bits a row: at width 64 that is 0.5 bit per weight; Qwen2.5-0.5B's rows are
    # 896 or 4864 wide, so the size test uses a wider tiny LLM (256 / 512).
    llm = make_tiny_llm(tmp_path / "wide", hidden_size=256, intermediate_size=512, heads=4, kv_heads=2)
    model = kit.tiny_vlm(plugins, llm=llm)
    sizes = {}
    for name in ("fp16", "int8"):
        _, report, _ = kit.round_trip(plugins, model, name, tmp_path / name)
        found = kit.groups(report)
        sizes[name] = found["llm.linear"].bytes + found["llm.embeddings"].bytes
        assert found["llm.linear"].parameters == 2 * (3 * 256 * 512 + 2 * 256 * 256 + 2 * 256 * 128)
    assert sizes["int8"] <= 0.52 * sizes["fp16"]
    files = {n: (tmp_path / n / "model.safetensors").stat().st_size for n in sizes}
    files["fp16"] += (tmp_path / "fp16" / "llm" / "model.safetensors").stat().st_size
    assert files["int8"] <= 0.6 * files["fp16"]  # norms, biases and the fp16 encoder included


def test_float_embeddings_keep_the_head_tied(kit, plugins, tmp_path):
    model = kit.tiny_vlm(plugins, adapter="none")
    _, report, loaded = kit.round_trip(plugins, model, "int8", tmp_path / "export", embeddings="float32")
    base = loaded.llm.base_model
    assert type(base.get_input_embeddings()) is nn.Embedding
    assert base.get_output_embeddings().weight is base.get_input_embeddings().weight
    assert kit.groups(report)["llm.embeddings"].storage == "fp32"
    a, b = kit.logits(model), kit.logits(loaded)
    assert (a - b).abs().max() <= 16 * HALF_STEP * a.abs().max()


def test_truncated_file_is_a_clear_error(kit, plugins, tmp_path):
    model = kit.tiny_vlm(plugins, adapter="none")
    exporter, _, _ = kit.round_trip(plugins, model, "int8", tmp_path / "export")
    path = tmp_path / "export" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(MicroVLMError, match=str(path).replace(".", r"\.")):
        exporter.load(tmp_path / "export", plugins=plugins)


def test_an_untied_head_is_its_own_int8_layer(kit, plugins, tmp_path):
    llm = make_tiny_llm(tmp_path / "untied", tie_word_embeddings=False)
    model = kit.tiny_vlm(plugins, llm=llm)
    _, report, loaded = kit.round_trip(plugins, model, "int8", tmp_path / "export")
    base = loaded.llm.base_model
    head, table = base.get_output_embeddings(), base.get_input_embeddings()
    assert type(head) is Int8Linear and head.qweight is not table.qweight
    assert kit.groups(report)["llm.lm_head"].parameters == head.qweight.numel()
    assert not any("tied" in n for n in report.notes)
    a, b = kit.logits(model), kit.logits(loaded)
    assert (a - b).abs().max() <= 16 * HALF_STEP * a.abs().max()
