"""A timm image model as a MicroVLM encoder: images ``[B, 3, S, S]`` -> patch features ``[B, N, D_v]``.

The model is built headless (``num_classes=0``) at the recipe's ``image_size`` and its
``forward_features`` output is reshaped to tokens: a ViT's ``[B, P+N, D_v]`` (P prefix tokens:
class, distillation, registers) keeps the N patch tokens or all of them; a CNN's feature map
``[B, D_v, H, W]`` becomes ``[B, H*W, D_v]``. References: DeiT (Touvron et al., 2021,
arXiv:2012.12877) and timm (https://github.com/huggingface/pytorch-image-models).
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any

import timm
import torch
from torch import nn

from microvlm.errors import MicroVLMError, did_you_mean
from microvlm_encoders.config import PRETRAINED_NONE, PRETRAINED_TIMM, EncoderConfig, TimmEncoderConfig
from microvlm_encoders.weights import check_architecture, find_weights, load_weights

logger = logging.getLogger(__name__)

_DATA_KEYS = ("mean", "std", "interpolation", "crop_pct", "crop_mode")  # taken from a folder's config.json


class TimmEncoder(nn.Module):
    """Wraps a headless timm model; ``out_dim`` is D_v, ``data_config`` feeds the image processors."""

    def __init__(self, model: nn.Module, config: EncoderConfig, architecture: str, data_config: dict) -> None:
        super().__init__()
        self.model = model
        self.architecture = architecture  # timm name, e.g. "deit_tiny_patch16_224"
        self.image_size = config.image_size  # input side in pixels
        self.output = config.output  # "patch" or "all"
        self.frozen = config.freeze  # no autograd, eval mode, no trainable parameters
        self.out_dim: int = int(model.num_features)  # D_v
        self.num_prefix_tokens: int = int(getattr(model, "num_prefix_tokens", 0))  # P of a ViT, 0 for a CNN
        self.output_fmt: str = str(getattr(model, "output_fmt", "NCHW"))  # layout of a 4-D feature map
        self.grid_size: tuple[int, int] | None = _grid_size(model, config.image_size)  # patches per side
        # (rows, cols) of the output tokens that follow the prefix ones (none with "patch"), in row
        # order: a ViT's patch grid, a CNN's last feature map; None when the model has neither.
        self.patch_grid: tuple[int, int] | None = self.grid_size
        self.data_config = data_config  # input_size, mean, std, interpolation, crop_pct, crop_mode
        if self.frozen:
            self.model.requires_grad_(False)
            self.model.eval()

    def train(self, mode: bool = True) -> TimmEncoder:
        """Like ``nn.Module.train``, but a frozen encoder stays in eval mode (no dropout, fixed norms)."""
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` -> ``[B, N, D_v]`` (``[B, P+N, D_v]`` with ``output = "all"``)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                f"encoder {self.architecture}: expected images [B, 3, H, W], got {tuple(images.shape)}"
            )
        grad = torch.no_grad() if self.frozen else contextlib.nullcontext()
        with grad:
            feats = self.model.forward_features(images)
        if feats.ndim == 4:
            if self.output_fmt == "NHWC":
                return feats.flatten(1, 2)  # [B, H, W, D_v] -> [B, N, D_v]
            return feats.flatten(2).transpose(1, 2)  # [B, D_v, H, W] -> [B, N, D_v]
        if self.output == "patch":
            return feats[:, self.num_prefix_tokens :]  # [B, P+N, D_v] -> [B, N, D_v]
        return feats

    def extra_repr(self) -> str:
        return (
            f"architecture={self.architecture!r}, out_dim={self.out_dim}, "
            f"frozen={self.frozen}, output={self.output!r}"
        )


def build_timm_encoder(architecture: str, config: EncoderConfig) -> TimmEncoder:
    """Build ``architecture`` (a timm name, optionally ``name.tag``) with the weights ``config`` asks for."""
    base = architecture.split(".", maxsplit=1)[0]
    if not timm.is_model(base):
        hint = did_you_mean(base, timm.list_models())
        raise MicroVLMError(f"encoder: timm has no model {architecture!r}{hint}; see timm.list_models()")
    kwargs: dict[str, Any] = {"num_classes": 0}
    if isinstance(config, TimmEncoderConfig):
        kwargs.update(config.architecture_args())
        if kwargs.keys() > {"num_classes"} and config.pretrained == PRETRAINED_TIMM:
            raise MicroVLMError(
                f"encoder {architecture}: patch_size/embed_dim/depth/num_heads change the architecture, "
                'so timm\'s pretrained weights do not fit; use pretrained = "none" (or your own weights)'
            )
    pretrained_cfg = timm.models.get_pretrained_cfg(base)
    if pretrained_cfg is not None and pretrained_cfg.fixed_input_size:
        kwargs["img_size"] = config.image_size  # ViTs size their position embeddings to it

    folder_config: dict[str, Any] = {}
    if config.pretrained == PRETRAINED_TIMM:
        model = _create_from_hub(architecture, kwargs)
    else:
        file = None
        if config.pretrained != PRETRAINED_NONE:
            file, folder_config = find_weights(config.pretrained)
            check_architecture(folder_config, architecture, file)
        model = _create(architecture, kwargs, skip_init=file is not None)
        if file is not None:
            load_weights(model, file, architecture)

    patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
    if patch is not None and (config.image_size % patch[0] or config.image_size % patch[1]):
        raise MicroVLMError(
            f"encoder {architecture}: image_size = {config.image_size} is not a multiple of its "
            f"patch size {tuple(patch)}; pick e.g. {config.image_size // patch[0] * patch[0] or patch[0]}"
        )
    data_config = _data_config(model, config.image_size, folder_config)
    logger.info("encoder %s: %s weights, image_size %d", architecture, config.pretrained, config.image_size)
    return TimmEncoder(model, config, architecture, data_config)


def _create(architecture: str, kwargs: dict[str, Any], skip_init: bool = False) -> nn.Module:
    """Build with random weights; ``skip_init`` when a file will overwrite them all anyway.

    Random init is most of a ViT's build time (timm's truncated normal); timm ViTs accept
    ``weight_init="skip"``, other models refuse the argument and are built as usual. Skipped
    weights never leak: loading fails on any missing key.
    """
    if skip_init:
        try:
            return timm.create_model(architecture, pretrained=False, weight_init="skip", **kwargs)
        except TypeError as exc:
            if "weight_init" not in str(exc):
                raise MicroVLMError(
                    f"encoder: timm cannot build {architecture!r} with {kwargs}: {exc}"
                ) from exc
    try:
        return timm.create_model(architecture, pretrained=False, **kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise MicroVLMError(f"encoder: timm cannot build {architecture!r} with {kwargs}: {exc}") from exc


def _create_from_hub(architecture: str, kwargs: dict[str, Any]) -> nn.Module:
    try:
        return timm.create_model(architecture, pretrained=True, **kwargs)
    except Exception as exc:
        raise MicroVLMError(
            f"encoder {architecture}: could not get timm's pretrained weights ({type(exc).__name__}: {exc}). "
            f"Without network access, download them once elsewhere and set pretrained to a local "
            f'.safetensors file or folder, or use pretrained = "none" for random weights.'
        ) from exc


def _data_config(model: nn.Module, image_size: int, folder_config: dict[str, Any]) -> dict[str, Any]:
    """timm's preprocessing config of ``model`` (a folder's config.json wins), at ``image_size``."""
    resolved = dict(timm.data.resolve_model_data_config(model))
    saved = folder_config.get("pretrained_cfg") or {}
    resolved.update({k: saved[k] for k in _DATA_KEYS if saved.get(k) is not None})
    channels = int(resolved.get("input_size", (3,))[0])
    return {
        "input_size": (channels, image_size, image_size),
        "mean": tuple(float(v) for v in resolved["mean"]),
        "std": tuple(float(v) for v in resolved["std"]),
        "interpolation": str(resolved.get("interpolation", "bicubic")),
        "crop_pct": float(resolved.get("crop_pct", 1.0)),
        "crop_mode": str(resolved.get("crop_mode", "center")),
    }


def _grid_size(model: nn.Module, image_size: int) -> tuple[int, int] | None:
    """The token grid of ``forward_features``: a ViT's patch-embed grid (its tokens after the
    prefix ones are the patches in row order); otherwise the last feature map's, from its
    reduction (a CNN, or a hierarchical ViT whose patch-embed grid is merged down later)."""
    grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
    if grid is not None and hasattr(model, "num_prefix_tokens"):
        return (int(grid[0]), int(grid[1]))
    info = getattr(model, "feature_info", None)
    if info:
        side = math.ceil(image_size / int(info[-1]["reduction"]))  # strided layers round up
        return (side, side)
    if grid is not None:
        return (int(grid[0]), int(grid[1]))
    return None


__all__ = ["TimmEncoder", "build_timm_encoder"]
