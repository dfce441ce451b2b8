"""Image processors: shapes, normalisation, crops, augmentation switches, data-config wiring."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest
import torch
from PIL import Image

from microvlm.models.processors import IMAGENET_MEAN, IMAGENET_STD, ImageEvalProcessor, ImageTrainProcessor

COLOR = (200, 100, 50)


def expected(color: tuple[int, int, int], mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    return torch.tensor([(c / 255 - m) / s for c, m, s in zip(color, mean, std, strict=True)])


@pytest.mark.parametrize("processor", [ImageEvalProcessor(image_size=32), ImageTrainProcessor(image_size=32)])
def test_a_pil_image_becomes_a_normalised_float_tensor(processor: object) -> None:
    out = processor(Image.new("RGB", (70, 45), COLOR))
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    want = expected(COLOR, IMAGENET_MEAN, IMAGENET_STD)[:, None, None].expand(3, 32, 32)
    torch.testing.assert_close(out, want, atol=1e-5, rtol=0)


def test_the_seed_quick_start_call_works() -> None:
    batch = ImageEvalProcessor(image_size=224)(Image.new("RGB", (320, 240), COLOR)).unsqueeze(0)
    assert batch.shape == (1, 3, 224, 224)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_other_image_modes_become_rgb(mode: str) -> None:
    image = Image.new("RGB", (20, 20), COLOR).convert(mode)
    assert ImageEvalProcessor(image_size=16)(image).shape == (3, 16, 16)


def test_a_uint8_tensor_is_accepted() -> None:
    image = torch.full((3, 40, 30), 128, dtype=torch.uint8)
    out = ImageEvalProcessor(image_size=16, mean=(0.5, 0.5, 0.5), std=(1, 1, 1))(image)
    torch.testing.assert_close(out, torch.full((3, 16, 16), 128 / 255 - 0.5))


def _left_strip_image() -> Image.Image:
    image = Image.new("RGB", (64, 32), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 16, 32))  # red left quarter
    return image


def test_the_default_eval_resize_keeps_the_whole_image() -> None:
    out = ImageEvalProcessor(image_size=32, mean=(0, 0, 0), std=(1, 1, 1))(_left_strip_image())
    assert out[0, :, 0].min() > 0.9  # red survives at the left edge
    cropped = ImageEvalProcessor(image_size=32, mean=(0, 0, 0), std=(1, 1, 1), crop_pct=0.875)(
        _left_strip_image()
    )
    assert cropped.shape == (3, 32, 32)
    assert cropped[0, :, 0].max() < 0.1  # timm-style centre crop cuts the red strip off


def test_train_crops_vary_and_flips_only_when_asked() -> None:
    image = _left_strip_image().resize((32, 32))
    whole = ImageEvalProcessor(image_size=16)(image)
    same_crop = {"image_size": 16, "scale": (1.0, 1.0), "ratio": (1.0, 1.0)}  # the whole square image
    torch.manual_seed(0)
    no_flip = [ImageTrainProcessor(**same_crop)(image) for _ in range(8)]
    assert all(torch.allclose(out, whole, atol=1e-5) for out in no_flip)
    flip = ImageTrainProcessor(**same_crop, hflip=True)
    outs = [flip(image) for _ in range(16)]
    assert any(torch.allclose(out, whole.flip(-1), atol=1e-5) for out in outs)
    assert any(torch.allclose(out, whole, atol=1e-5) for out in outs)
    crops = [ImageTrainProcessor(image_size=16, scale=(0.2, 0.5))(image) for _ in range(4)]
    assert any(not torch.allclose(crops[0], c) for c in crops[1:])


def test_from_data_config_takes_size_and_normalisation() -> None:
    data_config = {
        "input_size": (3, 48, 48),
        "mean": (0.5, 0.5, 0.5),
        "std": (0.25, 0.25, 0.25),
        "interpolation": "bilinear",
        "crop_pct": 0.9,
    }
    processor = ImageEvalProcessor.from_data_config(data_config)
    assert isinstance(processor, ImageEvalProcessor) and processor.crop_pct is None
    assert processor.interpolation == "bilinear" and processor.image_size == 48
    out = processor(Image.new("RGB", (30, 30), COLOR))
    want = expected(COLOR, (0.5,) * 3, (0.25,) * 3)[:, None, None].expand(3, 48, 48)
    torch.testing.assert_close(out, want, atol=1e-5, rtol=0)
    train = ImageEvalProcessor.from_data_config(data_config, train=True, hflip=True)
    assert isinstance(train, ImageTrainProcessor) and train.hflip and train.mean == (0.5, 0.5, 0.5)
    assert isinstance(ImageTrainProcessor.from_data_config(data_config), ImageTrainProcessor)
    assert ImageEvalProcessor.from_data_config(data_config, crop_pct=data_config["crop_pct"]).crop_pct == 0.9


def test_processors_pickle_for_dataloader_workers() -> None:
    processor = ImageTrainProcessor(image_size=16, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    clone = pickle.loads(pickle.dumps(processor))
    image = Image.new("RGB", (20, 20), COLOR)
    torch.testing.assert_close(clone(image), processor(image))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ImageEvalProcessor(std=(0.2, 0.0, 0.2)), "std must be positive"),
        (lambda: ImageEvalProcessor(mean=(0.5, 0.5)), "one value per RGB channel"),
        (lambda: ImageEvalProcessor(interpolation="lanczos"), "interpolation must be one of"),
        (lambda: ImageEvalProcessor(crop_pct=1.5), "crop_pct"),
        (lambda: ImageEvalProcessor(image_size=0), "image_size must be positive"),
        (lambda: ImageTrainProcessor(scale=(0.8, 0.5)), "scale must satisfy"),
    ],
)
def test_bad_arguments_are_refused(make: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_importing_the_module_is_light() -> None:
    code = "import sys, microvlm.models.processors\nassert 'torch' not in sys.modules and 'torchvision' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
