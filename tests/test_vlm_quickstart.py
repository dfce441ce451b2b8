"""The seed's Quick Start ("Basic Usage") snippet, on a tiny local LLM and offline.

Two honest differences from the seed's text, both through the constructor's documented
``options`` (``--set``-style ``[model]`` values): the DeiT-Tiny encoder gets random weights
(``encoder.pretrained = "none"``: timm's ImageNet weights need the network), and the Q-Former
has one 64-d layer instead of six 768-d ones (the default's random init alone takes tens of
seconds of a shared CI CPU; the code path is the same).
"""

from __future__ import annotations

import pytest
import torch

from microvlm.testing.fixtures import tiny_llm_path

OFFLINE_SMALL = {
    "encoder.pretrained": "none",
    "bridge.num_layers": 1,
    "bridge.hidden_size": 64,
    "bridge.num_heads": 4,
}


@pytest.fixture(scope="module")
def quick_start():
    """The snippet, line for line (llm_model a local directory, lora_r 8, 8 new tokens)."""
    from PIL import Image

    from microvlm import ImageEvalProcessor, MicroVLM

    # Initialize model
    model = MicroVLM(
        vision_encoder="diet_tiny",  # or "diet_small"
        llm_model=str(tiny_llm_path()),
        use_lora=True,
        lora_r=8,
        options=OFFLINE_SMALL,
    )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device).eval()

    # Process image
    processor = ImageEvalProcessor(image_size=224)
    image = Image.new("RGB", (320, 240), (200, 40, 40)).convert("RGB")
    image_tensor = processor(image).unsqueeze(0).to(device)

    # Generate response
    with torch.no_grad():
        response = model.generate(
            {"image": image_tensor, "prompt": "Describe this image."},
            max_new_tokens=8,
            temperature=0.7,
        )
    return model, image_tensor, response


def test_the_quick_start_snippet_runs(quick_start):
    model, image_tensor, response = quick_start
    assert isinstance(response, list) and len(response) == 1 and isinstance(response[0], str)
    assert image_tensor.shape == (1, 3, 224, 224)
    assert model.config.encoder.name == "diet_tiny" and model.encoder.out_dim == 192
    assert model.encoder.architecture == "deit_tiny_patch16_224"
    lora_a = [p for n, p in model.named_parameters() if "lora_A" in n]
    assert lora_a and all(p.shape[0] == 8 and p.requires_grad for p in lora_a)
    assert not any(p.requires_grad for p in model.encoder.parameters())
    image_tokens, _ = model.image_embeddings(image_tensor)
    assert image_tokens.shape == (1, 32, model.llm.hidden_size)  # 32 queries, the LLM's width


def test_an_export_with_all_weights_reloads_the_same_model(quick_start, tmp_path):
    from microvlm import MicroVLM

    model, image_tensor, _ = quick_start  # runs last: it changes the shared model's weights
    with torch.no_grad():  # make every weight specific to this model, the frozen DeiT included
        for p in model.parameters():
            p.add_(0.01)
    prompt = {"image": image_tensor, "prompt": "Describe this image."}
    expected = model.generate(prompt, max_new_tokens=8)
    directory = model.save_pretrained(tmp_path / "exported", weights="all")
    again = MicroVLM.from_pretrained(directory)  # DeiT rebuilt with pretrained = "none", then loaded
    assert again.config.encoder.config.pretrained == "none"
    assert again.generate(prompt, max_new_tokens=8) == expected
    for name, tensor in model.encoder.state_dict().items():
        assert torch.equal(again.encoder.state_dict()[name], tensor), name
