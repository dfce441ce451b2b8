"""MicroVLM assembly: loss on labelled positions only, padding, generation, streaming."""

import pytest
import torch
import torch.nn.functional as F

from microvlm import load_plugins
from microvlm.data import Example, Segment
from microvlm.data.text import IGNORE, collate_text
from microvlm.models.vlm import MicroVLM, seed_model_config
from microvlm.recipes.load import build_model_config
from microvlm.testing.fixtures import tiny_llm_path
from microvlm.testing.toys import ToyPlugin

SECTION = {
    "encoder": {"name": "toy_encoder", "width": 16, "image_size": 32},
    "bridge": {
        "name": "qformer",
        "num_queries": 4,
        "num_layers": 2,
        "hidden_size": 32,
        "num_heads": 4,
        "dropout": 0.0,
    },
}


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(extra=[("toys", ToyPlugin())])


@pytest.fixture(scope="module")
def model(plugins):
    section = {**SECTION, "llm": {"name": "hf_causal_lm", "model": str(tiny_llm_path())}}
    torch.manual_seed(0)
    vlm = MicroVLM.from_config(build_model_config(section, plugins), plugins)
    vlm.set_trainable(["bridge", "projection"])
    return vlm.eval()


def batch(model, pairs):
    examples = [Example((Segment(p), Segment(t + model.tokenizer.eos_token, target=True))) for p, t in pairs]
    return collate_text(examples, model.tokenizer, max_tokens=64)


def test_loss_matches_full_logits_reference(model):
    torch.manual_seed(1)
    images = torch.randn(2, 3, 32, 32)
    text = batch(
        model, [("Question: what colour? Answer:", " red"), ("Describe.", " a blue square and a circle")]
    )
    out = model(images, text.input_ids, text.attention_mask, text.labels)
    # Reference: full logits over the whole sequence, shifted, as a causal LM computes them.
    image_tokens, _ = model.image_embeddings(images)
    embeds = torch.cat([image_tokens, model.llm.embed(text.input_ids)], dim=1)
    mask = torch.cat([torch.ones(2, 4, dtype=torch.long), text.attention_mask], dim=1)
    logits = model.llm.base_model(inputs_embeds=embeds, attention_mask=mask).logits  # (B, Q+T, V)
    labels = torch.cat([torch.full((2, 4), IGNORE), text.labels], dim=1)
    reference = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1))
    assert out.num_target_tokens == text.num_target_tokens
    assert torch.allclose(out.loss, reference, atol=1e-5), (out.loss, reference)


def test_lm_head_sees_labelled_positions_only(model, monkeypatch):
    seen = []
    original = model.llm.lm_head
    monkeypatch.setattr(model.llm, "lm_head", lambda h: seen.append(tuple(h.shape)) or original(h))
    text = batch(model, [("a long prompt with many words before the answer:", " yes")])
    model(torch.randn(1, 3, 32, 32), text.input_ids, text.attention_mask, text.labels)
    assert seen == [(text.num_target_tokens, model.llm.hidden_size)]


def test_gradients_reach_only_the_trainable_parts(model):
    model.zero_grad()
    text = batch(model, [("Describe.", " a red circle")])
    model(torch.randn(1, 3, 32, 32), text.input_ids, text.attention_mask, text.labels).loss.backward()
    with_grad = {n.split(".")[0] for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad == {"bridge", "projection"}
    assert all(p.grad is None for p in model.llm.parameters())


def test_right_padding_does_not_change_a_sample_loss(model):
    torch.manual_seed(2)
    images = torch.randn(2, 3, 32, 32)
    pairs = [("Describe.", " red"), ("Describe the picture in detail please.", " a green triangle")]
    both = batch(model, pairs)
    alone = batch(model, pairs[:1])
    out_both = model(images, both.input_ids, both.attention_mask, both.labels, return_hidden=True)
    out_alone = model(images[:1], alone.input_ids, alone.attention_mask, alone.labels, return_hidden=True)
    n = out_alone.num_target_tokens
    assert torch.allclose(out_both.hidden_states[:n], out_alone.hidden_states, atol=1e-5)


def test_batched_generation_equals_one_by_one(model):
    torch.manual_seed(3)
    images = torch.randn(3, 3, 32, 32)
    prompts = ["Describe.", "Question: how many shapes are there? Answer:", "What colour?"]
    together = model.generate({"image": images, "prompt": prompts}, max_new_tokens=6)
    alone = [
        model.generate({"image": images[i : i + 1], "prompt": p}, max_new_tokens=6)[0]
        for i, p in enumerate(prompts)
    ]
    assert together == alone
    assert all(isinstance(t, str) for t in together)


def test_streaming_pieces_add_up_to_the_answer(model):
    pieces = []
    image = torch.randn(1, 3, 32, 32)
    [answer] = model.generate(
        {"image": image, "prompt": "Describe."}, max_new_tokens=8, on_text=pieces.append
    )
    assert "".join(pieces).strip() == answer


def test_generate_checks_prompt_count(model):
    with pytest.raises(ValueError, match="2 images but 3 prompts"):
        model.generate({"image": torch.randn(2, 3, 32, 32), "prompt": ["a", "b", "c"]})


def test_seed_keyword_arguments(plugins):
    config = seed_model_config(
        "toy_encoder", "some/model", use_lora=True, use_qlora=False, lora_r=32, plugins=plugins
    )
    assert config.encoder.name == "toy_encoder" and config.bridge.name == "qformer"
    assert (config.llm.config.model, config.llm.config.adapter, config.llm.config.lora_r) == (
        "some/model",
        "lora",
        32,
    )
    with pytest.raises(ValueError, match="exclusive"):
        seed_model_config("toy_encoder", "m", True, True, 8, plugins)


def test_from_pretrained_rebuilds_a_trained_model(model, plugins, tmp_path):
    import tomli_w

    from microvlm.train.checkpoint import save_checkpoint

    section = {**SECTION, "llm": {"name": "hf_causal_lm", "model": "/nonexistent/until/overridden"}}
    weights = model.trainable_state_dict()
    save_checkpoint(
        tmp_path / "checkpoint_final",
        weights,
        None,
        {"step": 0},
        extra_files={"model.toml": tomli_w.dumps({"model": section})},
    )
    again = MicroVLM.from_pretrained(
        tmp_path / "checkpoint_final.pth", plugins, **{"llm.model": str(tiny_llm_path())}
    )
    assert not again.training
    for name, tensor in again.trainable_state_dict().items():
        assert torch.equal(tensor, weights[name]), name
    image = torch.randn(1, 3, 32, 32)
    assert again.generate({"image": image, "prompt": "Describe."}, max_new_tokens=4) == model.generate(
        {"image": image, "prompt": "Describe."}, max_new_tokens=4
    )


def test_public_api_is_lazy():
    import subprocess
    import sys

    code = "import sys, microvlm; assert 'torch' not in sys.modules; microvlm.MicroVLM; print('torch' in sys.modules)"
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "True"
    )
