"""microvlm-core's own components, registered through the ``microvlm`` entry point like any
third-party plugin: the Q-Former bridge, the transformers language model, and the metric sinks.

This module sits at the top of core (it names components from every layer) and imports only
their light config classes; each factory imports its heavy module (torch, transformers) when a
component is built, so plugin discovery and ``microvlm --help`` stay fast.
"""

from __future__ import annotations

from typing import Any

from microvlm.contracts.hookspecs import Register, hookimpl
from microvlm.loggers.sinks import ConsoleLogger, ConsoleLoggerConfig, JsonlLogger, JsonlLoggerConfig
from microvlm.loggers.wandb_sink import WandbLogger, WandbLoggerConfig
from microvlm.models.llm.config import HFCausalLMConfig
from microvlm.models.qformer_config import QFormerConfig


def build_qformer(config: QFormerConfig, **context: Any) -> Any:
    """``factory(config, encoder_dim=D_v)`` -> :class:`microvlm.models.qformer.QFormer`."""
    from microvlm.models.qformer import build_qformer as build

    return build(config, **context)


def build_hf_causal_lm(config: HFCausalLMConfig, **context: Any) -> Any:
    """``factory(config, plugins=...)`` -> :class:`microvlm.models.llm.model.LanguageModel`."""
    from microvlm.models.llm.hf import build_hf_causal_lm as build

    return build(config, **context)


@hookimpl
def register_bridges(register: Register) -> None:
    register("qformer", build_qformer, QFormerConfig, description="Q-Former (BLIP-2): learned queries, 768-d")


@hookimpl
def register_llms(register: Register) -> None:
    register(
        "hf_causal_lm",
        build_hf_causal_lm,
        HFCausalLMConfig,
        description="transformers causal LM (default Qwen2.5-0.5B), LoRA/QLoRA via peft",
    )


@hookimpl
def register_loggers(register: Register) -> None:
    register("console", ConsoleLogger, ConsoleLoggerConfig, description="metric lines through logging")
    register("jsonl", JsonlLogger, JsonlLoggerConfig, description="metrics.jsonl in the run folder")
    register("wandb", WandbLogger, WandbLoggerConfig, description="Weights & Biases (the [wandb] extra)")
