"""The ``wandb`` logger: metrics and the run's resolved recipe to Weights & Biases.

Optional: ``pip install "microvlm-core[wandb]"`` (or ``pip install wandb``). It is off
unless a recipe lists it::

    [[loggers]]
    name = "wandb"
    project = "microvlm"
    mode = "offline"        # no network: runs are written under output_dir/wandb, sync later

or ``WANDB_PROJECT`` is set in the environment, in which case the runner adds it (with the
defaults below) to a recipe that does not list it. Empty settings fall back to wandb's own
``WANDB_*`` variables (``WANDB_ENTITY``, ``WANDB_MODE``...); ``WANDB_MODE=disabled`` turns it
into a no-op. The run config is the resolved recipe minus every key that names a credential
(see :func:`scrub`). A resumed run continues the same W&B run: its id is kept in
``output_dir/wandb_run_id``. Importing this module does not import wandb.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import attrs

from microvlm.errors import MicroVLMError

INSTALL_HINT = 'pip install "microvlm-core[wandb]"'
RUN_ID_FILE = "wandb_run_id"
#: Key words that mark a value as a credential (matched against the parts of a key split at _-.).
SECRET_WORDS = frozenset({"token", "key", "auth"})
#: Substrings that mark a key as a credential wherever they appear in it.
SECRET_SUBSTRINGS = ("secret", "password", "passwd", "apikey", "api_key", "credential")


@attrs.frozen
class WandbLoggerConfig:
    """``[[loggers]] name = "wandb"``. Empty strings defer to wandb's ``WANDB_*`` variables."""

    project: str = ""  # W&B project; "" = WANDB_PROJECT, else "microvlm"
    entity: str = ""  # team or user; "" = WANDB_ENTITY or your default entity
    name: str = ""  # display name of the run; "" = the recipe's run.name
    mode: Literal["", "online", "offline", "disabled"] = ""  # "" = WANDB_MODE, else online
    tags: tuple[str, ...] = ()  # labels shown in the W&B UI
    group: str = ""  # groups runs (e.g. the stages of a pipeline); "" = none


def _is_secret(key: str) -> bool:
    lowered = key.lower()
    parts = re.split(r"[_\-.\s]+", lowered)
    return any(p in SECRET_WORDS for p in parts) or any(s in lowered for s in SECRET_SUBSTRINGS)


def scrub(value: Any) -> Any:
    """A copy of a nested table without the keys that name credentials (``hf_token``,
    ``api_key``, ``secret``, ``password``...). ``tokenizer`` and ``max_text_tokens`` stay."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if not _is_secret(str(k))}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value


def _import_wandb() -> Any:
    try:
        import wandb
    except ImportError:
        raise MicroVLMError(
            f"the 'wandb' logger needs the wandb package, which is not installed: {INSTALL_HINT} "
            "(or remove the [[loggers]] entry / unset WANDB_PROJECT)"
        ) from None
    return wandb


class WandbLogger:
    """Built as ``factory(config, run_dir=Path, run_config=dict)``; ``log`` / ``close``."""

    def __init__(
        self,
        config: WandbLoggerConfig,
        *,
        run_dir: str | Path,
        run_config: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        wandb = _import_wandb()
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        table = scrub(run_config or {})
        id_file = run_dir / RUN_ID_FILE
        run_id = id_file.read_text().strip() if id_file.is_file() else ""
        kwargs: dict[str, Any] = {
            "project": config.project or os.environ.get("WANDB_PROJECT") or "microvlm",
            "entity": config.entity or None,
            "name": config.name or table.get("run", {}).get("name") or None,
            "mode": config.mode or None,
            "tags": list(config.tags) or None,
            "group": config.group or None,
            "config": table,
            "dir": str(run_dir),
            "resume": "allow",
        }
        if run_id:
            kwargs["id"] = run_id
        self.run = wandb.init(**{k: v for k, v in kwargs.items() if v is not None})
        new_id = getattr(self.run, "id", None)
        if new_id and not run_id:
            id_file.write_text(f"{new_id}\n")

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(dict(metrics), step=step)

    def close(self) -> None:
        self.run.finish()


__all__ = ["INSTALL_HINT", "WandbLogger", "WandbLoggerConfig", "scrub"]
