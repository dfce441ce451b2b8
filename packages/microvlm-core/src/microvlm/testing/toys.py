"""Toy components for tests and examples of how a plugin registers things.

``ToyPlugin`` registers one tiny config class per component kind under ``toy_*`` names.
``toy_encoder``, ``toy_dataset`` and ``toy_task`` are real (tiny) components that core's
trainer tests run on; the bridge, LLM and quantizer factories return a :class:`Built`
record, which is all recipe, registry and CLI tests need. Register it directly::

    plugins = load_plugins(extra=[("toys", ToyPlugin())])
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

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


@attrs.frozen
class Built:
    """What a toy factory returns: its name, config and the context it was called with."""

    name: str
    config: Any
    context: dict[str, Any]


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

    def __init__(self, config: ToyDatasetConfig, **_: Any) -> None:
        self.config = config

    def __len__(self) -> int:
        return self.config.n

    def __iter__(self) -> Any:
        import io

        from PIL import Image

        from microvlm.data import ImageRef, Sample

        side = self.config.image_size
        for i in range(self.config.n):
            name, rgb = COLOURS[i % len(COLOURS)]
            buffer = io.BytesIO()
            Image.new("RGB", (side, side), rgb).save(buffer, format="PNG")
            yield Sample(
                str(i),
                ImageRef(data=buffer.getvalue(), size=(side, side)),
                "toy_dataset",
                captions=(f"a {name} square",),
            )


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


def _factory(name: str) -> Any:
    def build(config: Any, **context: Any) -> Built:
        return Built(name, config, context)

    return build


class ToyPlugin:
    """Registers ``toy_encoder``, ``toy_bridge``, ``toy_llm``, ``toy_dataset``, ``toy_task``,
    ``toy_quant``."""

    @hookimpl
    def register_encoders(self, register: Register) -> None:
        register("toy_encoder", build_toy_encoder, ToyEncoderConfig, description="toy conv patch encoder")

    @hookimpl
    def register_bridges(self, register: Register) -> None:
        register("toy_bridge", _factory("toy_bridge"), ToyBridgeConfig, description="toy bridge")

    @hookimpl
    def register_llms(self, register: Register) -> None:
        register("toy_llm", _factory("toy_llm"), ToyLLMConfig, description="toy LLM")

    @hookimpl
    def register_datasets(self, register: Register) -> None:
        register("toy_dataset", ToyDataset, ToyDatasetConfig, description="toy coloured squares")

    @hookimpl
    def register_tasks(self, register: Register) -> None:
        register("toy_task", ToyTask, ToyTaskConfig, description="toy captioning task")

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
