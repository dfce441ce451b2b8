"""Contracts of quantisation: quantizers (load-time, e.g. NF4 for QLoRA) and exporters
(a trained model -> a self-contained folder -> a runnable model again).

Two kinds, because they are used at different times: a quantizer changes how a base model is
*loaded* for training (``[model.llm] quantizer = "nf4"``); an exporter *writes* a finished
model in a deployable form (``microvlm export --format int8``) and *loads* that folder back for
``infer``, ``eval``, ``serve`` and ``MicroVLM.from_pretrained``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

if TYPE_CHECKING:
    import torch


@runtime_checkable
class Quantizer(Protocol):
    """Load-time quantisation of a language model's frozen base. Built as ``factory(config)``."""

    def quantization_config(self, compute_dtype: torch.dtype | None = None) -> Any:
        """A transformers quantization config for ``from_pretrained`` (e.g. ``BitsAndBytesConfig``)."""
        ...

    def quantize_model(
        self, model: torch.nn.Module, *, compute_dtype: torch.dtype | None = None
    ) -> torch.nn.Module:
        """Quantise an in-memory model in place (a random-init base); returns it."""
        ...

    def describe(self) -> dict[str, Any]:
        """The scheme as JSON-able settings, recorded in checkpoints (``{"quantizer": "nf4", ...}``)."""
        ...

    def storage_bytes(self, parameters: int) -> int:
        """Bytes that ``parameters`` quantised weights take in memory (scales included), for
        ``microvlm model-info``."""
        ...


@attrs.frozen
class TensorGroup:
    """One group of tensors of an export, as its manifest lists it."""

    name: str  # "llm.linear", "llm.embeddings", "bridge", ...
    parameters: int  # how many weights
    bytes: int  # bytes they take on disk, scales included
    storage: str  # "fp16", "int8 per-output-channel, fp32 scales", "ternary 5 per byte, absmean"

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.bytes / self.parameters if self.parameters else 0.0


@attrs.frozen
class ExportReport:
    """What an exporter wrote: the manifest's ``groups`` and ``notes``."""

    groups: tuple[TensorGroup, ...]
    notes: tuple[str, ...] = ()  # e.g. "LoRA merged into the base", "QLoRA base dequantised first"


@runtime_checkable
class Exporter(Protocol):
    """A trained model -> a folder, and that folder -> a runnable model. Built as ``factory(config)``.

    Core's ``microvlm export`` loads the checkpoint, hands the model and a fresh temporary folder
    to :meth:`export`, then writes ``manifest.json`` (format, groups, file hashes, source
    checkpoint and package versions) and renames the folder into place; a hash mismatch at load
    is refused before :meth:`load` is called. ``microvlm model-info`` calls :meth:`estimate`
    on a model built on the ``meta`` device to show each format's size before anything is
    written; the conformance kit (``check_exporter``) holds its groups equal to the ones
    :meth:`export` reports for the same model.
    """

    def export(self, model: Any, directory: Path) -> ExportReport:
        """Write ``model`` (a :class:`~microvlm.models.vlm.MicroVLM`) into the empty ``directory``."""
        ...

    def estimate(self, model: Any) -> ExportReport:
        """The groups :meth:`export` would write for ``model``, computed from tensor shapes only
        (the model may be on the ``meta`` device); no files, no quantisation arithmetic.

        :returns: the same groups (names, parameters, bytes, storage) as :meth:`export`'s report.
        """
        ...

    def load(self, directory: Path, *, plugins: Any, options: Mapping[str, Any] | None = None) -> Any:
        """A runnable :class:`~microvlm.models.vlm.MicroVLM` from a folder :meth:`export` wrote."""
        ...


@runtime_checkable
class QATScheme(Protocol):
    """Quantisation-aware training: fake quantisation during a training stage, so that the
    exporter of the same scheme later produces a model that still works. Built as
    ``factory(config)`` from a recipe's ``[qat]`` table.

    The runner calls :meth:`prepare` once, after ``run.init_from`` is loaded and before the
    optimizer is made (and before a resumed run's weights are loaded: the parameter names
    must not change); then :meth:`set_step` before every optimizer step, with the step about to
    be taken, so a resumed run gets the same schedule; and :meth:`finish` before the final
    evaluation and checkpoint.
    """

    def prepare(self, model: Any) -> int:
        """Swap ``model``'s layers for fake-quantised ones in place, keeping parameter names and
        values (full-precision shadow weights); returns how many layers were swapped."""
        ...

    def set_step(self, model: Any, step: int) -> Mapping[str, float]:
        """Set the quantisation strength for optimizer step ``step`` (from 0); returns metrics
        to log (e.g. ``{"qat/lambda": 0.5}``)."""
        ...

    def finish(self, model: Any) -> None:
        """Full quantisation for the final evaluation and checkpoint."""
        ...


__all__ = ["ExportReport", "Exporter", "QATScheme", "Quantizer", "TensorGroup"]
