"""``microvlm export`` end to end through a third-party exporter found by its entry point (#16).

The fixture package ``tests/plugins/microvlm-toy-exporter`` registers ``toy_fp32``; the export
must then run like a checkpoint (``infer``, ``from_pretrained``) and give the same answers.
"""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from microvlm import load_plugins
from microvlm.cli import build_cli
from microvlm.models.vlm import MicroVLM
from microvlm.recipes.load import build_model_config
from microvlm.testing.fixtures import tiny_llm_path
from microvlm.testing.toys import ToyPlugin

SECTION = {
    "encoder": {"name": "toy_encoder", "width": 16, "image_size": 32},
    "bridge": {"name": "qformer", "num_queries": 4, "num_layers": 1, "hidden_size": 32, "num_heads": 4},
    "llm": {"name": "hf_causal_lm", "model": "", "adapter": "lora", "lora_r": 4},
}


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(extra=[("toys", ToyPlugin())])


@pytest.fixture(scope="module")
def checkpoint(plugins, tmp_path_factory):
    section = json.loads(json.dumps(SECTION))
    section["llm"]["model"] = str(tiny_llm_path())
    torch.manual_seed(0)
    model = MicroVLM.from_config(build_model_config(section, plugins), plugins)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_()  # a LoRA that changes the answers
    # weights="all": the toy encoder is frozen and has no pretrained source to reload from
    return model.save_pretrained(tmp_path_factory.mktemp("ckpt") / "checkpoint_final", weights="all")


def _run(plugins, *args: str):
    return CliRunner().invoke(build_cli(plugins), list(args), catch_exceptions=False)


def _answer(model: MicroVLM) -> str:
    torch.manual_seed(0)
    image = torch.rand(1, 3, 32, 32)
    return model.generate({"image": image, "prompt": "Describe."}, max_new_tokens=6)[0]


def test_a_third_party_exporter_exports_and_the_export_runs(plugins, checkpoint, tmp_path):
    assert plugins.get("exporter", "toy_fp32").distribution == "microvlm-toy-exporter"
    out = tmp_path / "exported_models"
    result = _run(
        plugins, "export", "--checkpoint", str(checkpoint), "--output-dir", str(out), "--format", "toy_fp32"
    )
    assert result.exit_code == 0, result.output
    target = out / "toy_fp32"
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["exporter"] == "toy_fp32" and manifest["exporter_distribution"] == "microvlm-toy-exporter"
    assert manifest["source"]["path"] == str(checkpoint)
    assert "toy_fp32" in result.output and "folder" in result.output  # the summary table

    source = MicroVLM.from_pretrained(checkpoint, plugins)
    exported = MicroVLM.from_pretrained(target, plugins)
    assert _answer(exported) == _answer(source)

    image = tmp_path / "image.png"
    Image.new("RGB", (32, 32), (200, 10, 10)).save(image)
    asked = ("infer", "--image", str(image), "--prompt", "Describe.", "--max-new-tokens", "4")
    from_export = _run(plugins, *asked, "--checkpoint", str(target))
    from_source = _run(plugins, *asked, "--checkpoint", str(checkpoint))
    assert from_export.exit_code == 0, from_export.output
    assert from_export.stdout == from_source.stdout


def test_export_refusals_say_what_to_do(plugins, checkpoint, tmp_path):
    out = tmp_path / "out"
    first = _run(
        plugins, "export", "--checkpoint", str(checkpoint), "--output", str(out), "--format", "toy_fp32"
    )
    assert first.exit_code == 0, first.output
    again = _run(
        plugins, "export", "--checkpoint", str(checkpoint), "--output", str(out), "--format", "toy_fp32"
    )
    assert again.exit_code != 0 and "pass --overwrite" in again.output
    of_export = _run(
        plugins, "export", "--checkpoint", str(out), "--output", str(tmp_path / "x"), "--format", "toy_fp32"
    )
    assert of_export.exit_code != 0 and "already an export" in of_export.output
    both = _run(plugins, "export", "--checkpoint", str(checkpoint), "--8bit", "--1_58bit")
    assert both.exit_code != 0 and "choose one export format" in both.output
    unknown = _run(plugins, "export", "--checkpoint", str(checkpoint), "--format", "nonesuch")
    assert (
        unknown.exit_code != 0
        and "unknown exporter 'nonesuch'" in unknown.output
        and "toy_fp32" in unknown.output
    )
    pth = _run(
        plugins,
        "export",
        "--checkpoint",
        str(tmp_path / "missing" / "checkpoint_final.pth"),
        "--format",
        "toy_fp32",
    )
    assert pth.exit_code != 0 and "checkpoints are folders now" in pth.output
    assert "Traceback" not in pth.output + unknown.output + both.output


def test_the_seed_spelling_is_in_help(plugins):
    result = _run(plugins, "--help")
    assert "export_model.py" in result.output and "microvlm export" in result.output
    assert "--1_58bit" in _run(plugins, "export", "--help").output


@pytest.fixture(scope="module")
def trained(plugins, tmp_path_factory):
    """A run's checkpoint_final (its trainer.json names the training recipe)."""
    from microvlm.recipes.load import load_recipe
    from microvlm.testing.toys import toy_training_recipe
    from microvlm.train import run

    folder = tmp_path_factory.mktemp("run")
    recipe = folder / "toy.toml"
    recipe.write_text(toy_training_recipe(str(folder / "out"), str(tiny_llm_path()), max_steps=2))
    return run(load_recipe(recipe, plugins), plugins, progress=False)


@pytest.mark.parametrize("flag", [("--format", "toy_fp32"), ("--8bit",), ("--1_58bit",), ()])
def test_eval_runs_on_an_export_with_the_training_recipe(plugins, trained, tmp_path, flag):
    """#16: `microvlm eval --checkpoint EXPORT` finds its data through the manifest, as for a checkpoint."""
    out = tmp_path / "export"
    made = _run(plugins, "export", "--checkpoint", str(trained), "--output", str(out), *flag)
    assert made.exit_code == 0, made.output
    scored = {}
    for where in (trained, out):
        metrics = tmp_path / f"metrics-{where.name}"
        args = (
            "eval",
            "--checkpoint",
            str(where),
            "--tasks",
            "toy_task",
            "--limit",
            "3",
            "--output-dir",
            str(metrics),
        )
        result = _run(plugins, *args)
        assert result.exit_code == 0, result.output
        scored[where] = json.loads((metrics / "metrics.json").read_text())["toy_dataset/toy_task"]
    assert scored[out]["samples"] == scored[trained]["samples"] == 3
    if flag == ("--format", "toy_fp32"):  # float32 as trained: the same predictions
        assert scored[out] == scored[trained]
