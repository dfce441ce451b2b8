"""Tasks and metrics for MicroVLM-E, registered as plugins through the ``microvlm`` entry point.

Each task satisfies core's :class:`microvlm.contracts.data.Task` protocol (what the trainer,
``microvlm eval`` and ``results.json`` call); the helpers the tasks share are in
:mod:`microvlm_tasks.base`, the box text format in :mod:`microvlm_tasks.boxes`.
"""

from __future__ import annotations

import importlib.metadata as _md

from microvlm_tasks.aokvqa import AOKVQAChoiceTask, AOKVQADirectTask, build_aokvqa_da, build_aokvqa_mc
from microvlm_tasks.boxes import COORD_MAX, format_box, parse_box, to_pixels
from microvlm_tasks.captioning import CaptionTask, build_captioning, build_pretrain
from microvlm_tasks.config import (
    AOKVQAChoiceConfig,
    AOKVQADirectConfig,
    CaptioningConfig,
    GroundingConfig,
    InstructConfig,
    PretrainConfig,
    VQAConfig,
)
from microvlm_tasks.grounding import GroundingTask, build_grounding
from microvlm_tasks.instruct import InstructTask, build_instruct
from microvlm_tasks.vqa import VQATask, build_vqa

try:
    __version__ = _md.version("microvlm-tasks")
except _md.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "COORD_MAX",
    "AOKVQAChoiceConfig",
    "AOKVQAChoiceTask",
    "AOKVQADirectConfig",
    "AOKVQADirectTask",
    "CaptionTask",
    "CaptioningConfig",
    "GroundingConfig",
    "GroundingTask",
    "InstructConfig",
    "InstructTask",
    "PretrainConfig",
    "VQAConfig",
    "VQATask",
    "__version__",
    "build_aokvqa_da",
    "build_aokvqa_mc",
    "build_captioning",
    "build_grounding",
    "build_instruct",
    "build_pretrain",
    "build_vqa",
    "format_box",
    "parse_box",
    "to_pixels",
]
