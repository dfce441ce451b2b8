"""Quantisation-aware training (#16 item 5): a ``[qat]`` stage with the runner's resume and loggers.

The scheme is microvlm-quant's ``bitnet158``; the model is the toy encoder, a 1-layer Q-Former
and the tiny Qwen2 (:func:`microvlm.testing.fixtures.tiny_llm_path`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from microvlm import load_plugins
from microvlm.models.vlm import MicroVLM
from microvlm.recipes.load import load_recipe
from microvlm.testing.fixtures import tiny_llm_path
from microvlm.testing.toys import ToyPlugin, run_until_checkpoint, toy_training_recipe
from microvlm.train import run

pytest.importorskip("microvlm_quant")

QAT = '\n[qat]\nname = "bitnet158"\nwarmup_steps = 4\n'


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(extra=[("toys", ToyPlugin())])


def _lora_checkpoint(plugins, tmp_path: Path) -> Path:
    """A stage trained with LoRA, as stage 4 is, to start QAT from."""
    text = toy_training_recipe(
        str(tmp_path / "lora"), str(tiny_llm_path()), max_steps=2, train=["bridge", "projection", "lora"]
    )
    text = text.replace(
        '[model.llm]\nname = "hf_causal_lm"\n',
        '[model.llm]\nname = "hf_causal_lm"\nadapter = "lora"\nlora_r = 4\n',
    )
    recipe = tmp_path / "lora.toml"
    recipe.write_text(text)
    return run(load_recipe(recipe, plugins), plugins, progress=False)


def _qat_recipe(plugins, tmp_path: Path, out: str, init_from: Path) -> object:
    text = toy_training_recipe(
        str(tmp_path / out),
        str(tiny_llm_path()),
        max_steps=6,
        save_every=3,
        train=["bridge", "projection", "llm"],
        init_from=str(init_from),
    )
    text = text.replace(
        '[model.llm]\nname = "hf_causal_lm"\n',
        '[model.llm]\nname = "hf_causal_lm"\nadapter = "lora"\nlora_r = 4\n',
    )
    path = tmp_path / f"{out}.toml"
    path.write_text(text + QAT)
    return load_recipe(path, plugins)


def test_a_qat_stage_merges_lora_phases_quantisation_in_and_resumes_exactly(plugins, tmp_path):
    start = _lora_checkpoint(plugins, tmp_path)
    final = run(_qat_recipe(plugins, tmp_path, "qat", start), plugins, progress=False)

    rows = [json.loads(line) for line in (final.parent / "metrics.jsonl").read_text().splitlines()]
    lam = [(r["step"], r["qat/lambda"]) for r in rows if "qat/lambda" in r]
    assert [s for s, _ in lam] == [1, 2, 3, 4, 5, 6]
    assert [v for _, v in lam] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]  # step s trains at (s - 1) / 4

    table = (final / "model.toml").read_text()
    assert 'adapter = "none"' in table  # the LoRA was merged into the base
    weights = load_file(str(final / "model.safetensors"))
    assert not [n for n in weights if "lora_" in n]
    assert any(n.endswith("q_proj.weight") for n in weights)  # the shadow weights trained
    loaded = MicroVLM.from_pretrained(final, plugins)
    assert loaded.llm.config.adapter == "none"

    # the same stage killed after its step-3 checkpoint and run again ends bit for bit the same
    again = _qat_recipe(plugins, tmp_path, "qat_resumed", start)
    run_until_checkpoint(again, plugins, step=3)
    resumed = run(again, plugins, progress=False)
    other = load_file(str(resumed / "model.safetensors"))
    assert weights.keys() == other.keys()
    assert all(torch.equal(weights[k], other[k]) for k in weights)


def test_qat_prepare_keeps_the_function_at_lambda_zero(plugins):
    """Merging LoRA and swapping in BitLinearQAT at lam = 0 leave the model's output as it was."""
    from microvlm.recipes.load import build_model_config
    from microvlm_quant.bitlinear import BitLinearQAT
    from microvlm_quant.qat import BitNetQAT, BitNetQATConfig

    section = {
        "encoder": {"name": "toy_encoder", "width": 16, "image_size": 32},
        "bridge": {"name": "qformer", "num_queries": 4, "num_layers": 1, "hidden_size": 32, "num_heads": 4},
        "llm": {"name": "hf_causal_lm", "model": str(tiny_llm_path()), "adapter": "lora", "lora_r": 4},
    }
    torch.manual_seed(0)
    model = MicroVLM.from_config(build_model_config(section, plugins), plugins).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)
    images, ids = torch.rand(2, 3, 32, 32), torch.randint(3, 50, (2, 7))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        before = model.text_predictors(images, ids, mask)
        scheme = BitNetQAT(BitNetQATConfig())
        swapped = scheme.prepare(model)
        after = model.text_predictors(images, ids, mask)
    layers = [m for m in model.llm.base_model.modules() if isinstance(m, BitLinearQAT)]
    assert swapped == len(layers) > 0 and not [n for n, _ in model.named_parameters() if "lora_" in n]
    assert model.config.llm.config.adapter == "none"
    scale = before.abs().max().item()
    assert (after - before).abs().max().item() <= 1e-5 * max(scale, 1.0)  # float32 rounding of the merge
    scheme.finish(model)
    with torch.no_grad():
        quantised = model.text_predictors(images, ids, mask)
    assert not torch.allclose(quantised, before)  # lam = 1 really quantises
