"""Label alignment and generation against from-scratch references on the tiny model."""

from __future__ import annotations

import pytest
import torch

from microvlm import load_plugins
from microvlm.data import Example, Segment
from microvlm.data.text import IGNORE, collate_text
from microvlm.models.vlm import MicroVLM
from microvlm.recipes.load import build_model_config
from microvlm.testing.fixtures import tiny_llm_path
from microvlm.testing.toys import ToyPlugin

SECTION = {
    "encoder": {"name": "toy_encoder", "width": 16, "image_size": 32},
    "bridge": {"name": "qformer", "num_queries": 4, "num_layers": 1, "hidden_size": 32, "num_heads": 4},
}
PAIRS = [
    ("Describe.", " a red square"),
    ("Question: how many shapes are there on the left of the image? Answer:", " two"),
]


@pytest.fixture(scope="module")
def model() -> MicroVLM:
    plugins = load_plugins(extra=[("toys", ToyPlugin())])
    section = {**SECTION, "llm": {"name": "hf_causal_lm", "model": str(tiny_llm_path())}}
    torch.manual_seed(0)
    vlm = MicroVLM.from_config(build_model_config(section, plugins), plugins).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # std 0.2 instead of 0.02: greedy answers of distinct tokens, not one repeated
        for p in vlm.llm.parameters():
            if p.ndim == 2:
                p.copy_(0.2 * torch.randn(p.shape, generator=generator))
    return vlm


def text_batch(model: MicroVLM, pairs: list[tuple[str, str]]):
    eos = model.tokenizer.eos_token
    examples = [Example((Segment(p), Segment(t + eos, target=True))) for p, t in pairs]
    return collate_text(examples, model.tokenizer, max_tokens=64)


def loss(model: MicroVLM, images: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor):
    with torch.no_grad():
        return model(images, ids, mask, labels)


def test_padding_token_ids_do_not_change_the_loss(model):
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    text = text_batch(model, PAIRS)
    padding = text.attention_mask == 0
    assert padding.any() and (text.labels[padding] == IGNORE).all()
    scrambled = text.input_ids.clone()
    scrambled[padding] = torch.randint(0, model.llm.vocab_size, (int(padding.sum()),))
    reference = loss(model, images, text.input_ids, text.attention_mask, text.labels)
    changed = loss(model, images, scrambled, text.attention_mask, text.labels)
    torch.testing.assert_close(changed.loss, reference.loss, rtol=0, atol=1e-6)


def test_the_loss_averages_target_tokens_only(model):
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    both = text_batch(model, PAIRS)
    batch_loss = loss(model, images, both.input_ids, both.attention_mask, both.labels)
    parts = []
    for i, pair in enumerate(PAIRS):
        one = text_batch(model, [pair])
        parts.append(loss(model, images[i : i + 1], one.input_ids, one.attention_mask, one.labels))
    # Each sample weighs by its target tokens; its (very different) prompt length counts for nothing.
    counts = [p.num_target_tokens for p in parts]
    assert batch_loss.num_target_tokens == sum(counts) == both.num_target_tokens
    expected = sum(p.loss * n for p, n in zip(parts, counts, strict=True)) / sum(counts)
    torch.testing.assert_close(batch_loss.loss, expected, rtol=1e-5, atol=1e-6)


def test_prompt_tokens_condition_the_target_but_carry_no_label(model):
    images = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    text = text_batch(model, PAIRS[:1])
    prompt = (text.labels == IGNORE) & (text.attention_mask == 1)
    assert prompt.sum() >= 2
    other = text.input_ids.clone()
    other[prompt] = model.tokenizer("What colour?", add_special_tokens=False)["input_ids"][0]
    a = loss(model, images, text.input_ids, text.attention_mask, text.labels)
    b = loss(model, images, other, text.attention_mask, text.labels)
    assert a.num_target_tokens == b.num_target_tokens  # same labelled positions
    assert not torch.allclose(a.loss, b.loss)  # the target is predicted from the prompt


def greedy_without_cache(model: MicroVLM, image: torch.Tensor, prompt: str, max_new_tokens: int) -> list[int]:
    """Recompute the whole sequence for every new token and take the argmax: no KV cache."""
    tok = model.tokenizer
    with torch.no_grad():
        image_tokens, _ = model.image_embeddings(image)  # (1, Q, D_l)
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        new: list[int] = []
        for _ in range(max_new_tokens):
            text = model.llm.embed(torch.tensor([ids + new]))  # (1, T, D_l)
            embeds = torch.cat([image_tokens, text], dim=1)  # (1, Q+T, D_l)
            mask = torch.ones(embeds.shape[:2], dtype=torch.long)
            hidden = model.llm.hidden_states(embeds, mask).hidden_states  # (1, Q+T, D_l)
            token = int(model.llm.lm_head(hidden[:, -1]).argmax(-1))
            if token == tok.eos_token_id:
                break
            new.append(token)
    return new


@pytest.mark.parametrize("prompt", ["Describe.", "Question: what colour is the circle? Answer:"])
def test_greedy_generation_with_kv_cache_equals_recomputation(model, prompt):
    image = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    reference = greedy_without_cache(model, image, prompt, max_new_tokens=8)
    assert len(set(reference)) >= 3  # a test that could fail: several distinct tokens
    expected = model.tokenizer.decode(reference, skip_special_tokens=True).strip()
    [answer] = model.generate({"image": image, "prompt": prompt}, max_new_tokens=8)
    assert answer == expected
