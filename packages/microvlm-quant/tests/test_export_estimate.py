"""``Exporter.estimate``: the report ``export`` writes, from shapes alone (``microvlm model-info``).

Each case exports a tiny model for real and holds the estimate of the same model, and of the
same architecture built on the ``meta`` device, equal to the written report, group by group.
"""

from __future__ import annotations

from typing import Any

import pytest

from microvlm.models.info import counting_config
from microvlm.models.vlm import MicroVLM
from microvlm.testing.fixtures import make_tiny_llm

CASES = [
    ("fp16", {}),
    ("bf16", {}),
    ("int8", {}),
    ("int8", {"embeddings": "float32"}),
    ("bitnet158", {}),
    ("bitnet158", {"skip": ("down_proj",)}),
]


def rows(report: Any) -> list[tuple[str, int, int, str]]:
    return [(g.name, g.parameters, g.bytes, g.storage) for g in report.groups]


def check(kit: Any, plugins: Any, model: MicroVLM, name: str, settings: dict, directory: Any) -> Any:
    exporter, report, _ = kit.round_trip(plugins, model, name, directory, **settings)
    meta = MicroVLM.from_config(counting_config(model.config), plugins, device="meta")
    assert next(meta.parameters()).is_meta
    assert exporter.estimate(model).notes == report.notes
    for subject in (model, meta):  # a meta twin of a qlora model is not 4-bit: its notes differ
        assert rows(exporter.estimate(subject)) == rows(report)
    return report


@pytest.mark.parametrize(
    ("name", "settings"), CASES, ids=[f"{n}-{'-'.join(s) or 'default'}" for n, s in CASES]
)
def test_estimate_is_the_written_report(kit, plugins, tmp_path, name, settings):
    report = check(kit, plugins, kit.tiny_vlm(plugins), name, settings, tmp_path / "export")
    assert "llm.linear" in {g.name for g in report.groups}


def test_estimate_leaves_out_lora_and_stores_a_tied_table_once(kit, plugins):
    model = kit.tiny_vlm(plugins)
    base = model.llm.base_model
    assert base.get_output_embeddings().weight is base.get_input_embeddings().weight
    merged_shapes = {
        n: p.numel() for n, p in base.named_parameters() if "lora_" not in n and "lm_head" not in n
    }
    report = model_exporter(plugins, "fp16").estimate(model)
    llm = [g for g in report.groups if g.name.startswith("llm.") or g.name == "norms+biases"]
    assert sum(g.parameters for g in llm) == sum(merged_shapes.values())
    assert sum(g.bytes for g in llm) == 2 * sum(merged_shapes.values())  # fp16 everywhere
    assert any("tied" in n for n in report.notes) and any("LoRA merged" in n for n in report.notes)


def test_estimate_of_an_untied_head_counts_it(kit, plugins, tmp_path):
    model = kit.tiny_vlm(plugins, llm=make_tiny_llm(tmp_path / "untied", tie_word_embeddings=False))
    report = check(kit, plugins, model, "int8", {}, tmp_path / "export")
    head = model.llm.base_model.get_output_embeddings().weight
    assert {g.name: g for g in report.groups}["llm.lm_head"].parameters == head.numel()


def test_estimate_of_a_qlora_model_counts_the_unpacked_shapes(kit, plugins, tmp_path):
    pytest.importorskip("bitsandbytes")
    model = kit.tiny_vlm(plugins, adapter="qlora")
    layer = model.llm.base_model.model.layers[0].self_attn.q_proj.base_layer
    assert layer.weight.numel() * 2 == layer.weight.quant_state.shape.numel()  # Params4bit: packed
    for name in ("fp16", "bitnet158"):
        report = check(kit, plugins, model, name, {}, tmp_path / name)
        assert any("QLoRA base dequantised" in n for n in report.notes)


def model_exporter(plugins: Any, name: str, **settings: Any) -> Any:
    component = plugins.get("exporter", name)
    return component.build(component.config_cls(**settings))
