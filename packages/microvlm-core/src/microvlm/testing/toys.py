"""Toy components for tests and examples of how a plugin registers things.

``ToyPlugin`` registers one tiny config class per component kind under ``toy_*`` names.
``toy_encoder``, ``toy_dataset`` and ``toy_task`` are real (tiny) components that core's
trainer tests run on. ``toy_bridge`` (one attention layer), ``toy_llm`` (the tiny test LLM of
:func:`microvlm.testing.fixtures.tiny_llm_path` through ``hf_causal_lm``) and ``toy_quant`` (a
quantizer that changes nothing) are real too, so every toy passes the conformance kit
(:mod:`microvlm.testing.conformance`). Register it directly::

    plugins = load_plugins(extra=[("toys", ToyPlugin())])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal

import attrs

from microvlm.contracts.data import TaskSummary, default_summary
from microvlm.contracts.hookspecs import hookimpl
from microvlm.plugins.manager import Register


@attrs.frozen
class ToyEncoderConfig:
    width: int = 8  # feature width D_v
    freeze: bool = True  # no gradients into the encoder
    image_size: int = 32  # input side, pixels
    patch: int = 8  # patch side, pixels: N = (image_size / patch)^2


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
    root: str = "data/toy"  # dataset folder (unused: images are drawn in memory)
    split: str = "train"  # train / val / test
    image_root: str = ""  # image folder when not under root (unused)
    n: int = 8  # number of samples
    image_size: int = 32  # side of the images, pixels


@attrs.frozen
class ToyTaskConfig:
    prompt: str = "Describe the image."  # prompt before the caption


@attrs.frozen
class ToyQuantizerConfig:
    bits: int = 4  # weight bits


def build_toy_encoder(config: ToyEncoderConfig, **_: Any) -> Any:
    """A real (tiny) encoder: a strided convolution, images [B,3,H,W] -> [B, N, width]."""
    import torch
    from torch import nn

    class ToyEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Conv2d(3, config.width, config.patch, stride=config.patch)
            self.out_dim = config.width
            self.data_config = {
                "input_size": (3, config.image_size, config.image_size),
                "mean": (0.5, 0.5, 0.5),
                "std": (0.5, 0.5, 0.5),
                "interpolation": "bilinear",
                "crop_pct": 1.0,
            }
            side = config.image_size // config.patch
            self.patch_grid = (side, side)  # N = rows * cols patch tokens, no prefix tokens
            if config.freeze:
                self.requires_grad_(False)

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            x = self.proj(images)  # (B, D_v, H/p, W/p)
            return x.flatten(2).transpose(1, 2)  # (B, N, D_v)

    return ToyEncoder()


COLOURS = (
    ("red", (220, 20, 20)),
    ("green", (20, 200, 20)),
    ("blue", (20, 20, 220)),
    ("yellow", (230, 230, 20)),
)


class ToyDataset:
    """Plain-coloured squares captioned with their colour; sample ``i`` has colour ``i % 4``."""

    skipped: Mapping[str, int] = MappingProxyType({})  # nothing is ever left out
    skipped_examples: Mapping[str, Sequence[str]] = MappingProxyType({})
    records_read = 0  # no annotation file: the samples are drawn in memory

    def __init__(self, config: ToyDatasetConfig, **_: Any) -> None:
        self.config = config

    def __len__(self) -> int:
        return self.config.n

    def __getitem__(self, index: int) -> Any:
        import io

        from PIL import Image

        from microvlm.data import ImageRef, Sample

        if not -self.config.n <= index < self.config.n:
            raise IndexError(f"toy_dataset has {self.config.n} samples, no index {index}")
        index %= self.config.n
        side = self.config.image_size
        name, rgb = COLOURS[index % len(COLOURS)]
        buffer = io.BytesIO()
        Image.new("RGB", (side, side), rgb).save(buffer, format="PNG")
        return Sample(
            str(index),
            ImageRef(data=buffer.getvalue(), size=(side, side)),
            "toy_dataset",
            captions=(f"a {name} square",),
        )

    def __iter__(self) -> Any:
        return (self[i] for i in range(self.config.n))


class ToyTask:
    """``[prompt][" " + caption + eos]``, the caption being the target."""

    name = "toy_task"
    max_new_tokens = 8

    def __init__(self, config: ToyTaskConfig, **_: Any) -> None:
        self.config = config

    def example(self, sample: Any, rng: Any, tokenizer: Any = None) -> Any:
        from microvlm.data import Example, Segment

        eos = (getattr(tokenizer, "eos_token", None) or "") if tokenizer is not None else ""
        caption = rng.choice(sample.captions)
        return Example((Segment(self.config.prompt), Segment(" " + caption + eos, target=True)))

    def eval_prompt(self, sample: Any, tokenizer: Any = None) -> str:
        return self.config.prompt

    def references(self, sample: Any) -> list[str]:
        return list(sample.captions)

    def score(self, predictions: Any, samples: Any) -> dict[str, float]:
        hits = [p.strip() in s.captions for p, s in zip(predictions, samples, strict=True)]
        return {"exact_match": sum(hits) / max(len(hits), 1)}

    def per_sample(self, predictions: Any, samples: Any) -> list[dict[str, Any]]:
        return [
            {"id": s.id, "prediction": p, "references": list(s.captions)}
            for p, s in zip(predictions, samples, strict=True)
        ]

    def summarize(self, metrics: Mapping[str, Any]) -> TaskSummary:
        return default_summary(metrics)

    def training_samples(self, samples: Sequence[Any]) -> Sequence[Any]:
        return samples


def build_toy_bridge(config: ToyBridgeConfig, *, encoder_dim: int, **_: Any) -> Any:
    """A real (tiny) bridge: ``num_queries`` learned queries, one single-head attention over the
    encoder tokens, ``[B, N, D_v]`` -> ``[B, Q, hidden_size]``."""
    import torch
    from torch import nn

    @attrs.frozen
    class ToyBridgeOutput:
        queries: torch.Tensor  # [B, Q, D_q]
        cross_attentions: list[torch.Tensor] | None  # [[B, 1, Q, N]] when asked

    class ToyBridge(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.out_dim = config.hidden_size
            self.num_queries = config.num_queries
            self.query = nn.Parameter(torch.randn(config.num_queries, config.hidden_size) * 0.02)
            self.key = nn.Linear(encoder_dim, config.hidden_size)
            self.value = nn.Linear(encoder_dim, config.hidden_size)
            self.norm = nn.LayerNorm(config.hidden_size)

        def forward(self, features: torch.Tensor, return_attentions: bool = False) -> ToyBridgeOutput:
            k, v = self.key(features), self.value(features)  # (B, N, D_q) each
            scores = self.query @ k.transpose(1, 2) / math.sqrt(self.out_dim)  # (B, Q, N)
            weights = scores.softmax(dim=-1)
            queries = weights @ v  # (B, Q, N) @ (B, N, D_q) -> (B, Q, D_q)
            queries = self.norm(queries) if config.norm == "post" else queries
            maps = [weights.unsqueeze(1)] if return_attentions else None  # [(B, 1, Q, N)]
            return ToyBridgeOutput(queries, maps)

    return ToyBridge()


def build_toy_llm(config: ToyLLMConfig, **context: Any) -> Any:
    """``hf_causal_lm`` on ``config.model``; the default ``"toy/llm"`` is the tiny test LLM."""
    from microvlm.models.llm.config import HFCausalLMConfig
    from microvlm.models.llm.hf import build_hf_causal_lm
    from microvlm.testing.fixtures import tiny_llm_path

    model = str(tiny_llm_path()) if config.model == "toy/llm" else config.model
    hf = HFCausalLMConfig(model=model, adapter=config.adapter, lora_r=config.lora_r)
    return build_hf_causal_lm(hf, **context)


class ToyQuantizer:
    """A quantizer that changes nothing and says how many bytes ``bits``-bit weights would take."""

    def __init__(self, config: ToyQuantizerConfig, **_: Any) -> None:
        self.config = config

    def quantization_config(self, compute_dtype: Any = None) -> None:
        return None  # from_pretrained loads as usual

    def quantize_model(self, model: Any, *, compute_dtype: Any = None) -> Any:
        return model

    def describe(self) -> dict[str, Any]:
        return {"name": "toy_quant", "bits": self.config.bits}

    def storage_bytes(self, parameters: int) -> int:
        return math.ceil(parameters * self.config.bits / 8)


class ToyPlugin:
    """Registers ``toy_encoder``, ``toy_bridge``, ``toy_llm``, ``toy_dataset``, ``toy_task``,
    ``toy_quant``."""

    @hookimpl
    def register_encoders(self, register: Register) -> None:
        register("toy_encoder", build_toy_encoder, ToyEncoderConfig, description="toy conv patch encoder")

    @hookimpl
    def register_bridges(self, register: Register) -> None:
        register("toy_bridge", build_toy_bridge, ToyBridgeConfig, description="toy bridge")

    @hookimpl
    def register_llms(self, register: Register) -> None:
        register("toy_llm", build_toy_llm, ToyLLMConfig, description="toy LLM")

    @hookimpl
    def register_datasets(self, register: Register) -> None:
        register("toy_dataset", ToyDataset, ToyDatasetConfig, description="toy coloured squares")

    @hookimpl
    def register_tasks(self, register: Register) -> None:
        register("toy_task", ToyTask, ToyTaskConfig, description="toy captioning task")

    @hookimpl
    def register_quantizers(self, register: Register) -> None:
        register("toy_quant", ToyQuantizer, ToyQuantizerConfig, description="toy quantizer")


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


def toy_training_recipe(output_dir: str, llm: str, **run: Any) -> str:
    """A complete, trainable toy recipe (TOML text): toy encoder, a 1-layer Q-Former, the
    LLM directory ``llm`` (e.g. :func:`microvlm.testing.fixtures.tiny_llm_path`), toy data.
    ``run`` overrides ``[run]`` keys."""
    import json

    from microvlm.testing.fixtures import TINY_QFORMER_TOML

    settings = {
        "name": "toy",
        "output_dir": output_dir,
        "batch_size": 4,
        "lr": 3e-3,
        "warmup_steps": 2,
        "epochs": 6,
        "log_every": 1,
        "seed": 1,
        **run,
    }
    run_lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items())
    return f"""[run]
{run_lines}

[model.encoder]
name = "toy_encoder"
width = 16

{TINY_QFORMER_TOML}
[model.llm]
name = "hf_causal_lm"
model = {json.dumps(llm)}

[[data]]
dataset = "toy_dataset"
n = 8
task = "toy_task"
"""


class Crash(Exception):
    """The simulated crash of :func:`run_until_checkpoint`."""


def run_until_checkpoint(recipe: Any, plugins: Any, step: int) -> None:
    """Train ``recipe`` and crash it right after its step-``step`` checkpoint is written (and
    old ones pruned), as a kill at that moment would; the checkpoint module is restored after."""
    from microvlm.io import layout
    from microvlm.train import checkpoint as ckpt
    from microvlm.train import run

    prune = ckpt.prune

    def crash_after(out: Any, keep_last: int) -> None:
        prune(out, keep_last)
        if layout.step_dir(out, step).is_dir():
            raise Crash

    ckpt.prune = crash_after
    try:
        run(recipe, plugins, progress=False)
    except Crash:
        return
    finally:
        ckpt.prune = prune
    raise AssertionError(f"the run ended without writing its step-{step} checkpoint")
