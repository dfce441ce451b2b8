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

:func:`export_estimates` asks every registered exporter plugin what ``microvlm export
--format NAME`` would write for a built model (:meth:`~microvlm.contracts.quant.Exporter.estimate`:
shapes only, so a meta-device model of the real size takes well under a second): the folder's
tensor bytes (the sum of its groups; side files such as the tokenizer are not counted), the
ratio to the ``fp16`` export when an exporter of that name is registered, and the bits per
weight of the LLM's linear layers (the groups named ``llm.linear*``).
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


def meta_model(config: ModelConfig, plugins: Any = None) -> MicroVLM:
    """The model ``config`` describes, built on the meta device (no weights, no network)."""
    from microvlm.models.vlm import MicroVLM

    return MicroVLM.from_config(counting_config(config), plugins, device="meta")


def model_info(config: ModelConfig, plugins: Any = None, train: Sequence[str] | None = None) -> ModelInfo:
    """Count the model ``config`` describes, built on the meta device (no weights, no network).

    :param train: the parts that train (``run.train``); ``None`` keeps the components' own
        ``requires_grad`` (frozen encoder and LLM base, trainable bridge, projection and LoRA).
    """
    return count_model(meta_model(config, plugins), train, plugins)


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


#: the export the others are compared with, when an exporter of this name is registered
BASELINE = "fp16"


@attrs.frozen
class ExportEstimate:
    """What one exporter would write for a model (its :meth:`estimate`)."""

    format: str  # the exporter plugin's name
    bytes: int  # tensor bytes of the folder: the sum of the report's groups
    vs_baseline: float | None  # bytes / the BASELINE export's bytes (None: no baseline, or an error)
    llm_linear_bits: float | None  # bits per weight of the groups named llm.linear* (None: none)
    groups: tuple[Any, ...]  # the report's TensorGroups
    error: str = ""  # the first line of the estimate's error ("" when it worked)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bytes": self.bytes,
            f"x_{BASELINE}": self.vs_baseline,
            "llm_linear_bits_per_weight": self.llm_linear_bits,
            "groups": [attrs.asdict(g) for g in self.groups],
            **({"error": self.error} if self.error else {}),
        }


def export_estimates(model: MicroVLM, plugins: Any) -> tuple[ExportEstimate, ...]:
    """Every registered exporter's estimate for ``model`` (any device, ``meta`` included), by
    name. An exporter that cannot build or estimate is listed with its error's first line."""
    from microvlm.io.layout import first_line

    found: list[ExportEstimate] = []
    for component in plugins.components("exporter"):
        try:
            report = component.build().estimate(model)
            groups = tuple(report.groups)
        except Exception as exc:  # a plugin's failure is shown, not raised: the others still count
            found.append(ExportEstimate(component.name, 0, None, None, (), first_line(exc)))
            continue
        linears = [g for g in groups if g.name.startswith("llm.linear")]
        weights = sum(g.parameters for g in linears)
        bits = 8 * sum(g.bytes for g in linears) / weights if weights else None
        found.append(ExportEstimate(component.name, sum(g.bytes for g in groups), None, bits, groups))
    base = next((e.bytes for e in found if e.format == BASELINE and not e.error), 0)
    return tuple(attrs.evolve(e, vs_baseline=e.bytes / base) if base and not e.error else e for e in found)


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
    "BASELINE",
    "PARTS",
    "ExportEstimate",
    "ModelInfo",
    "PartInfo",
    "count_model",
    "counting_config",
    "export_estimates",
    "format_bytes",
    "format_count",
    "meta_model",
    "model_info",
]
