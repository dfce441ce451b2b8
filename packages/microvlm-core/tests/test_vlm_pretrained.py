"""save_pretrained / from_pretrained / load_checkpoint: round trips, LoRA, tokenizer, misfits."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
import torch
from safetensors.torch import load_file

from microvlm import load_plugins
from microvlm.data import Example, Segment
from microvlm.data.text import collate_text
from microvlm.errors import MicroVLMError, RecipeError
from microvlm.models.vlm import MicroVLM
from microvlm.recipes.load import build_model_config
from microvlm.testing.fixtures import tiny_llm_path
from microvlm.testing.toys import ToyPlugin

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BRIDGE = {
    "name": "qformer",
    "num_queries": 4,
    "num_layers": 2,
    "hidden_size": 32,
    "num_heads": 4,
    "dropout": 0.0,
}
PROMPT = "Describe."


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(extra=[("toys", ToyPlugin())])


def build(plugins, llm: str, seed: int = 0, adapter: str = "lora", **bridge) -> MicroVLM:
    section = {
        "encoder": {"name": "toy_encoder", "width": 16, "image_size": 32},
        "bridge": {**BRIDGE, **bridge},
        "llm": {"name": "hf_causal_lm", "model": llm, "adapter": adapter, "lora_r": 4, "lora_dropout": 0.0},
    }
    torch.manual_seed(seed)
    model = MicroVLM.from_config(build_model_config(section, plugins), plugins)
    model.set_trainable(["bridge", "projection", "lora"] if adapter != "none" else ["bridge", "projection"])
    return model.eval()


def perturb(model: MicroVLM, everything: bool = False) -> None:
    """Move weights away from their initial values (LoRA's B starts at zero)."""
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            if everything or p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=generator))


def outputs(model: MicroVLM) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Loss, labelled hidden states and greedy answers on a fixed batch."""
    tok = model.tokenizer
    examples = [
        Example((Segment(PROMPT), Segment(" a red square" + tok.eos_token, target=True))),
        Example((Segment("What colour is the shape?"), Segment(" blue" + tok.eos_token, target=True))),
    ]
    text = collate_text(examples, tok, max_tokens=32)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = model(images, text.input_ids, text.attention_mask, text.labels, return_hidden=True)
    answers = model.generate({"image": images, "prompt": [PROMPT, "What colour?"]}, max_new_tokens=6)
    return out.loss, out.hidden_states, answers


def assert_same_outputs(a: MicroVLM, b: MicroVLM) -> None:
    loss_a, hidden_a, text_a = outputs(a)
    loss_b, hidden_b, text_b = outputs(b)
    torch.testing.assert_close(hidden_b, hidden_a, rtol=0, atol=0)
    torch.testing.assert_close(loss_b, loss_a, rtol=0, atol=0)
    assert text_b == text_a


def test_trainable_round_trip_gives_identical_outputs(plugins, tmp_path):
    model = build(plugins, str(tiny_llm_path()))
    perturb(model)
    directory = model.save_pretrained(tmp_path / "export")
    names = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())
    for expected in ("model.toml", "model.safetensors", "trainer.json", "adapter_model.safetensors"):
        assert expected in names
    for expected in ("adapter_config.json", "llm/config.json", "llm/tokenizer.json"):
        assert expected in names
    assert set(load_file(str(directory / "model.safetensors"))) == set(model.trainable_state_dict())
    assert json.loads((directory / "trainer.json").read_text())["weights"] == "trainable"
    # The frozen toy encoder is random: the same seed rebuilds it (a real base comes from its file).
    torch.manual_seed(0)
    again = MicroVLM.from_pretrained(directory, plugins)
    assert not again.training
    assert_same_outputs(model, again)


def test_all_weights_round_trip_needs_no_base_weights(plugins, tmp_path):
    base = shutil.copytree(tiny_llm_path(), tmp_path / "base-llm")
    model = build(plugins, str(base))
    perturb(model, everything=True)  # the frozen encoder and LLM base too: only the file has them
    directory = model.save_pretrained(tmp_path / "export", weights="all")
    shutil.rmtree(base)
    table = tomllib.loads((directory / "model.toml").read_text())["model"]
    assert table["llm"]["init"] == "random"
    meta = json.loads((directory / "trainer.json").read_text())
    assert meta["weights"] == "all" and meta["replaced"]["llm.init"] == "pretrained"

    torch.manual_seed(123)  # any seed: every tensor comes from the file
    again = MicroVLM.from_pretrained(directory, plugins)
    assert again.config.llm.config.model == str(directory / "llm")
    mine, theirs = model.state_dict(), again.state_dict()
    assert set(mine) == set(theirs)
    for name, tensor in mine.items():
        assert torch.equal(tensor, theirs[name]), name
    assert_same_outputs(model, again)


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_lora_weights_survive_and_load_with_peft(plugins, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = build(plugins, str(tiny_llm_path()))
    perturb(model)
    lora = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    assert lora and all(t.abs().sum() > 0 for t in lora.values())
    directory = model.save_pretrained(tmp_path / "export")
    torch.manual_seed(0)
    again = MicroVLM.from_pretrained(directory, plugins)
    loaded = dict(again.named_parameters())
    for name, tensor in lora.items():
        assert torch.equal(loaded[name], tensor), name
    # adapter_model.safetensors + adapter_config.json are a peft adapter on their own.
    peft_model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(str(tiny_llm_path())), directory
    )
    ids = model.tokenizer("a green star", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = model.llm.lm_head(model.llm.hidden_states(model.llm.embed(ids)).hidden_states)
        torch.testing.assert_close(peft_model.eval()(input_ids=ids).logits, expected)


def test_the_tokenizer_travels_with_the_export(plugins, tmp_path):
    model = build(plugins, str(tiny_llm_path()), adapter="none")
    directory = model.save_pretrained(tmp_path / "export")
    torch.manual_seed(0)
    again = MicroVLM.from_pretrained(directory, plugins)
    assert again.config.llm.config.tokenizer == str(directory / "llm")
    text = "<|im_start|>user\nWhat colour is the circle?<|im_end|>"
    assert again.tokenizer(text)["input_ids"] == model.tokenizer(text)["input_ids"]
    assert again.tokenizer.pad_token_id == model.tokenizer.pad_token_id
    assert again.llm.chat_template == model.llm.chat_template
    assert not (directory / "adapter_model.safetensors").exists()  # no adapter, no adapter file


def test_another_architecture_fails_naming_the_keys(plugins, tmp_path):
    model = build(plugins, str(tiny_llm_path()))
    trainable = model.save_pretrained(tmp_path / "trainable")
    everything = model.save_pretrained(tmp_path / "all", weights="all")

    with pytest.raises(MicroVLMError) as fewer_layers:
        MicroVLM.from_pretrained(trainable, plugins, **{"bridge.num_layers": 1})
    message = str(fewer_layers.value)
    assert "not in this model" in message and "bridge.layers.1." in message

    with pytest.raises(MicroVLMError, match=r"missing from the file: .*bridge\.layers\.2\."):
        MicroVLM.from_pretrained(everything, plugins, **{"bridge.num_layers": 3})

    wider = build(plugins, str(tiny_llm_path()), hidden_size=64)
    before = {n: p.detach().clone() for n, p in wider.named_parameters()}
    with pytest.raises(MicroVLMError) as reshaped:
        wider.load_checkpoint(trainable)
    message = str(reshaped.value)
    assert "of another shape" in message
    assert "bridge.layers.0.cross_attn.kv_proj.bias (64,) vs (128,)" in message
    assert "(+40 more; by part: bridge 47, projection 1)" in message  # fc1.weight [D_l, D_q]
    after = dict(wider.named_parameters())
    assert all(torch.equal(after[n], t) for n, t in before.items())  # nothing was half-loaded


def test_load_checkpoint_takes_an_export_with_all_weights(plugins, tmp_path):
    model = build(plugins, str(tiny_llm_path()))
    perturb(model, everything=True)
    directory = model.save_pretrained(tmp_path / "all", weights="all")
    other = build(plugins, str(tiny_llm_path()), seed=5)
    assert other.load_checkpoint(f"{directory}.pth") == len(load_file(str(directory / "model.safetensors")))
    assert_same_outputs(model, other)


def test_save_replaces_an_export_but_not_other_folders(plugins, tmp_path):
    model = build(plugins, str(tiny_llm_path()), adapter="none")
    directory = model.save_pretrained(tmp_path / "export")
    model.save_pretrained(directory, weights="all")  # a previous export is replaced
    assert json.loads((directory / "trainer.json").read_text())["weights"] == "all"
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(MicroVLMError, match="holds other files"):
        model.save_pretrained(precious)
    assert (precious / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="trainable"):
        model.save_pretrained(tmp_path / "x", weights="some")


def test_a_failed_save_leaves_the_previous_export_intact(plugins, tmp_path, monkeypatch):
    model = build(plugins, str(tiny_llm_path()), adapter="none")
    directory = model.save_pretrained(tmp_path / "export")
    before = (directory / "model.safetensors").read_bytes()
    perturb(model)

    def fail(*_, **__):
        raise OSError("disk full")

    monkeypatch.setattr(model.tokenizer, "save_pretrained", fail)
    with pytest.raises(OSError, match="disk full"):
        model.save_pretrained(directory)
    assert (directory / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no temporary folder left


def test_constructor_options_set_model_values(plugins):
    model = MicroVLM(
        vision_encoder="toy_encoder",
        llm_model=str(tiny_llm_path()),
        use_lora=True,
        lora_r=4,
        plugins=plugins,
        options={"bridge.num_layers": 1, "bridge.hidden_size": 32, "bridge.num_heads": 4},
    )
    assert (model.config.bridge.config.num_layers, model.config.bridge.config.hidden_size) == (1, 32)
    assert model.config.llm.config.adapter == "lora" and model.config.llm.config.lora_r == 4
    assert len(model.bridge.layers) == 1
    changed = MicroVLM(config=model.config, plugins=plugins, options={"llm.lora_r": 2})
    assert changed.config.llm.config.lora_r == 2 and changed.config.bridge == model.config.bridge
    with pytest.raises(RecipeError, match="num_layerz"):
        MicroVLM(
            vision_encoder="toy_encoder", llm_model="x/y", plugins=plugins, options={"bridge.num_layerz": 1}
        )
