"""Parameter accounting: parameters per component, what trains, and the memory the weights take.

:func:`model_info` builds the model of a ``[model]`` config on the ``meta`` device (shapes
only: nothing is allocated, downloaded or initialised) and counts it; :func:`count_model`
counts a model that is already built. The parts are ``encoder``, ``bridge``, ``projection``,
``llm`` (the base language model, embeddings included; tied input/output embeddings count
once) and ``lora`` (the adapter matrices, when an adapter is on).

Memory is that of the weights at their storage dtype: the LLM's ``dtype`` (``"auto"``
resolves as it would on this machine: bfloat16 on a bf16 GPU, else float32), float32 for
the other parts. With ``adapter = "qlora"`` the base LLM's linear layers (all but the output
head) are stored by the quantizer plugin the LLM config names (``nf4`` of microvlm-quant: half
a byte per weight plus block scales); their bytes are what its ``storage_bytes`` says
(:class:`microvlm.contracts.quant.Quantizer`). Activations, gradients and optimizer state are
not included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
from torch import nn

from microvlm.errors import MicroVLMError

if TYPE_CHECKING:
    from microvlm.models.vlm import MicroVLM
    from microvlm.recipes.config import ModelConfig

PARTS = ("encoder", "bridge", "projection", "llm", "lora")


@attrs.frozen
class PartInfo:
    """One component's share."""

    name: str  # "encoder", "bridge", "projection", "llm" or "lora"
    component: str  # registered plugin name ("" for the projection and lora)
    parameters: int  # number of weights (a 4-bit weight counts as one)
    trainable: int  # of which the optimizer updates
    bytes: int  # memory of the weights at their storage dtype
    dtype: str  # storage dtype(s), e.g. "float32" or "bfloat16+nf4" (the quantizer's name)


@attrs.frozen
class ModelInfo:
    """Parameters and weight memory of a model, by component."""

    parts: tuple[PartInfo, ...]  # in PARTS order; "lora" only when an adapter is on
    train: tuple[str, ...]  # the trainable parts the counts assume (run.train)

    @property
    def parameters(self) -> int:
        return sum(p.parameters for p in self.parts)

    @property
    def trainable(self) -> int:
        return sum(p.trainable for p in self.parts)

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.parts)

    def part(self, name: str) -> PartInfo:
        for p in self.parts:
            if p.name == name:
                return p
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"parts": {name: {...}}, "total": {...}, "train": [...]}``."""
        return {
            "train": list(self.train),
            "parts": {p.name: attrs.asdict(p, filter=lambda a, _: a.name != "name") for p in self.parts},
            "total": {"parameters": self.parameters, "trainable": self.trainable, "bytes": self.bytes},
        }


def counting_config(config: ModelConfig) -> ModelConfig:
    """``config`` with settings that change no shape set so that nothing is downloaded:
    ``pretrained = "none"`` for the encoder and ``init = "random"`` for the LLM (when the
    plugins have those settings)."""

    def evolve(spec: Any, **changes: Any) -> Any:
        fields = attrs.fields_dict(type(spec.config)) if attrs.has(type(spec.config)) else {}
        changes = {k: v for k, v in changes.items() if k in fields}
        return attrs.evolve(spec, config=attrs.evolve(spec.config, **changes)) if changes else spec

    return attrs.evolve(
        config,
        encoder=evolve(config.encoder, pretrained="none"),
        llm=evolve(config.llm, init="random"),
    )


def model_info(config: ModelConfig, plugins: Any = None, train: Sequence[str] | None = None) -> ModelInfo:
    """Count the model ``config`` describes, built on the meta device (no weights, no network).

    :param train: the parts that train (``run.train``); ``None`` keeps the components' own
        ``requires_grad`` (frozen encoder and LLM base, trainable bridge, projection and LoRA).
    """
    from microvlm.models.vlm import MicroVLM

    model = MicroVLM.from_config(counting_config(config), plugins, device="meta")
    return count_model(model, train, plugins)


def count_model(model: MicroVLM, train: Sequence[str] | None = None, plugins: Any = None) -> ModelInfo:
    """Count a built model (on any device). ``train`` as in :func:`model_info`."""
    if train is not None:
        try:
            model.set_trainable(train)
        except ValueError as exc:
            raise MicroVLMError(f"run.train = {list(train)}: {exc}") from exc
    config = model.config
    qlora = _is_qlora(model)
    quantised = _quantised_weights(model) if qlora else set()
    storage = _quantizer_storage(config, plugins) if qlora else None
    groups: dict[str, list[tuple[str, nn.Parameter]]] = {
        "encoder": list(model.encoder.named_parameters()),
        "bridge": list(model.bridge.named_parameters()),
        "projection": list(model.projection.named_parameters()),
        "llm": [],
        "lora": [],
    }
    for name, p in model.llm.named_parameters():
        groups["lora" if "lora_" in name else "llm"].append((name, p))
    names = {"encoder": config.encoder.name, "bridge": config.bridge.name, "llm": config.llm.name}
    parts = []
    for part in PARTS:
        params = [p for _, p in groups[part]]
        if part == "lora" and not params:
            continue
        parts.append(_part_info(part, names.get(part, ""), params, quantised, storage))
    trainable = tuple(train) if train is not None else tuple(p.name for p in parts if p.trainable)
    return ModelInfo(tuple(parts), trainable)


#: (quantizer name, its ``storage_bytes``) of a qlora model's 4-bit base
Storage = tuple[str, Callable[[int], int]]


def _part_info(
    name: str, component: str, params: list[nn.Parameter], quantised: set[int], storage: Storage | None
) -> PartInfo:
    total = trainable = size = 0
    dtypes: list[str] = []
    for p in params:
        quant_state = getattr(p, "quant_state", None)
        n = quant_state.shape.numel() if quant_state is not None else p.numel()  # a loaded 4-bit weight
        if quant_state is not None or id(p) in quantised:
            if storage is None:
                raise MicroVLMError(
                    "this model holds 4-bit weights but is not set up for qlora; count it with "
                    'model.llm.adapter = "qlora" and the plugins that registered its quantizer'
                )
            kind, storage_bytes = storage
            size += storage_bytes(n)
        else:
            size += n * p.element_size()
            kind = str(p.dtype).removeprefix("torch.")
        if kind not in dtypes:
            dtypes.append(kind)
        total += n
        trainable += n if p.requires_grad else 0
    return PartInfo(name, component, total, trainable, size, "+".join(dtypes) or "-")


def _is_qlora(model: MicroVLM) -> bool:
    return getattr(model.config.llm.config, "adapter", None) == "qlora"


def _quantised_weights(model: MicroVLM) -> set[int]:
    """Ids of the weights a qlora base stores in 4 bits: linear layers but the output head."""
    base = model.llm.base_model
    head = base.get_output_embeddings()
    return {
        id(module.weight)
        for name, module in base.named_modules()
        if isinstance(module, nn.Linear) and "lora_" not in name and module is not head
    }


def _quantizer_storage(config: ModelConfig, plugins: Any) -> Storage:
    """The qlora quantizer's name and ``storage_bytes``, built with its default settings (the
    ones ``hf_causal_lm`` loads with)."""
    name = getattr(config.llm.config, "quantizer", None)
    if not name:
        raise MicroVLMError(f"llm '{config.llm.name}' uses qlora but its config names no quantizer")
    if plugins is None:
        raise MicroVLMError(
            f"counting a qlora model needs the plugins: quantizer '{name}' says how many bytes its "
            "weights take (count_model(model, plugins=load_plugins()))"
        )
    quantizer = plugins.build("quantizer", name)
    return name, quantizer.storage_bytes


def format_count(n: int) -> str:
    """``494032768`` -> ``"494.0 M"``; ``35192832`` -> ``"35.2 M"``; ``9216`` -> ``"9.2 K"``."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return str(n)


def format_bytes(n: int) -> str:
    """``1976131072`` -> ``"1.84 GiB"``; ``22097664`` -> ``"21.1 MiB"``."""
    if n >= 1024**3:
        return f"{n / 1024**3:.2f} GiB"
    if n >= 1024**2:
        return f"{n / 1024**2:.1f} MiB"
    return f"{n / 1024:.1f} KiB"


__all__ = [
    "PARTS",
    "ModelInfo",
    "PartInfo",
    "count_model",
    "counting_config",
    "format_bytes",
    "format_count",
    "model_info",
]
