"""microvlm-core's built-in plugins, registered through the ``microvlm`` entry point like
any third-party plugin. Heavy imports happen inside the factories."""

from __future__ import annotations

from microvlm.hookspecs import hookimpl
from microvlm.llm.config import HFCausalLMConfig, build_hf_causal_lm
from microvlm.loggers import ConsoleLogger, ConsoleLoggerConfig, JsonlLogger, JsonlLoggerConfig
from microvlm.models.qformer_config import QFormerConfig, build_qformer
from microvlm.plugins import Register
from microvlm.wandb_logger import WandbLogger, WandbLoggerConfig


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
