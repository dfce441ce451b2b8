"""The bitnet158 exporter: ternary decoder linears at 1.6 bits, exactly what ternarize gives;
a BitLinearQAT model exports its shadow weights and runs the same after loading."""

from __future__ import annotations

import math

import torch
from safetensors.torch import load_file

from microvlm_quant.bitlinear import BitLinearQAT, TernaryLinear, replace_linears, set_lambda
from microvlm_quant.export_common import merged_llm
from microvlm_quant.int8 import Int8Embedding, Int8Linear
from microvlm_quant.ternary import ternarize, unpack_trits


def decoded(stored: dict, name: str, shape: torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
    """Trits and scale of layer ``name`` as read back from the file."""
    packed = stored[f"llm.model.{name}.packed"]
    return unpack_trits(packed, shape.numel()).view(shape), stored[f"llm.model.{name}.scale"]


def test_weights_on_disk_are_the_ternarised_merged_weights(kit, plugins, tmp_path):
    model = kit.tiny_vlm(plugins)  # LoRA on: ternarised after merging
    directory = tmp_path / "export"
    _, report, loaded = kit.round_trip(plugins, model, "bitnet158", directory)
    stored = load_file(str(directory / "model.safetensors"))
    merged = merged_llm(model.llm)
    decoder = [n for n in merged.linears if n != merged.head]
    assert len(decoder) == 2 * 7
    payload = 0
    for name in decoder:
        weight = merged.tensors[f"{name}.weight"]
        trits, gamma = ternarize(weight)
        got_trits, got_scale = decoded(stored, name, weight.shape)
        assert torch.equal(got_trits, trits) and torch.equal(got_scale, gamma.reshape(1))
        payload += math.ceil(weight.numel() / 5) + 4  # 5 trits a byte, one fp32 gamma
        assert stored[f"llm.model.{name}.packed"].dtype == torch.uint8
    group = kit.groups(report)["llm.linear"]
    assert group.bytes == payload and group.parameters == sum(
        merged.tensors[f"{n}.weight"].numel() for n in decoder
    )
    assert group.bits_per_weight <= 1.6 + 8 * 5 / 4096  # Qwen2.5-0.5B: 1.6000x (scales of 168 layers)
    assert kit.groups(report)["llm.embeddings"].storage.startswith("int8")
    assert any("garbage" in n for n in report.notes)

    base = loaded.llm.base_model
    layers = [m for n, m in base.named_modules() if n.endswith("_proj")]
    assert len(layers) == 14 and all(type(m) is TernaryLinear for m in layers)
    assert (
        type(base.get_input_embeddings()) is Int8Embedding
        and type(base.get_output_embeddings()) is Int8Linear
    )
    images = torch.zeros(1, 3, 32, 32)
    assert isinstance(loaded.generate({"image": images, "prompt": "Describe."}, max_new_tokens=3)[0], str)


def test_a_qat_model_exports_its_shadow_weights_and_runs_the_same(kit, plugins, tmp_path):
    model = kit.tiny_vlm(plugins, adapter="none")
    decoder = model.llm.base_model.model
    assert replace_linears(decoder, skip=set()) == 14
    set_lambda(decoder, 1.0)  # the BitNet b1.58 forward of a fully warmed-up QAT run
    with torch.no_grad():  # shadow weights away from the pretrained ones, as training leaves them
        for m in decoder.modules():
            if isinstance(m, BitLinearQAT):
                m.weight.mul_(1.5)
    directory = tmp_path / "export"
    _, _, loaded = kit.round_trip(plugins, model, "bitnet158", directory, embeddings="float32")
    stored = load_file(str(directory / "model.safetensors"))
    for name, m in decoder.named_modules():
        if isinstance(m, BitLinearQAT):
            trits, gamma = ternarize(m.weight)
            got_trits, got_scale = decoded(stored, f"model.{name}", m.weight.shape)
            assert torch.equal(got_trits, trits) and torch.equal(got_scale, gamma.reshape(1))
    a, b = kit.logits(model), kit.logits(loaded)
    # Same ternary weights and 8-bit activations; only the int8 Q-Former/projection differ.
    cosine = torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0)
    assert cosine > 0.99 and (a.argmax(-1) == b.argmax(-1)).float().mean() >= 0.9


def test_skipped_layers_stay_int8(kit, plugins, tmp_path):
    model = kit.tiny_vlm(plugins, adapter="none")
    _, report, loaded = kit.round_trip(plugins, model, "bitnet158", tmp_path / "export", skip=("down_proj",))
    kinds = {
        n.rpartition(".")[2]: type(m) for n, m in loaded.llm.base_model.named_modules() if n.endswith("_proj")
    }
    assert kinds.pop("down_proj") is Int8Linear and set(kinds.values()) == {TernaryLinear}
    found = kit.groups(report)
    assert found["llm.linear.int8"].parameters == 2 * 128 * 64 and found[
        "llm.linear.int8"
    ].storage.startswith("int8")
