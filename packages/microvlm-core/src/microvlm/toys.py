"""Toy components for tests and examples of how a plugin registers things.

``ToyPlugin`` registers one tiny config class per component kind under ``toy_*`` names.
Its factories return a :class:`Built` record instead of a model, which is all recipe,
registry and CLI tests need. Register it directly::

    plugins = load_plugins(extra=[("toys", ToyPlugin())])
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from microvlm.hookspecs import hookimpl
from microvlm.plugins import Register


@attrs.frozen
class ToyEncoderConfig:
    width: int = 8  # feature width D_v
    freeze: bool = True  # kept frozen
    image_size: int = 32  # input side, pixels


@attrs.frozen
class ToyBridgeConfig:
    num_queries: int = 4  # Q
    hidden_size: int = 16  # D_q
    norm: Literal["pre", "post"] = "pre"  # where the layer norms sit


@attrs.frozen
class ToyLLMConfig:
    model: str = "toy/llm"  # hub id or directory
    adapter: Literal["none", "lora", "qlora"] = "none"  # LLM adapter
    lora_r: int = 8  # LoRA rank


@attrs.frozen
class ToyDatasetConfig:
    root: str = "data/toy"  # dataset folder
    split: str = "train"  # train / val / test
    image_root: str = ""  # image folder when not under root


@attrs.frozen
class ToyTaskConfig:
    prompt: str = "Describe the image."  # prompt template


@attrs.frozen
class ToyQuantizerConfig:
    bits: int = 4  # weight bits


@attrs.frozen
class Built:
    """What a toy factory returns: its name, config and the context it was called with."""

    name: str
    config: Any
    context: dict[str, Any]


def _factory(name: str) -> Any:
    def build(config: Any, **context: Any) -> Built:
        return Built(name, config, context)

    return build


class ToyPlugin:
    """Registers ``toy_encoder``, ``toy_bridge``, ``toy_llm``, ``toy_dataset``, ``toy_task``,
    ``toy_quant``."""

    @hookimpl
    def register_encoders(self, register: Register) -> None:
        register("toy_encoder", _factory("toy_encoder"), ToyEncoderConfig, description="toy encoder")

    @hookimpl
    def register_bridges(self, register: Register) -> None:
        register("toy_bridge", _factory("toy_bridge"), ToyBridgeConfig, description="toy bridge")

    @hookimpl
    def register_llms(self, register: Register) -> None:
        register("toy_llm", _factory("toy_llm"), ToyLLMConfig, description="toy LLM")

    @hookimpl
    def register_datasets(self, register: Register) -> None:
        register("toy_dataset", _factory("toy_dataset"), ToyDatasetConfig, description="toy dataset")

    @hookimpl
    def register_tasks(self, register: Register) -> None:
        register("toy_task", _factory("toy_task"), ToyTaskConfig, description="toy task")

    @hookimpl
    def register_quantizers(self, register: Register) -> None:
        register("toy_quant", _factory("toy_quant"), ToyQuantizerConfig, description="toy quantizer")


#: A minimal valid recipe using the toys (TOML text).
TOY_RECIPE = """\
[run]
name = "toy"
output_dir = "output/toy"
lr = 1e-3

[model.encoder]
name = "toy_encoder"

[model.bridge]
name = "toy_bridge"

[model.llm]
name = "toy_llm"

[[data]]
dataset = "toy_dataset"
task = "toy_task"
"""
