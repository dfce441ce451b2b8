"""A web shard with corrupt images, read the way training reads it: the bad images are skipped,
counted by reason, and a dataset with too many of them stops the run with a message naming it."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
import torch

import microvlm
from microvlm.data import Example, Segment
from microvlm.data.sources import build_sources
from microvlm.errors import MicroVLMError
from microvlm.recipes.config import ComponentSpec, DataConfig
from microvlm.train.data import BadDataMonitor, Collate, EpochDataset, StepSampler, epoch_order


class Caption:
    def example(self, sample: Any, rng: Any, tokenizer: Any = None) -> Example:
        return Example((Segment(sample.captions[0], target=True),))


class Plugins:
    """The real dataset plugins, a stand-in task (this package does not depend on the tasks)."""

    def __init__(self) -> None:
        self.real = microvlm.load_plugins()

    def build(self, kind: str, name: str, config: Any) -> Any:
        return self.real.build(kind, name, config) if kind == "dataset" else Caption()


class Processor:
    def __call__(self, image: Any) -> torch.Tensor:
        return torch.zeros(3, 4, 4) + image.getpixel((0, 0))[0]


class Tokenizer:
    pad_token_id = 0

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [ord(c) % 250 + 1 for c in text]}


def _write_shard(path: Path, images: list[bytes]) -> None:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for i, jpeg in enumerate(images):
            key = f"{i:09d}"
            for ext, data in (("jpg", jpeg), ("json", json.dumps({"key": key}).encode()), ("txt", b"a cat")):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def shard_root(tmp_path: Path, jpeg_bytes) -> Path:
    """20 samples; sample 3's image is not an image, sample 11's is cut in half."""
    images = [jpeg_bytes((16, 16), (10 * i, 0, 0)) for i in range(20)]
    images[3] = b"\x00" * 300
    images[11] = images[11][: len(images[11]) // 2]
    _write_shard(tmp_path / "00000.tar", images)
    return tmp_path


def _entry(root: Path) -> DataConfig:
    plugins = microvlm.load_plugins()
    config = plugins.get("dataset", "webdataset").config_cls(root=str(root))
    return DataConfig(ComponentSpec("webdataset", config), ComponentSpec("caption", None))


def _epoch(root: Path) -> tuple[list, list]:
    sources = build_sources([_entry(root)], Plugins())
    order = epoch_order(sources, 0, seed=1)
    data = EpochDataset(sources, order, Processor(), Tokenizer(), seed=1, epoch=0)
    loader = torch.utils.data.DataLoader(
        data, batch_sampler=StepSampler(len(order), 5), collate_fn=Collate(Tokenizer(), 16)
    )
    return sources, list(loader)


def test_a_corrupt_image_in_a_shard_is_skipped_and_counted(shard_root: Path) -> None:
    sources, batches = _epoch(shard_root)
    assert sum(b.images.shape[0] for b in batches) == 20  # every position filled
    bad = sorted((b.index, b.reason, b.where) for batch in batches for b in batch.bad)
    shard = str(shard_root / "00000.tar")
    assert bad == [
        (3, "not_image", f"{shard}[000000003.jpg]"),
        (11, "truncated", f"{shard}[000000011.jpg]"),
    ]
    monitor = BadDataMonitor(sources, max_fraction=0.5)
    for batch in batches:
        monitor.update(batch)
    metrics = monitor.end_epoch(0)
    assert metrics["data/skipped"] == 2 and metrics["data/skipped/not_image"] == 1
    assert metrics["data/skipped/truncated"] == 1 and metrics["data/skipped_fraction"] == 0.1


def test_too_many_corrupt_images_stop_the_run_naming_the_dataset_and_files(shard_root: Path) -> None:
    sources, batches = _epoch(shard_root)
    monitor = BadDataMonitor(sources)  # run.max_bad_fraction's default: 1 %
    for batch in batches:
        monitor.update(batch)
    with pytest.raises(MicroVLMError) as info:
        monitor.end_epoch(0)
    message = str(info.value)
    assert message.startswith("webdataset/caption: 2 of 20 samples")
    assert "not_image 1, truncated 1" in message and "000000003.jpg] (not_image)" in message
    assert "run.max_bad_fraction = 0.01" in message
