"""Image encoders of microvlm-encoders: hook implementations only; heavy imports live in the factories."""

from __future__ import annotations

from microvlm import hookimpl
from microvlm.plugins.manager import Register
from microvlm_encoders.config import DEIT_MODELS, EncoderConfig, TimmEncoderConfig
from microvlm_encoders.factories import TimmEncoderFactory

_DEIT_LABELS = {"diet_tiny": "DeiT-Tiny, 192-d", "diet_small": "DeiT-Small, 384-d"}


@hookimpl
def register_encoders(register: Register) -> None:
    for name, architecture in DEIT_MODELS.items():
        factory = TimmEncoderFactory(architecture)
        register(name, factory, EncoderConfig, description=f"{_DEIT_LABELS[name]} (timm {architecture})")
        register(name.replace("diet", "deit"), factory, EncoderConfig, description=f"alias of {name}")
    register(
        "timm", TimmEncoderFactory(), TimmEncoderConfig, description="any timm model by name (model = ...)"
    )
