"""Local encoder weights: find the .safetensors file, load it into a timm model, report misfits.

Only safetensors is read (a pickle can run code). The state dict goes through the model's timm
checkpoint filter, the same one timm applies to its own hub weights, so weights saved at another
resolution load with their position embeddings resampled to the model's grid.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from microvlm.errors import MicroVLMError

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"  # timm / Hugging Face folder layout
CONFIG_NAME = "config.json"  # timm's folder config: architecture, pretrained_cfg (mean, std, ...)
_STRIPPED_PREFIXES = ("module.", "model.")  # DataParallel / a wrapper's attribute name
_SHOWN_KEYS = 8  # keys listed in an error before "(+N more)"


def find_weights(pretrained: str) -> tuple[Path, dict[str, Any]]:
    """``pretrained`` path -> (the .safetensors file, the folder's timm config or ``{}``)."""
    path = Path(pretrained).expanduser()
    if path.is_dir():
        file = path / WEIGHTS_NAME
        if not file.is_file():
            found = sorted(p.name for p in path.glob("*.safetensors"))
            if len(found) != 1:
                pickles = sorted(p.name for p in path.iterdir() if p.suffix in (".bin", ".pth", ".pt"))
                hint = f" (found {', '.join(pickles)}: only safetensors is loaded)" if pickles else ""
                listed = f"; it holds {', '.join(found)}" if found else ""
                raise MicroVLMError(
                    f"encoder weights: folder {path} has no {WEIGHTS_NAME}{listed}{hint}. "
                    f"Point pretrained at a .safetensors file or a folder with {WEIGHTS_NAME}."
                )
            file = path / found[0]
        return file, _read_folder_config(path / CONFIG_NAME)
    if path.is_file():
        if path.suffix != ".safetensors":
            raise MicroVLMError(
                f"encoder weights: {path} is not a .safetensors file; only safetensors is loaded "
                f"(pickled .pth/.bin files can run code). Convert it with safetensors.torch.save_file."
            )
        return path, {}
    raise MicroVLMError(
        f'encoder pretrained = {pretrained!r}: no such file or folder. Use "timm" (timm\'s pretrained '
        f'weights), "none" (random init), a .safetensors file or a folder holding {WEIGHTS_NAME}.'
    )


def _read_folder_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MicroVLMError(f"encoder weights: cannot read {path}: {exc}") from exc
    if not isinstance(config, dict):
        raise MicroVLMError(f"encoder weights: {path} must hold a JSON object")
    return config


def check_architecture(folder_config: dict[str, Any], architecture: str, file: Path) -> None:
    """Fail early when a timm folder says its weights belong to another architecture."""
    saved = folder_config.get("architecture")
    if isinstance(saved, str) and saved.split(".")[0] != architecture.split(".", maxsplit=1)[0]:
        raise MicroVLMError(
            f"encoder weights: {file.parent / CONFIG_NAME} says these weights are timm '{saved}', "
            f"but the encoder builds '{architecture}'. Pick the matching encoder (name = \"timm\", "
            f'model = "{saved}") or other weights.'
        )


def load_weights(model: Any, file: Path, architecture: str) -> None:
    """Load ``file`` into the timm ``model`` strictly; a misfit raises naming the file and keys."""
    import safetensors.torch

    try:
        state = safetensors.torch.load_file(str(file), device="cpu")
    except Exception as exc:
        raise MicroVLMError(f"encoder weights: cannot read {file} as safetensors: {exc}") from exc
    state = _strip_prefixes(state)
    try:
        state = _timm_filter(state, model, architecture)
    except Exception as exc:
        raise MicroVLMError(f"encoder weights: {file} does not fit timm '{architecture}': {exc}") from exc
    _drop_classifier(state, model)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # size mismatches
        raise MicroVLMError(f"encoder weights: {file} does not fit timm '{architecture}': {exc}") from exc
    problems = []
    if result.missing_keys:
        problems.append(f"missing keys: {_show(result.missing_keys)}")
    if result.unexpected_keys:
        problems.append(f"unexpected keys: {_show(result.unexpected_keys)}")
    if problems:
        raise MicroVLMError(
            f"encoder weights: {file} does not fit timm '{architecture}'; " + "; ".join(problems)
        )
    logger.info("encoder %s: loaded %d tensors from %s", architecture, len(state), file)


def _strip_prefixes(state: dict[str, Any]) -> dict[str, Any]:
    changed = True
    while changed and state:
        changed = False
        for prefix in _STRIPPED_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
    return state


def _timm_filter(state: dict[str, Any], model: Any, architecture: str) -> dict[str, Any]:
    """Apply the ``checkpoint_filter_fn`` of the timm module that defines the architecture."""
    from timm.models import model_entrypoint

    module = sys.modules.get(model_entrypoint(architecture.split(".", maxsplit=1)[0]).__module__)
    filter_fn = getattr(module, "checkpoint_filter_fn", None)
    if filter_fn is None:
        return state
    try:
        return filter_fn(state, model)
    except TypeError:  # older filters take the state dict only (as timm itself allows)
        return filter_fn(state)


def _drop_classifier(state: dict[str, Any], model: Any) -> None:
    """The encoder is built headless (num_classes=0); a saved classifier head is not a misfit."""
    classifiers = model.pretrained_cfg.get("classifier") or ()
    classifiers = (classifiers,) if isinstance(classifiers, str) else tuple(classifiers)
    own = set(model.state_dict())
    for key in [k for k in state if k not in own]:
        if any(key.startswith(f"{c}.") for c in classifiers):
            del state[key]


def _show(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN_KEYS])
    return shown + (f" (+{len(keys) - _SHOWN_KEYS} more)" if len(keys) > _SHOWN_KEYS else "")


__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "check_architecture", "find_weights", "load_weights"]
