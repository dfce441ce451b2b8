"""``microvlm model-info`` on the shipped recipes: the full-size model, counted offline on meta."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from microvlm import load_plugins
from microvlm.cli import build_cli

RECIPES = Path(__file__).parent.parent / "recipes"
OFFLINE = ["--set", "model.llm.init=random", "--set", "model.encoder.pretrained=none"]
DEIT_TINY = 5_524_416  # timm deit_tiny_patch16_224, headless (num_classes=0)
DEIT_SMALL = 21_665_664  # timm deit_small_patch16_224, headless
QWEN_05B = 494_032_768  # Qwen2.5-0.5B, tied embeddings counted once
# LoRA r=64 on q,k,v,o,gate,up,down of 24 layers: r * (in + out) per matrix.
QWEN_LORA_64 = 24 * 64 * ((896 + 896) * 2 + (896 + 128) * 2 + (896 + 4864) * 2 + (4864 + 896))


@pytest.fixture(scope="module")
def cli():
    return build_cli(load_plugins())


@pytest.fixture(autouse=True)
def hub_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def model_info(cli, recipe: str, *args: str) -> dict:
    result = CliRunner().invoke(cli, ["model-info", str(RECIPES / recipe), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_stage2_lora_counts_match_the_seed(cli):
    report = model_info(cli, "stage2_lora.toml", *OFFLINE)
    parts = report["parts"]
    assert QWEN_LORA_64 == 35_192_832
    assert (parts["encoder"]["component"], parts["encoder"]["parameters"]) == ("diet_tiny", DEIT_TINY)
    assert parts["llm"]["parameters"] == QWEN_05B
    assert parts["lora"]["parameters"] == parts["lora"]["trainable"] == QWEN_LORA_64
    assert report["train"] == ["bridge", "projection", "lora"]
    assert parts["encoder"]["trainable"] == parts["llm"]["trainable"] == 0
    trainable = parts["bridge"]["parameters"] + parts["projection"]["parameters"] + QWEN_LORA_64
    assert report["total"]["trainable"] == trainable
    # Projection: 768 -> 896 -> 896 (two linear layers with biases).
    assert parts["projection"]["parameters"] == 768 * 896 + 896 + 896 * 896 + 896


def test_counts_need_no_weights_even_when_the_recipe_asks_for_them(cli):
    """The recipe says pretrained weights; counting on meta switches to configs alone."""
    report = model_info(cli, "stage1_alignment.toml")
    assert report["parts"]["llm"]["parameters"] == QWEN_05B
    assert report["parts"]["encoder"]["parameters"] == DEIT_TINY
    assert "lora" not in report["parts"]


def test_diet_small_and_lora_rank(cli):
    report = model_info(
        cli,
        "stage2_lora.toml",
        *OFFLINE,
        "--set",
        "model.encoder.name=diet_small",
        "--set",
        "model.llm.lora_r=8",
    )
    assert report["parts"]["encoder"]["parameters"] == DEIT_SMALL
    assert report["parts"]["lora"]["parameters"] == QWEN_LORA_64 // 8


def test_qlora_base_is_counted_in_four_bits(cli):
    lora = model_info(cli, "stage2_lora.toml", *OFFLINE, "--set", "model.llm.dtype=bfloat16")
    qlora = model_info(cli, "qlora_training.toml", *OFFLINE, "--set", "model.llm.dtype=bfloat16")
    assert qlora["parts"]["llm"]["parameters"] == QWEN_05B
    assert lora["parts"]["llm"]["bytes"] == 2 * QWEN_05B
    embedding = 151_936 * 896  # tied; stays bfloat16
    assert qlora["parts"]["llm"]["dtype"] == "bfloat16+nf4"
    nf4 = qlora["parts"]["llm"]["bytes"] - 2 * (embedding + 24 * 2 * 896 + 896 + 24 * (896 + 128 + 128))
    assert (QWEN_05B - embedding) / 2 < nf4 < (QWEN_05B - embedding) * 0.54  # ~4.13 bits per weight


def test_a_pipeline_reports_every_stage(cli):
    report = model_info(cli, "pipeline.toml", *OFFLINE)
    assert [s["run"] for s in report["stages"]][:2] == ["stage1_alignment", "stage2_lora"]
    assert all(s["parts"]["llm"]["parameters"] == QWEN_05B for s in report["stages"])
