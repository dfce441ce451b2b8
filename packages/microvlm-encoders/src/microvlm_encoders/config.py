"""Recipe settings of the image encoders (``[model.encoder]``). Light: no torch or timm."""

from __future__ import annotations

from typing import Literal

import attrs

from microvlm.recipes import validators as v

#: The seed's encoder names (it spells DeiT "DiET") and their timm architectures.
DEIT_MODELS: dict[str, str] = {
    "diet_tiny": "deit_tiny_patch16_224",  # 192-d, 12 layers, 3 heads, 5.7 M params
    "diet_small": "deit_small_patch16_224",  # 384-d, 12 layers, 6 heads, 22 M params
}

#: Values of ``pretrained`` that are not paths.
PRETRAINED_TIMM = "timm"
PRETRAINED_NONE = "none"


@attrs.frozen
class EncoderConfig:
    """``[model.encoder]`` of ``diet_tiny`` / ``diet_small`` (and their ``deit_*`` aliases)."""

    # "timm" = timm's pretrained weights (downloaded from the hub), "none" = random init, or a
    # local path: a .safetensors file or a folder holding model.safetensors (+ timm config.json)
    pretrained: str = attrs.field(default=PRETRAINED_TIMM, validator=v.non_empty)
    image_size: int = attrs.field(default=224, validator=v.positive)  # input side in pixels (square)
    # true: no autograd, eval mode even when the parent trains, parameters left out of the optimizer
    freeze: bool = True
    # "patch": patch tokens only [B, N, D_v]; "all": prefix (class/distillation) tokens + patches
    output: Literal["patch", "all"] = attrs.field(default="patch", validator=v.one_of(("patch", "all")))


@attrs.frozen
class TimmEncoderConfig(EncoderConfig):
    """``[model.encoder] name = "timm"``: any timm model by name."""

    # timm registry name, optionally with a pretrained tag ("vit_small_patch16_224.augreg_in21k")
    model: str = attrs.field(default="deit_tiny_patch16_224", validator=v.non_empty)
    # Architecture changes for a model trained from scratch (pretrained = "none"), e.g. a small
    # DeiT at low resolution; 0 keeps the model's own value. ViT-family models accept them.
    patch_size: int = attrs.field(default=0, validator=v.non_negative)  # patch side, pixels
    embed_dim: int = attrs.field(default=0, validator=v.non_negative)  # token width D_v
    depth: int = attrs.field(default=0, validator=v.non_negative)  # transformer blocks
    num_heads: int = attrs.field(default=0, validator=v.non_negative)  # attention heads

    def architecture_args(self) -> dict[str, int]:
        """The non-zero architecture overrides, as timm ``create_model`` keyword arguments."""
        names = ("patch_size", "embed_dim", "depth", "num_heads")
        return {n: getattr(self, n) for n in names if getattr(self, n)}


__all__ = ["DEIT_MODELS", "PRETRAINED_NONE", "PRETRAINED_TIMM", "EncoderConfig", "TimmEncoderConfig"]
