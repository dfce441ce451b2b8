"""A third-party MicroVLM plugin: a toy patch encoder and an in-memory toy dataset."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import attrs

from microvlm import hookimpl
from microvlm.data import ImageRef, Sample


@attrs.frozen
class PatchEncoderConfig:
    width: int = 16  # output feature width D_v
    patch: int = 8  # patch side, pixels
    image_size: int = 32  # input side, pixels


@attrs.frozen
class ColoursConfig:
    n: int = 4  # number of samples
    image_size: int = 16  # side of the generated images, pixels


def build_patch_encoder(config: PatchEncoderConfig) -> Any:
    import torch
    from torch import nn

    class PatchEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Conv2d(3, config.width, config.patch, stride=config.patch)
            self.out_dim = config.width
            self.data_config = {
                "input_size": (3, config.image_size, config.image_size),
                "mean": (0.5, 0.5, 0.5),
                "std": (0.5, 0.5, 0.5),
            }
            side = config.image_size // config.patch
            self.patch_grid = (side, side)  # one token per patch, row by row, no CLS token

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            x = self.proj(images)  # (B, D_v, H/p, W/p)
            return x.flatten(2).transpose(1, 2)  # (B, N, D_v)

    return PatchEncoder()


class Colours:
    """Plain-coloured images captioned with their colour."""

    COLOURS = (("red", (255, 0, 0)), ("green", (0, 255, 0)), ("blue", (0, 0, 255)))
    skipped: Mapping[str, int] = MappingProxyType({})  # nothing is read from disk, nothing skipped
    skipped_examples: Mapping[str, Sequence[str]] = MappingProxyType({})
    records_read = 0  # no annotation file

    def __init__(self, config: ColoursConfig) -> None:
        self.config = config

    def __len__(self) -> int:
        return self.config.n

    def __getitem__(self, i: int) -> Sample:
        from PIL import Image

        if not 0 <= i < self.config.n:
            raise IndexError(f"toy_colours has {self.config.n} samples, no index {i}")
        name, rgb = self.COLOURS[i % len(self.COLOURS)]
        buffer = io.BytesIO()
        Image.new("RGB", (self.config.image_size,) * 2, rgb).save(buffer, format="PNG")
        return Sample(
            id=str(i),
            image=ImageRef(data=buffer.getvalue()),
            dataset="toy_colours",
            captions=(f"a {name} square",),
        )

    def __iter__(self) -> Iterator[Sample]:
        return (self[i] for i in range(self.config.n))


@hookimpl
def register_encoders(register):
    register("toy_patch", build_patch_encoder, PatchEncoderConfig, description="toy conv patch encoder")


@hookimpl
def register_datasets(register):
    register("toy_colours", Colours, ColoursConfig, description="plain-colour images with captions")
