"""Every exporter of microvlm-quant on the recipe's tiny model (timm DeiT encoder, Q-Former,
tiny Qwen2 with LoRA): export, load back offline, generate; sizes per format side by side."""

from __future__ import annotations

import sys

import pytest
import torch

import microvlm
from microvlm.models.vlm import MicroVLM
from microvlm.recipes.load import build_model_config
from microvlm.testing.fixtures import TINY_MODEL_TOML, tiny_llm_path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FORMATS = ("fp16", "bf16", "int8", "bitnet158")


@pytest.fixture(scope="module")
def plugins() -> microvlm.Plugins:
    return microvlm.load_plugins(allow=["microvlm-encoders", "microvlm-quant"])


@pytest.fixture(scope="module")
def model(plugins) -> MicroVLM:
    table = tomllib.loads(TINY_MODEL_TOML.format(llm=tiny_llm_path()))["model"]
    table["llm"].update(adapter="lora", lora_r=4, lora_dropout=0.0, dtype="float32")
    torch.manual_seed(0)
    vlm = MicroVLM.from_config(build_model_config(table, plugins), plugins)
    with torch.no_grad():
        for name, p in vlm.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.1)
    return vlm.eval()


def logits(model: MicroVLM, images: torch.Tensor) -> torch.Tensor:
    enc = model.tokenizer(["what colour is the square"], return_tensors="pt")
    with torch.no_grad():
        hidden = model.text_predictors(images, enc["input_ids"], enc["attention_mask"])
        return model.llm.lm_head(hidden).float()


def folder_bytes(directory) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*.safetensors"))


def test_every_format_exports_loads_and_generates(plugins, model, tmp_path):
    images = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    reference = logits(model, images)
    sizes, reported = {}, {}
    for name in FORMATS:
        exporter = plugins.build("exporter", name)
        directory = tmp_path / name
        directory.mkdir()
        report = exporter.export(model, directory)
        loaded = exporter.load(directory, plugins=plugins)
        assert loaded.config.encoder.name == "timm" and loaded.config.encoder.config.pretrained == "none"
        assert not any(t.is_meta for t in loaded.state_dict().values())
        answer = loaded.generate({"image": images, "prompt": "Describe the image."}, max_new_tokens=4)
        assert len(answer) == 1 and isinstance(answer[0], str)
        got = logits(loaded, images)
        assert got.shape == reference.shape and torch.isfinite(got).all()
        if name != "bitnet158":  # ternarising an untrained model is not expected to stay close
            assert (got.argmax(-1) == reference.argmax(-1)).float().mean() >= 0.9
        sizes[name] = folder_bytes(directory)
        reported[name] = sum(g.bytes for g in report.groups)
        assert 0.9 * sizes[name] <= reported[name] <= sizes[name]  # all but the files' JSON headers
        assert {g.name for g in report.groups} >= {"llm.linear", "llm.embeddings", "encoder", "bridge"}
    assert reported["bf16"] == reported["fp16"]
    assert sizes["bitnet158"] < sizes["int8"] < sizes["fp16"]
