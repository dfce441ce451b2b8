"""A third-party exporter: the whole model in float32, through core's own ``save_pretrained``.

It shows the smallest exporter a package can add (``microvlm export --format toy_fp32``): write
the model into the folder core hands over, report its tensors, estimate that report from shapes
alone (``microvlm model-info``), and load the folder back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from microvlm import hookimpl
from microvlm.contracts.quant import ExportReport, TensorGroup

INNER = "model"  # the save_pretrained folder inside the export


@attrs.frozen
class ToyFp32Config:
    """No settings."""


class ToyFp32Exporter:
    def __init__(self, config: ToyFp32Config) -> None:
        self.config = config

    def export(self, model: Any, directory: Path) -> ExportReport:
        model.save_pretrained(directory / INNER, weights="all")
        return self.estimate(model)

    def estimate(self, model: Any) -> ExportReport:
        """Every tensor once (tied ones once), at its own dtype: shapes only, ``meta`` is fine."""
        from microvlm.models.pretrained import all_tensors

        tensors = all_tensors(model).values()
        n = sum(t.numel() for t in tensors)
        size = sum(t.numel() * t.element_size() for t in tensors)
        return ExportReport((TensorGroup("all", n, size, "as trained"),), ("a fixture exporter",))

    def load(self, directory: Path, *, plugins: Any, options: Any = None) -> Any:
        from microvlm.models.vlm import MicroVLM

        return MicroVLM.from_pretrained(directory / INNER, plugins, **dict(options or {}))


@hookimpl
def register_exporters(register: Any) -> None:
    register("toy_fp32", ToyFp32Exporter, ToyFp32Config, description="fixture: float32 via save_pretrained")
