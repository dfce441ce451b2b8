"""Typed, frozen configuration of a run: what a recipe is structured into.

Component sections (``[model.encoder]``, ``[[data]]``'s dataset and task, loggers) hold a
:class:`ComponentSpec`: the registered name plus an instance of the config class that the
providing plugin registered. Everything else is core's own config, defined here.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import attrs

from microvlm.recipes import validators as v

Precision = Literal["auto", "fp32", "bf16", "fp16"]
TrainablePart = Literal["bridge", "projection", "lora", "llm", "encoder"]

#: Seeds go to random.seed, torch.manual_seed and, in train/loop.py, to a torch.Generator as
#: ``seed * 100_003 + epoch``, which must stay below 2**64: 32 bits leave room for that.
MAX_SEED = 2**32 - 1

_seed = v.in_range(0, MAX_SEED, hi_note="2**32 - 1")

_DEVICE = re.compile(r"(?P<type>[a-z][a-z0-9_]*)(?::(?P<index>0|[1-9][0-9]{0,2}))?")
#: Device types checked without importing torch; others are asked of ``torch.device``.
COMMON_DEVICES = ("cpu", "cuda", "mps", "xpu")
MAX_DEVICE_INDEX = 127  # torch keeps the index in an int8: cuda:128 would become cuda:-128


def _torch_device(text: str) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - microvlm-core depends on torch
        return False
    try:
        torch.device(text)
    except (RuntimeError, ValueError):
        return False
    return True


def _device(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    """``"auto"`` or what ``torch.device`` parses (``cpu``, ``cuda``, ``cuda:1``, ``mps``, ...)."""
    if value == "auto":
        return
    match = _DEVICE.fullmatch(value)
    index = match["index"] if match else None
    if (
        match is None
        or (index is not None and int(index) > MAX_DEVICE_INDEX)
        or (match["type"] not in COMMON_DEVICES and not _torch_device(value))
    ):
        v.fail(
            instance,
            attribute,
            f'expected "auto", "cpu", "cuda", "cuda:N", "mps" or another torch device, got {value!r}',
        )


@attrs.frozen
class ComponentSpec:
    """A component chosen by name, with its plugin's typed config."""

    name: str  # registered name, e.g. "diet_tiny"
    config: Any  # instance of the plugin's config class


@attrs.frozen
class RunConfig:
    """``[run]``: the optimisation loop and where its outputs go."""

    name: str = "run"  # run name, used in logs and trackers
    output_dir: str = "output/run"  # checkpoints, metrics.jsonl, loss.png; relative to the cwd
    init_from: str = ""  # checkpoint (directory) of the previous stage to start from; "" = none
    resume: bool = True  # continue from the newest checkpoint in output_dir if there is one
    seed: int = attrs.field(default=42, validator=_seed)  # seeds python, torch and the data order
    epochs: int = attrs.field(default=1, validator=v.positive)  # passes over the data mixture
    max_steps: int = attrs.field(default=0, validator=v.non_negative)  # optimizer steps; 0 = epochs decide
    batch_size: int = attrs.field(default=8, validator=v.positive)  # samples per process per micro-batch
    grad_accum_steps: int = attrs.field(default=1, validator=v.positive)  # micro-batches per optimizer step
    lr: float = attrs.field(default=1e-4, validator=v.positive)  # peak learning rate
    min_lr_ratio: float = attrs.field(default=0.1, validator=v.non_negative)  # cosine floor, x lr
    weight_decay: float = attrs.field(default=0.05, validator=v.non_negative)  # AdamW; not on norms/biases
    warmup_steps: int = attrs.field(default=0, validator=v.non_negative)  # linear warm-up, steps
    max_grad_norm: float = attrs.field(default=1.0, validator=v.non_negative)  # clip; 0 = off
    precision: Precision = "auto"  # "auto": bf16 autocast on GPU, fp32 on CPU
    device: str = attrs.field(default="auto", validator=_device)  # "auto", "cpu", "cuda", "cuda:1", ...
    gradient_checkpointing: bool = False  # trade compute for activation memory in the LLM
    train: tuple[TrainablePart, ...] = ("bridge", "projection")  # what the optimizer updates
    num_workers: int = attrs.field(default=0, validator=v.non_negative)  # DataLoader workers
    threads: int = attrs.field(default=0, validator=v.non_negative)  # torch intra-op threads; 0 = default
    max_text_tokens: int = attrs.field(default=256, validator=v.positive)  # prompt+target, per sample
    log_every: int = attrs.field(default=10, validator=v.positive)  # steps between metric logs
    save_every: int = attrs.field(default=0, validator=v.non_negative)  # steps between checkpoints; 0 = end
    keep_last: int = attrs.field(default=2, validator=v.positive)  # step checkpoints kept on disk
    max_bad_fraction: float = attrs.field(  # share of unreadable samples per dataset that stops the run
        default=0.01, validator=v.fraction
    )
    max_nonfinite_steps: int = attrs.field(  # steps with a NaN/inf loss or gradient skipped; more stop
        default=0, validator=v.non_negative
    )


@attrs.frozen
class ProjectionConfig:
    """``[model.projection]``: two linear layers from the bridge width to the LLM width."""

    hidden_size: int = attrs.field(default=0, validator=v.non_negative)  # 0 = the LLM width
    activation: Literal["gelu", "silu", "relu"] = "gelu"  # between the two layers
    dropout: float = attrs.field(default=0.0, validator=v.non_negative)  # after the activation


@attrs.frozen
class ModelConfig:
    """``[model]``: encoder -> bridge -> projection -> LLM."""

    encoder: ComponentSpec
    bridge: ComponentSpec
    llm: ComponentSpec
    projection: ProjectionConfig = attrs.field(factory=ProjectionConfig)


@attrs.frozen
class DataConfig:
    """One ``[[data]]`` entry: a dataset plugin paired with a task plugin."""

    dataset: ComponentSpec  # builder and its settings (root, split, ...)
    task: ComponentSpec  # turns samples into prompt/target and predictions into metrics
    weight: float = attrs.field(
        default=1.0, validator=[v.finite, v.positive]
    )  # share in the mixture (normalised)


@attrs.frozen
class EvalConfig:
    """``[eval]``: periodic evaluation during training and ``microvlm eval`` defaults."""

    every_steps: int = attrs.field(default=0, validator=v.non_negative)  # 0 = at the end only
    max_samples: int = attrs.field(default=0, validator=v.non_negative)  # per entry; 0 = all
    batch_size: int = attrs.field(default=8, validator=v.positive)  # generation batch
    max_new_tokens: int = attrs.field(default=32, validator=v.positive)  # per answer
    data: tuple[DataConfig, ...] = ()  # evaluation entries ([[eval.data]])


@attrs.frozen
class Recipe:
    """A fully resolved, validated single-stage recipe."""

    source: str  # the recipe file, as given
    run: RunConfig
    model: ModelConfig
    data: tuple[DataConfig, ...]
    eval: EvalConfig
    loggers: tuple[ComponentSpec, ...]
    resolved: dict = attrs.field(eq=False, repr=False)  # merged TOML table (for --print, run records)
    qat: ComponentSpec | None = None  # [qat]: quantisation-aware training scheme, if any


@attrs.frozen
class Stage:
    """One stage of a pipeline."""

    recipe: Recipe
    chained: bool  # init_from was taken from the previous stage's final checkpoint


@attrs.frozen
class Pipeline:
    """A recipe with ``[[stages]]``: single-stage recipes run in order, checkpoints chained."""

    source: str
    stages: tuple[Stage, ...]
    resolved: dict = attrs.field(eq=False, repr=False)
