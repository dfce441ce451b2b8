"""Where each of the seed's ``microvlm_e`` modules went, and the import hook that says so.

The seed's layout is read from its README ("Project Structure"). The hook answers only for
names under ``microvlm_e.`` that are not real modules here; it imports nothing.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

_README = "the README's 'Coming from the original scripts' table"

# seed module (and everything under it) -> what replaces it; the longest matching name wins
MOVED: dict[str, str] = {
    "microvlm_e.models.microvlm": "use `from microvlm import MicroVLM`",
    "microvlm_e.models.base_model": "use `from microvlm import MicroVLM` (the LLM: plugin 'hf_causal_lm')",
    "microvlm_e.models.qformer": "use `microvlm.models.qformer` (the bridge plugin 'qformer')",
    "microvlm_e.models.diet_encoder": "use the microvlm-encoders package (`microvlm_encoders`, 'diet_tiny')",
    "microvlm_e.models.quantization": (
        "QLoRA's 4-bit base is the microvlm-quant package (`microvlm_quant`); int8 and 1.58-bit "
        "are exporters: `microvlm export --checkpoint C --8bit | --1_58bit` (export_model.py)"
    ),
    "microvlm_e.processors.image_processor": "use `from microvlm import ImageEvalProcessor`",
    "microvlm_e.processors.text_processor": "prompts come from the tasks (microvlm-tasks, `microvlm_tasks`)",
    "microvlm_e.common.config": "configs are TOML recipes: `microvlm.load_recipe`, `microvlm recipe check`",
    "microvlm_e.common.registry": "plugins are entry points: `microvlm.load_plugins()`, `microvlm plugins`",
    "microvlm_e.common.dist_utils": "use `microvlm run RECIPE --nproc N` (`microvlm.train.dist`)",
    "microvlm_e.common.logger": "use `logging` and the recipe's `run.loggers` (`microvlm.loggers.sinks`)",
    "microvlm_e.common.optims": "set the recipe's `run.lr`, `run.warmup_steps` (`microvlm.train.schedule`)",
    "microvlm_e.datasets": "use the microvlm-datasets package (`microvlm_datasets`), a recipe's [[data]]",
    "microvlm_e.runners": "use `microvlm run RECIPE` (`microvlm.train`)",
    "microvlm_e.tasks": "use the microvlm-tasks package (`microvlm_tasks`), a recipe's [[data]]",
    "microvlm_e.visualization": (
        "attention-map visualisation (AlignmentVisualizer, visualize_alignment.py) is not built "
        "yet; it is planned as the `microvlm visualize` command (issue 19)"
    ),
}


def replacement(name: str) -> str:
    """What replaces the seed's module ``name`` (the longest entry of :data:`MOVED` it falls under)."""
    for prefix in sorted(MOVED, key=len, reverse=True):
        if name == prefix or name.startswith(prefix + "."):
            return MOVED[prefix]
    parts = [f"{key[len(name) + 1 :]}: {text}" for key, text in MOVED.items() if key.startswith(name + ".")]
    return "; ".join(parts) if parts else f"see {_README}"  # a package: where each of its modules went


def moved_error(name: str) -> ImportError:
    """The error for importing the seed's module ``name``."""
    return ImportError(
        f"{name} was the seed's module; MicroVLM-E is now the `microvlm` package and its "
        f"plugin packages: {replacement(name)}",
        name=name,
    )


class _MovedFinder(importlib.abc.MetaPathFinder):
    """Raises :func:`moved_error` for ``microvlm_e.*`` names that are not real modules here."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("microvlm_e."):
            return None
        if importlib.machinery.PathFinder.find_spec(fullname, path) is not None:
            return None  # a real module (microvlm_e.models, microvlm_e.processors)
        raise moved_error(fullname)


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())
