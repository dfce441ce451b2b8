"""Opening a checkpoint never runs code shipped inside it (issue #13, item 1).

A checkpoint's ``model.toml`` may say ``trust_remote_code = true`` and its ``llm/config.json``
may carry an ``auto_map`` to a Python file in the checkpoint: loading ignores both unless the
user enables remote code themselves (``--set llm.trust_remote_code=true``), and then warns.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
import torch

from microvlm import load_plugins
from microvlm.errors import MicroVLMError
from microvlm.models.vlm import MicroVLM
from microvlm.recipes.load import build_model_config
from microvlm.testing.fixtures import tiny_llm_path
from microvlm.testing.toys import ToyPlugin

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import tomli_w

# Imported by transformers only if it runs the checkpoint's code: it leaves a marker file.
EVIL = """
import pathlib
pathlib.Path({marker!r}).write_text("code from the checkpoint ran")
from transformers import Qwen2Config, Qwen2ForCausalLM
class EvilConfig(Qwen2Config):
    model_type = "qwen2"
class EvilModel(Qwen2ForCausalLM):
    config_class = EvilConfig
"""


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(extra=[("toys", ToyPlugin())])


def hostile_checkpoint(plugins, where: Path, *, in_table: bool = True) -> tuple[Path, Path]:
    """A real save_pretrained export, then doctored as an attacker would; returns (dir, marker)."""
    section = {
        "encoder": {"name": "toy_encoder", "width": 16, "image_size": 32},
        "bridge": {"name": "qformer", "num_queries": 4, "num_layers": 1, "hidden_size": 32, "num_heads": 4},
        "llm": {"name": "hf_causal_lm", "model": str(tiny_llm_path())},
    }
    torch.manual_seed(0)
    model = MicroVLM.from_config(build_model_config(section, plugins), plugins)
    directory = model.save_pretrained(where / "export", weights="all")
    marker = where / "pwned.txt"
    (directory / "llm" / "evil.py").write_text(EVIL.format(marker=str(marker)))
    config = json.loads((directory / "llm" / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}
    (directory / "llm" / "config.json").write_text(json.dumps(config))
    table = tomllib.loads((directory / "model.toml").read_text())
    if in_table:
        table["model"]["llm"]["trust_remote_code"] = True
    (directory / "model.toml").write_text(tomli_w.dumps(table))
    return directory, marker


def test_a_checkpoint_cannot_turn_on_remote_code(tmp_path, plugins, caplog):
    directory, marker = hostile_checkpoint(plugins, tmp_path)
    with caplog.at_level(logging.WARNING, logger="microvlm"):
        model = MicroVLM.from_pretrained(directory, plugins)
    assert not marker.exists(), "loading a checkpoint ran code shipped inside it"
    assert model.config.llm.config.trust_remote_code is False
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "llm.trust_remote_code = True ignored" in said and "--set llm.trust_remote_code=true" in said


def test_auto_map_alone_runs_nothing(tmp_path, plugins):
    directory, marker = hostile_checkpoint(plugins, tmp_path, in_table=False)
    MicroVLM.from_pretrained(directory, plugins)
    assert not marker.exists()


def test_the_user_may_enable_it_explicitly_and_is_warned(tmp_path, plugins, caplog):
    directory, marker = hostile_checkpoint(plugins, tmp_path)
    with caplog.at_level(logging.WARNING, logger="microvlm"):
        MicroVLM.from_pretrained(directory, plugins, **{"llm.trust_remote_code": True})
    assert marker.exists()  # the user's explicit choice is honoured ...
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "trust_remote_code is on" in said and "runs Python code" in said  # ... and said loudly


def test_infer_on_a_hostile_checkpoint_runs_nothing(tmp_path, plugins):
    from click.testing import CliRunner
    from PIL import Image

    from microvlm.cli.app import build_cli

    directory, marker = hostile_checkpoint(plugins, tmp_path)
    image = tmp_path / "i.png"
    Image.new("RGB", (32, 32), "red").save(image)
    result = CliRunner().invoke(
        build_cli(plugins),
        [
            "infer",
            "--checkpoint",
            str(directory),
            "--image",
            str(image),
            "--prompt",
            "hi",
            "--max-new-tokens",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert not marker.exists()


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("[model]\n", "model.toml: the [model] table lacks encoder, bridge, llm"),
        ('model = "x"\n', "model.toml: not a [model] table"),
        ("\xff\xfe[", "model.toml: not"),
        ("[model\n", "model.toml: not a [model] table"),
    ],
)
def test_a_malformed_model_table_is_a_clear_error(tmp_path, plugins, text, said):
    from safetensors.torch import save_file

    save_file({"w": torch.ones(1)}, str(tmp_path / "model.safetensors"))
    (tmp_path / "model.toml").write_bytes(text.encode("latin-1"))
    with pytest.raises(MicroVLMError, match=said.replace("[", r"\[").replace("]", r"\]")):
        MicroVLM.from_pretrained(tmp_path, plugins)
