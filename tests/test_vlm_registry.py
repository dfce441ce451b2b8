"""Every registered encoder with every registered bridge, assembled into MicroVLM at tiny sizes.

A new encoder or bridge plugin is tested here without new tests: forward shapes, finite
values, and gradients that reach exactly the parameters that train (the frozen encoder and
LLM base get none; the bridge, projection and LoRA do).
"""

from __future__ import annotations

import attrs
import pytest
import torch

from microvlm import load_plugins
from microvlm.data import Example, Segment
from microvlm.data.text import collate_text
from microvlm.models.vlm import MicroVLM
from microvlm.recipes.load import build_model_config
from microvlm.testing.fixtures import tiny_llm_path

PLUGINS = load_plugins()
# Tiny settings, applied to whichever of these fields a plugin's config class has.
ENCODER_TINY = {"pretrained": "none", "image_size": 32, "model": "test_vit"}  # timm's 64-d test ViT
BRIDGE_TINY = {"num_queries": 4, "num_layers": 1, "hidden_size": 32, "num_heads": 4, "dropout": 0.0}


def distinct(kind: str) -> list[str]:
    """Registered names, one per (factory, config class): an alias builds what its target does."""
    seen: dict[tuple, str] = {}
    components = [PLUGINS.get(kind, name) for name in PLUGINS.names(kind)]
    for c in sorted(components, key=lambda c: (c.description.startswith("alias"), c.name)):
        seen.setdefault((c.factory, c.config_cls), c.name)
    return sorted(seen.values())


def tiny(kind: str, name: str, settings: dict) -> dict:
    fields = attrs.fields_dict(PLUGINS.get(kind, name).config_cls)
    return {"name": name, **{k: v for k, v in settings.items() if k in fields}}


@pytest.mark.parametrize("bridge", distinct("bridge"))
@pytest.mark.parametrize("encoder", distinct("encoder"))
def test_encoder_and_bridge_assemble_and_train_the_right_parts(encoder: str, bridge: str) -> None:
    section = {
        "encoder": tiny("encoder", encoder, ENCODER_TINY),
        "bridge": tiny("bridge", bridge, BRIDGE_TINY),
        "llm": {"name": "hf_causal_lm", "model": str(tiny_llm_path()), "adapter": "lora", "lora_r": 4},
    }
    torch.manual_seed(0)
    model = MicroVLM.from_config(build_model_config(section, PLUGINS), PLUGINS).train()
    B = 2
    images = torch.randn(B, 3, 32, 32)

    image_tokens, _ = model.image_embeddings(images)
    assert image_tokens.shape == (B, model.num_queries, model.llm.hidden_size)
    assert torch.isfinite(image_tokens).all()

    tok = model.tokenizer
    examples = [Example((Segment("Describe."), Segment(" a red circle" + tok.eos_token, target=True)))] * B
    text = collate_text(examples, tok, max_tokens=32)
    out = model(images, text.input_ids, text.attention_mask, text.labels)
    assert torch.isfinite(out.loss) and out.num_target_tokens == text.num_target_tokens
    out.loss.backward()

    if getattr(model.config.encoder.config, "freeze", False):  # the default of the DeiT encoders
        assert not any(p.requires_grad for p in model.encoder.parameters())
    for name, p in model.named_parameters():  # frozen parts get no gradient, trainable ones do
        assert (p.grad is not None) == p.requires_grad, name
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), name
    assert all(p.grad is None for n, p in model.llm.named_parameters() if "lora_" not in n)
    assert any(p.grad is not None for p in model.bridge.parameters())
    assert all(p.grad is not None for n, p in model.llm.named_parameters() if "lora_" in n)
