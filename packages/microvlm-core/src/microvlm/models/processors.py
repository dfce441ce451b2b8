"""Image processors: a PIL image (or a ``[3, H, W]`` uint8 tensor) -> a normalised float ``[3, S, S]``.

``ImageEvalProcessor`` is deterministic: resize to ``S x S`` (the whole image, so normalised box
coordinates stay valid), or, with ``crop_pct``, resize the short side to ``S / crop_pct`` and
centre-crop ``S`` as timm evaluates ImageNet models. ``ImageTrainProcessor`` augments with a
random resized crop and, only when asked, a horizontal flip: a flip swaps "left" and "right" in
questions and moves boxes, and a crop can cut a box out, so grounding data wants the eval
processor. Both are built with torchvision transforms v2 and take their normalisation from the
encoder's pretrained config through :meth:`from_data_config` (``encoder.data_config``).

Importing this module is light: torch and torchvision are imported when a processor is created.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # DeiT's (timm's ImageNet) normalisation
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("nearest", "nearest-exact", "bilinear", "bicubic")  # names torchvision v2 accepts


class _ImageProcessor:
    """Shared parts: argument checks, normalisation, ``__call__`` and ``from_data_config``."""

    def __init__(
        self,
        image_size: int | tuple[int, int],
        mean: Sequence[float],
        std: Sequence[float],
        interpolation: str,
    ) -> None:
        self.size = _size(image_size)  # (height, width) of the output in pixels
        self.mean = _triple("mean", mean)  # per-channel mean of [0, 1] pixel values
        self.std = _triple("std", std)  # per-channel standard deviation
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}"
            )
        self.interpolation = interpolation
        self.transform = self._build()

    @property
    def image_size(self) -> int | tuple[int, int]:
        """The output side ``S`` (or ``(H, W)`` when not square)."""
        h, w = self.size
        return h if h == w else (h, w)

    def _build(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _finish(self, v2: Any, torch: Any) -> list[Any]:
        return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(self.mean), list(self.std))]

    def _mode(self, v2: Any) -> Any:
        return v2.InterpolationMode(self.interpolation)

    def __call__(self, image: Any) -> Any:
        """PIL image (any mode, made RGB), uint8 tensor ``[3, H, W]`` or HWC array -> ``[3, S, S]``."""
        from PIL import Image

        if isinstance(image, Image.Image) and image.mode != "RGB":
            image = image.convert("RGB")  # L, RGBA, P, CMYK -> 3 channels
        return self.transform(image)

    @classmethod
    def from_data_config(
        cls, data_config: Mapping[str, Any], train: bool | None = None, **overrides: Any
    ) -> _ImageProcessor:
        """A processor for an encoder's ``data_config`` (timm keys: input_size, mean, std, interpolation).

        ``train`` picks :class:`ImageTrainProcessor` (True) or :class:`ImageEvalProcessor` (False);
        ``None`` builds the class it is called on. ``overrides`` are constructor arguments. The
        config's ``crop_pct`` is not taken over on purpose (the default keeps the whole image);
        pass ``crop_pct=data_config["crop_pct"]`` to evaluate exactly as timm does.
        """
        target = cls if train is None else (ImageTrainProcessor if train else ImageEvalProcessor)
        kwargs: dict[str, Any] = {}
        if "input_size" in data_config:
            h, w = (int(v) for v in data_config["input_size"][-2:])
            kwargs["image_size"] = h if h == w else (h, w)
        for key in ("mean", "std", "interpolation"):
            if key in data_config:
                kwargs[key] = data_config[key]
        kwargs.update(overrides)
        return target(**kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.transform})"


class ImageEvalProcessor(_ImageProcessor):
    """Deterministic: resize (optionally resize + centre crop), to float, normalise."""

    def __init__(
        self,
        image_size: int | tuple[int, int] = 224,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        interpolation: str = "bicubic",
        crop_pct: float | None = None,
    ) -> None:
        if crop_pct is not None and not 0 < crop_pct <= 1:
            raise ValueError(f"crop_pct must be in (0, 1], got {crop_pct}")
        self.crop_pct = crop_pct  # None: squash the whole image to S x S; else resize S/crop_pct, crop S
        super().__init__(image_size, mean, std, interpolation)

    def _build(self) -> Any:
        import torch
        from torchvision.transforms import v2

        if self.crop_pct is None:
            resize = [v2.Resize(self.size, interpolation=self._mode(v2), antialias=True)]
        else:
            short = int(min(self.size) / self.crop_pct)
            resize = [
                v2.Resize(short, interpolation=self._mode(v2), antialias=True),
                v2.CenterCrop(self.size),
            ]
        return v2.Compose([v2.ToImage(), *resize, *self._finish(v2, torch)])


class ImageTrainProcessor(_ImageProcessor):
    """Random resized crop (``scale`` of the area), optional horizontal flip, to float, normalise."""

    def __init__(
        self,
        image_size: int | tuple[int, int] = 224,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        interpolation: str = "bicubic",
        scale: tuple[float, float] = (0.5, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        hflip: bool = False,
    ) -> None:
        lo, hi = (float(v) for v in scale)
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {tuple(scale)}")
        self.scale = (lo, hi)  # range of the crop's share of the image area
        self.ratio = (float(ratio[0]), float(ratio[1]))  # range of the crop's aspect ratio (w / h)
        self.hflip = hflip  # flips swap left/right in texts and move boxes: off by default
        super().__init__(image_size, mean, std, interpolation)

    def _build(self) -> Any:
        import torch
        from torchvision.transforms import v2

        steps = [
            v2.ToImage(),
            v2.RandomResizedCrop(
                self.size, scale=self.scale, ratio=self.ratio, interpolation=self._mode(v2), antialias=True
            ),
        ]
        if self.hflip:
            steps.append(v2.RandomHorizontalFlip())
        return v2.Compose([*steps, *self._finish(v2, torch)])


def _size(image_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        h = w = image_size
    else:
        h, w = (int(v) for v in image_size)
    if h < 1 or w < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    return h, w


def _triple(name: str, values: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(v) for v in values)
    if len(values) != 3:
        raise ValueError(f"{name} needs one value per RGB channel, got {values}")
    return values  # type: ignore[return-value]


__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ImageEvalProcessor", "ImageTrainProcessor"]
