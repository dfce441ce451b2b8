"""Saving and loading a whole MicroVLM as a directory (``save_pretrained`` / ``from_pretrained``).

An exported model is a directory::

    exported/
      model.toml                 the resolved [model] table that rebuilds the architecture
      model.safetensors          the weights: trainable ones, or all of them
      trainer.json               format, which weights, the base sources they replace
      adapter_model.safetensors  the LoRA weights in peft's layout (when an adapter is on)
      adapter_config.json        peft's LoRA settings, so peft can load the adapter too
      llm/                       the LLM's transformers config.json, generation_config.json
                                 and tokenizer files

``weights = "trainable"`` stores what trains (bridge, projection, LoRA, ...) and what an
earlier stage trained (``model.carried``, when recorded): small, but the frozen encoder and
LLM weights come again from where ``model.toml`` says (hub id or path).
``weights = "all"`` stores every tensor: ``model.toml`` then says ``pretrained = "none"`` for
the encoder and ``init = "random"`` for the LLM, and :func:`load_pretrained` rebuilds the LLM
from ``llm/config.json``, so loading needs neither the network nor the base weights.

A training run's ``checkpoint_final`` (``model.toml`` + trainable ``model.safetensors``) loads
through the same :func:`load_pretrained`. Writes are atomic (temporary folder, fsync, rename);
nothing is pickled.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from microvlm.errors import MicroVLMError

if TYPE_CHECKING:
    from microvlm.models.vlm import MicroVLM
    from microvlm.plugins.manager import Plugins
    from microvlm.recipes.config import ModelConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

logger = logging.getLogger(__name__)

FORMAT = "microvlm-pretrained"  # trainer.json "format" of a save_pretrained directory
FORMAT_VERSION = 1
MODEL_TABLE = "model.toml"
LLM_DIR = "llm"  # sub-folder with the LLM's config.json and tokenizer files
ADAPTER_CONFIG = "adapter_config.json"
Weights = Literal["trainable", "all"]
_SHOWN = 8  # key names listed in an error before "(+N more)"


# -- the [model] table -------------------------------------------------------------------


def model_table(config: ModelConfig) -> dict[str, Any]:
    """The resolved ``[model]`` table of ``config`` (defaults included), as checkpoints store it."""
    from microvlm.recipes.structure import unstructure

    def component(spec: Any) -> dict[str, Any]:
        return {"name": spec.name, **unstructure(spec.config)}

    return {
        "encoder": component(config.encoder),
        "bridge": component(config.bridge),
        "llm": component(config.llm),
        "projection": unstructure(config.projection),
    }


def apply_options(table: dict[str, Any], options: Mapping[str, Any], source: str) -> None:
    """Set ``--set``-style ``{"bridge.num_layers": 2}`` entries in a ``[model]`` table, in place."""
    from microvlm.recipes.load import Table, set_path

    wrapped = Table(table, {}, source)
    for key, value in options.items():
        set_path(wrapped, key.split("."), value, origin="option")


def _offline_table(table: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The table that rebuilds the architecture without base weights, and what it replaced."""
    table = json.loads(json.dumps(table))  # deep copy of plain TOML data
    replaced: dict[str, Any] = {}
    if "pretrained" in table["encoder"]:
        replaced["encoder.pretrained"] = table["encoder"]["pretrained"]
        table["encoder"]["pretrained"] = "none"
    if "init" in table["llm"]:
        replaced["llm.init"] = table["llm"]["init"]
        replaced["llm.model"] = table["llm"].get("model")
        table["llm"]["init"] = "random"
    else:
        logger.warning(
            "LLM plugin %r has no 'init' setting: loading this export still reads its base weights",
            table["llm"]["name"],
        )
    return table, replaced


# -- tensors -----------------------------------------------------------------------------


def all_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and persistent buffers by name; a tied tensor appears once (its first name)."""
    seen: set[int] = set()
    out: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        out[name] = tensor
    return out


def _show(names: list[str], keys: list[str] | None = None) -> str:
    """The first names, and with more than shown, how many fall in each top-level part."""
    shown = ", ".join(names[:_SHOWN])
    if len(names) <= _SHOWN:
        return shown
    parts: dict[str, int] = {}
    for key in keys or names:
        parts[key.split(".")[0]] = parts.get(key.split(".")[0], 0) + 1
    by_part = ", ".join(f"{part} {n}" for part, n in parts.items())
    return f"{shown} (+{len(names) - _SHOWN} more; by part: {by_part})"


def load_model_weights(
    model: torch.nn.Module, weights: Mapping[str, torch.Tensor], source: str, *, require_all: bool = False
) -> int:
    """Copy ``weights`` into ``model`` by name; returns the number of tensors loaded.

    Every problem is found before anything is copied, and one :class:`MicroVLMError` names
    them all: names the model does not have, tensors of another shape, and (with
    ``require_all``) model tensors the file lacks.
    """
    own = all_tensors(model)
    unknown = sorted(set(weights) - set(own))
    reshaped = sorted(k for k in weights if k in own and tuple(weights[k].shape) != tuple(own[k].shape))
    missing = sorted(set(own) - set(weights)) if require_all else []
    if unknown or reshaped or missing:
        lines = [f"{source}: the weights do not fit this model (saved from another architecture?)"]
        if unknown:
            lines.append(f"  {len(unknown)} not in this model: {_show(unknown)}")
        if reshaped:
            shapes = [f"{k} {tuple(weights[k].shape)} vs {tuple(own[k].shape)}" for k in reshaped]
            lines.append(f"  {len(reshaped)} of another shape (file vs model): {_show(shapes, reshaped)}")
        if missing:
            lines.append(f"  {len(missing)} missing from the file: {_show(missing)}")
        lines.append(
            "Rebuild the model from the model.toml saved with these weights "
            "(MicroVLM.from_pretrained) or match the model settings to it."
        )
        raise MicroVLMError("\n".join(lines))
    with torch.no_grad():
        for name, tensor in weights.items():
            own[name].copy_(tensor)
    return len(weights)


# -- writing -----------------------------------------------------------------------------


def _check_target(target: Path) -> None:
    """Refuse to replace a folder that is not a previous export (``save_pretrained(".")``)."""
    from microvlm.io.layout import WEIGHTS

    if not target.exists():
        return
    if not target.is_dir():
        raise MicroVLMError(f"{target}: exists and is not a directory; choose a new directory")
    if any(target.iterdir()) and not ((target / WEIGHTS).is_file() and (target / MODEL_TABLE).is_file()):
        raise MicroVLMError(
            f"{target}: the directory holds other files; save_pretrained replaces the whole "
            f"directory, so give it a new or empty one (or a previous export, with {WEIGHTS} "
            f"and {MODEL_TABLE})"
        )


def _write_llm_files(model: MicroVLM, directory: Path) -> None:
    """The LLM's transformers config, generation config and tokenizer, into ``directory/llm``."""
    llm_dir = directory / LLM_DIR
    llm_dir.mkdir()
    hf_config = getattr(model.llm, "hf_config", None)
    if hf_config is not None:
        hf_config.save_pretrained(str(llm_dir))
    generation = getattr(getattr(model.llm, "base_model", None), "generation_config", None)
    if generation is not None:
        try:
            generation.save_pretrained(str(llm_dir))
        except ValueError as exc:  # transformers refuses inconsistent settings; loading does not need it
            logger.warning("generation_config.json not written: %s", exc)
    model.tokenizer.save_pretrained(str(llm_dir))


def _write_adapter(model: MicroVLM, directory: Path) -> bool:
    """peft's ``adapter_model.safetensors`` + ``adapter_config.json``; False without an adapter."""
    state = getattr(model.llm, "adapter_state_dict", dict)()
    if not state:
        return False
    model.llm.save_adapter(directory)
    peft_config = getattr(model.llm.model, "peft_config", {}).get("default")
    if peft_config is not None:
        peft_config.save_pretrained(str(directory))
    return True


def save_pretrained(model: MicroVLM, directory: str | Path, weights: Weights = "trainable") -> Path:
    """Write ``model`` to ``directory`` (see the module docstring); returns the directory."""
    import tomli_w
    from safetensors.torch import save_file

    from microvlm.io.layout import META, WEIGHTS, atomic_directory
    from microvlm.models.weights import weights_to_save

    if weights not in ("trainable", "all"):
        raise ValueError(f'weights must be "trainable" or "all", got {weights!r}')
    quantization = getattr(model.llm, "quantization", None)
    if weights == "all" and quantization is not None:
        raise MicroVLMError(
            f"the LLM's base is quantised ({quantization}); its 4-bit weights cannot be stored as "
            'plain tensors: save with weights="trainable" (the LoRA weights load onto a float base), '
            "or use microvlm export"
        )
    target = Path(directory)
    _check_target(target)
    table = model_table(model.config)
    replaced: dict[str, Any] = {}
    if weights == "all":
        table, replaced = _offline_table(table)
        tensors = all_tensors(model)
    else:  # what trains, plus weights an earlier stage trained (``model.carried``, if recorded)
        tensors = weights_to_save(model)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "weights": weights,
        "num_tensors": len(tensors),
        "replaced": replaced,  # base sources that a weights="all" export does not need
        "quantization": quantization,
    }
    with atomic_directory(target) as tmp:
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in tensors.items()},
            str(tmp / WEIGHTS),
            metadata={"format": "pt", "weights": weights},
        )
        (tmp / MODEL_TABLE).write_text(tomli_w.dumps({"model": table}))
        meta["adapter"] = _write_adapter(model, tmp)
        _write_llm_files(model, tmp)
        (tmp / META).write_text(json.dumps(meta, indent=2) + "\n")
    logger.info("saved %s (%s weights, %d tensors)", target, weights, len(tensors))
    return target


# -- reading -----------------------------------------------------------------------------


def read_meta(directory: Path) -> dict[str, Any]:
    """``trainer.json`` of a checkpoint or export, ``{}`` when there is none; a damaged one is a
    :class:`~microvlm.train.checkpoint.CheckpointError` naming it."""
    from microvlm.io.layout import META, load_meta

    return load_meta(directory) if (directory / META).is_file() else {}


def _local_llm_sources(table: dict[str, Any], directory: Path) -> dict[str, str]:
    """Point the LLM at ``directory/llm`` where it holds what the table would fetch."""
    llm_dir = directory / LLM_DIR
    llm = table["llm"]
    found: dict[str, str] = {}
    if llm.get("init") == "random" and "model" in llm and (llm_dir / "config.json").is_file():
        found["llm.model"] = str(llm_dir)
    if "tokenizer" in llm and (llm_dir / "tokenizer_config.json").is_file():
        found["llm.tokenizer"] = str(llm_dir)
    return found


#: Settings that make a component run Python code shipped with its files (transformers'
#: ``trust_remote_code``). A checkpoint's own ``model.toml`` can never turn them on.
CODE_SETTINGS = ("trust_remote_code",)
_PARTS = ("encoder", "bridge", "llm")


def read_model_table(table_file: Path) -> dict[str, Any]:
    """The ``[model]`` table of a checkpoint's ``model.toml``; :class:`MicroVLMError` if malformed."""
    try:
        table = tomllib.loads(table_file.read_text("utf-8"))["model"]
    except (tomllib.TOMLDecodeError, KeyError, UnicodeDecodeError, OSError) as exc:
        raise MicroVLMError(f"{table_file}: not a [model] table: {exc}") from None
    if not isinstance(table, dict):
        raise MicroVLMError(f"{table_file}: not a [model] table (found a {type(table).__name__})")
    missing = [p for p in _PARTS if not isinstance(table.get(p), dict)]
    if missing:
        raise MicroVLMError(
            f"{table_file}: the [model] table lacks {', '.join(missing)}; it is not a microvlm checkpoint"
        )
    return table


def distrust(table: dict[str, Any], source: str) -> dict[str, Any]:
    """Turn off, in place, every :data:`CODE_SETTINGS` a checkpoint's table turns on.

    Untrusted files (checkpoints, exports) never enable code execution; only the user can,
    on the command line or in their own recipe. Returns the table.
    """
    for part, section in table.items():
        if not isinstance(section, dict):
            continue
        for key in CODE_SETTINGS:
            if key in section and section[key] is not False:
                logger.warning(
                    "%s: %s.%s = %r ignored: settings read from a checkpoint never run code. If you "
                    "trust where this checkpoint came from, pass --set %s.%s=true",
                    source,
                    part,
                    key,
                    section[key],
                    part,
                    key,
                )
                section[key] = False
    return table


def load_pretrained(
    cls: type[MicroVLM],
    path: str | Path,
    plugins: Plugins | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> MicroVLM:
    """Rebuild a model from a :func:`save_pretrained` directory, a ``checkpoint_final``, or an
    export (a folder with ``manifest.json``, loaded by the exporter plugin that wrote it).

    The directory is untrusted: its ``model.toml`` cannot enable code execution
    (:func:`distrust`); ``overrides`` are the caller's own and may.
    """
    from microvlm.io.layout import load_weights, resolve_checkpoint
    from microvlm.models.exports import is_export, load_export
    from microvlm.plugins.manager import load_plugins
    from microvlm.recipes.load import build_model_config

    directory = resolve_checkpoint(path)
    plugins = load_plugins() if plugins is None else plugins
    if is_export(directory):  # microvlm export: the exporter named in its manifest loads it
        return load_export(directory, plugins, overrides)
    table_file = directory / MODEL_TABLE
    if not table_file.is_file():
        raise MicroVLMError(
            f"{directory}: no {MODEL_TABLE}; this is a step checkpoint, use checkpoint_final "
            "(or load its weights into a built model with model.load_checkpoint)"
        )
    table = distrust(read_model_table(table_file), str(table_file))
    meta = read_meta(directory)
    apply_options(table, {**_local_llm_sources(table, directory), **(overrides or {})}, str(table_file))
    model = cls.from_config(build_model_config(table, plugins, str(table_file)), plugins)
    load_model_weights(
        model, load_weights(directory), str(directory), require_all=meta.get("weights") == "all"
    )
    return model.eval()


__all__ = [
    "CODE_SETTINGS",
    "FORMAT",
    "LLM_DIR",
    "all_tensors",
    "apply_options",
    "distrust",
    "load_model_weights",
    "load_pretrained",
    "model_table",
    "read_meta",
    "read_model_table",
    "save_pretrained",
]
