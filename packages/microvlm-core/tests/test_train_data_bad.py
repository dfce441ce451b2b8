"""Bad data in training: unreadable images are replaced deterministically, counted by reason,
reported at the end of an epoch, and stop the run above run.max_bad_fraction."""

from __future__ import annotations

import io
import json
import logging
import shutil
import tarfile
from pathlib import Path
from typing import Any

import attrs
import pytest
import torch

from microvlm import load_plugins
from microvlm.contracts.hookspecs import hookimpl
from microvlm.contracts.samples import ImageError
from microvlm.data import Example, ImageRef, Sample, Segment
from microvlm.data.sources import Source, build_sources
from microvlm.errors import MicroVLMError
from microvlm.recipes.config import RunConfig
from microvlm.recipes.load import load_recipe
from microvlm.testing.fixtures import tiny_llm_path
from microvlm.testing.toys import (
    ToyDataset,
    ToyDatasetConfig,
    ToyPlugin,
    run_until_checkpoint,
    toy_training_recipe,
)
from microvlm.train import run
from microvlm.train.data import (
    BadDataMonitor,
    Batch,
    Collate,
    EpochDataset,
    StepSampler,
)
from microvlm.train.dist import DistInfo


class Task:
    def example(self, sample: Sample, rng: Any, tokenizer: Any = None) -> Example:
        if not sample.captions:
            raise MicroVLMError(f"sample {sample.id} has no captions")
        return Example((Segment("describe:"), Segment(rng.choice(sample.captions), target=True)))


class Processor:
    def __call__(self, image: Any) -> torch.Tensor:
        import numpy as np

        pixels = torch.from_numpy(np.asarray(image.resize((4, 4)), dtype=np.float32))  # (4, 4, 3)
        return pixels.permute(2, 0, 1)  # (4, 4, 3) -> (3, 4, 4)


class Tokenizer:
    pad_token_id = 0

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [ord(c) % 250 + 1 for c in text]}


def _png(colour: tuple[int, int, int], fmt: str = "PNG") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def samples(tmp_path: Path) -> list[Sample]:
    """10 samples: 0 has a missing file, 4 is not an image, 7 a truncated JPEG; the rest are fine."""
    out = []
    for i in range(10):
        path = tmp_path / f"{i}.jpg"
        data = _png((i * 20, 0, 0), "JPEG")
        if i == 4:
            data = b"<html>not found</html>"
        elif i == 7:
            data = data[: len(data) // 2]
        if i != 0:
            path.write_bytes(data)
        out.append(Sample(str(i), ImageRef(path=str(path)), "toy", captions=(f"image {i}",)))
    return out


def _dataset(samples: list[Sample], order: list[tuple[int, int]] | None = None) -> EpochDataset:
    source = Source("toy/caption", samples, Task(), 1.0)
    order = order or [(0, i) for i in range(len(samples))]
    return EpochDataset([source], order, Processor(), Tokenizer(), seed=3, epoch=0)


def test_image_errors_name_the_file_and_the_reason(tmp_path: Path, samples: list[Sample]) -> None:
    reasons = {}
    for i in (0, 4, 7):
        with pytest.raises(ImageError) as info:
            samples[i].image.open()
        assert samples[i].image.path in str(info.value)
        reasons[i] = info.value.reason
    assert reasons == {0: "missing", 4: "not_image", 7: "truncated"}
    tar = tmp_path / "shard.tar"
    with tarfile.open(tar, "w") as t:
        info = tarfile.TarInfo("k.png")
        png = _png((1, 2, 3))
        info.size = len(png)
        t.addfile(info, io.BytesIO(png))
    with tarfile.open(tar) as t:
        member = t.getmember("k.png")
    ref = ImageRef(path=str(tar), member="k.png", offset=member.offset_data, length=member.size)
    assert ref.read_bytes() == png and ref.open().getpixel((0, 0)) == (1, 2, 3) and ref.data == b""
    beyond = ImageRef(path=str(tar), member="k.png", offset=tar.stat().st_size - 10, length=member.size)
    with pytest.raises(ImageError, match=r"shard\.tar\[k\.png\]") as info:
        beyond.open()
    assert info.value.reason == "truncated"


def test_bad_samples_are_replaced_the_same_way_every_time(samples: list[Sample]) -> None:
    data = _dataset(samples)
    items = [data[j] for j in range(10)]
    assert [(j, it.bad.reason) for j, it in enumerate(items) if it.bad] == [
        (0, "missing"),
        (4, "not_image"),
        (7, "truncated"),
    ]
    assert items[4].bad.where.endswith("4.jpg") and items[4].bad.index == 4
    good = [it.image for j, it in enumerate(items) if j not in (0, 4, 7)]
    assert all(items[j].image.shape == (3, 4, 4) for j in (0, 4, 7))  # a good sample took its place
    assert any(torch.equal(items[4].image, g) for g in good)
    again = [data[j] for j in range(10)]
    assert all(
        torch.equal(a.image, b.image) and a.example == b.example for a, b in zip(items, again, strict=True)
    )
    batch = Collate(Tokenizer(), 32)(items[:5])
    images, text = batch  # unpacks as the (images, text) pair the loop reads
    assert isinstance(batch, Batch) and images.shape == (5, 3, 4, 4) and text.input_ids.shape[0] == 5
    assert [b.reason for b in batch.bad] == ["missing", "not_image"] and batch.sources == (0,) * 5


def test_workers_skip_exactly_what_one_process_skips(samples: list[Sample]) -> None:
    data = _dataset(samples)

    def run(workers: int) -> list[Batch]:
        loader = torch.utils.data.DataLoader(
            data,
            batch_sampler=StepSampler(10, 2, start_step=1),
            collate_fn=Collate(Tokenizer(), 32),
            num_workers=workers,
        )
        return list(loader)

    alone, workers = run(0), run(2)
    assert len(alone) == 4  # resumed at step 1: positions 2..9
    assert [b.bad for b in alone] == [b.bad for b in workers]
    assert [[x.reason for x in b.bad] for b in alone] == [[], ["not_image"], ["truncated"], []]
    assert all(torch.equal(a.images, w.images) for a, w in zip(alone, workers, strict=True))


def test_a_dataset_of_unreadable_files_fails_at_once(samples: list[Sample]) -> None:
    broken = [
        Sample(s.id, ImageRef(path=s.image.path + ".gone"), "toy", captions=s.captions) for s in samples
    ]
    with pytest.raises(
        MicroVLMError, match=r"toy/caption: sample 3 and 16 others .* all unreadable.*3\.jpg\.gone"
    ):
        _dataset(broken)[3]


def test_monitor_stops_the_run_above_the_limit(samples: list[Sample]) -> None:
    data = _dataset(samples)
    monitor = BadDataMonitor(data.sources, max_fraction=0.2)  # min_seen 1000: checked at the epoch's end
    collate = Collate(Tokenizer(), 32)
    monitor.update(collate([data[j] for j in range(5)]))
    monitor.update(collate([data[j] for j in range(5, 10)]))
    with pytest.raises(MicroVLMError) as info:
        monitor.end_epoch(0)
    message = str(info.value)
    assert "toy/caption" in message and "3 of 10" in message and "run.max_bad_fraction = 0.2" in message
    assert "0.jpg (missing)" in message and "7.jpg (truncated)" in message


def test_monitor_raises_as_soon_as_enough_samples_are_seen(samples: list[Sample]) -> None:
    data = _dataset(samples)
    monitor = BadDataMonitor(data.sources, max_fraction=0.2, min_seen=4)
    with pytest.raises(MicroVLMError, match="2 of 5 samples"):
        monitor.update(Collate(Tokenizer(), 32)([data[j] for j in range(5)]))


def other_rank(signal: float = 0.0, seen: float = 0.0, bad: float = 0.0) -> DistInfo:
    """Rank 0 of 2, where the other rank adds its SIGTERM flag and its counts of the one data entry."""

    class OtherRank(DistInfo):
        def sum(self, values):  # type: ignore[override]
            assert len(values) == 3  # [signal, seen, bad]: the loop's one collective
            return [v + o for v, o in zip(values, (signal, seen, bad), strict=True)]

    return OtherRank(0, 2)


def test_a_distributed_run_judges_the_counts_of_all_processes_together(samples: list[Sample]) -> None:
    from microvlm.train.loop import stop_flags

    data = _dataset(samples)  # samples 0..4 hold 2 bad ones
    collate = Collate(Tokenizer(), 32)
    monitor = BadDataMonitor(data.sources, max_fraction=0.2, min_seen=8, world=2)
    monitor.update(collate([data[j] for j in range(5)]))  # 2 of 5 here: not judged alone
    assert stop_flags(other_rank(seen=5.0), False, monitor) is False  # 2 of 10 in all: within 20 %
    with pytest.raises(MicroVLMError) as info:  # 3 of 10 in all, on every rank at the same step
        stop_flags(other_rank(seen=5.0, bad=1.0), False, monitor)
    message = str(info.value)
    assert "toy/caption: 3 of 10 samples" in message and "by the 2 training processes" in message
    assert "This process skipped 2" in message and "0.jpg (missing)" in message

    clean = BadDataMonitor(data.sources, max_fraction=0.2, min_seen=8, world=2)
    clean.update(collate([data[j] for j in range(5, 7)]))  # 2 good samples
    assert stop_flags(other_rank(seen=4.0, bad=4.0), False, clean) is False  # 4 of 6: fewer than min_seen
    assert stop_flags(other_rank(signal=1.0), False, clean) is True  # the other rank got SIGTERM
    with pytest.raises(MicroVLMError, match="this process read none of them"):
        stop_flags(other_rank(seen=6.0, bad=4.0), False, clean)  # 4 of 8, all on the other rank
    with pytest.raises(MicroVLMError, match="4 of 6 samples"):  # at the end of an epoch: no minimum
        stop_flags(other_rank(seen=4.0, bad=4.0), False, clean, epoch_end=True)
    assert clean.metrics()["data/skipped"] == 4.0  # the sums of all processes, for rank 0's log


def test_monitor_reports_at_the_end_of_an_epoch_and_restores(
    samples: list[Sample], caplog: pytest.LogCaptureFixture
) -> None:
    data = _dataset(samples)
    monitor = BadDataMonitor(data.sources, max_fraction=0.5)
    monitor.update(Collate(Tokenizer(), 32)([data[j] for j in range(10)]))
    restored = BadDataMonitor(data.sources, max_fraction=0.5)
    restored.load_state_dict(monitor.state_dict())
    with caplog.at_level(logging.WARNING, logger="microvlm.train.data"):
        metrics = restored.end_epoch(0)
    assert metrics == {
        "data/skipped": 3.0,
        "data/skipped/missing": 1.0,
        "data/skipped/not_image": 1.0,
        "data/skipped/truncated": 1.0,
        "data/skipped_fraction": 0.3,
    }
    assert "epoch 0: toy/caption: skipped 3 of 10 samples" in caplog.text and "4.jpg" in caplog.text
    assert restored.metrics()["data/skipped"] == 0.0  # counts start again with the next epoch
    with pytest.raises(
        MicroVLMError, match=r"3 of 10 .* = 0\.01"
    ):  # the same counts at the default limit (1 %) stop the run
        strict = BadDataMonitor(data.sources)
        strict.load_state_dict(monitor.state_dict())
        strict.end_epoch(0)


def test_records_left_out_while_loading_count_against_the_limit(samples: list[Sample]) -> None:
    source = Source("web/pretrain", samples, Task(), 1.0, {"bad_shard": 2}, ("a/00003.tar: truncated",))
    with pytest.raises(MicroVLMError, match=r"web/pretrain: 2 of 12 records .*a/00003\.tar: truncated"):
        BadDataMonitor([source], max_fraction=0.1)
    BadDataMonitor([source], max_fraction=0.2)  # 17 % is within 20 %


class IndexedBuilder:
    """A builder that can be indexed but must not be copied into a list."""

    def __init__(self, samples: list[Sample]) -> None:
        self._samples = samples
        self.skipped = {"malformed": 1}
        self.skipped_examples = {"malformed": ["ann.json: [3]"]}
        self.records_read = len(samples) + 1  # the malformed record too

    def __len__(self) -> int:
        return len(self._samples)

    def __getitem__(self, i: int) -> Sample:
        return self._samples[i]

    def __iter__(self) -> Any:
        raise AssertionError("build_sources must index the builder, not copy it")


class Plugins:
    def __init__(self, builder: Any) -> None:
        self.builder = builder

    def build(self, kind: str, name: str, config: Any) -> Any:
        return self.builder if kind == "dataset" else Task()


def test_build_sources_indexes_builders_instead_of_copying(samples: list[Sample]) -> None:
    from microvlm.recipes.config import ComponentSpec, DataConfig

    entry = DataConfig(ComponentSpec("toy", None), ComponentSpec("caption", None))
    plugins = Plugins(IndexedBuilder(samples))
    (source,) = build_sources([entry], plugins)
    assert source.samples is plugins.builder and source.skipped == {"malformed": 1}
    assert source.skipped_examples == ("ann.json: [3]",) and source.records == len(samples) + 1
    (head,) = build_sources([entry], plugins, limit=3)
    assert len(head.samples) == 3 and [s.id for s in head.samples] == ["0", "1", "2"]
    with pytest.raises(IndexError):
        head.samples[3]


def test_max_bad_fraction_is_a_run_setting() -> None:
    assert RunConfig().max_bad_fraction == 0.01
    assert RunConfig(max_bad_fraction=0.0).max_bad_fraction == 0.0
    with pytest.raises(ValueError, match="between 0 and 1"):
        RunConfig(max_bad_fraction=1.5)


class NoisyProcessor(Processor):
    def __call__(self, image: Any) -> torch.Tensor:
        return super().__call__(image) + torch.rand(3, 4, 4)  # a random transform


def test_random_transforms_are_seeded_per_item_and_leave_the_callers_generator(samples: list[Sample]) -> None:
    source = Source("toy/caption", samples, Task(), 1.0)
    order = [(0, i) for i in range(10)]
    data = EpochDataset([source], order, NoisyProcessor(), Tokenizer(), seed=3, epoch=0)
    state = torch.get_rng_state()
    forward = [data[j].image for j in range(10)]
    backward = [data[j].image for j in reversed(range(10))][::-1]  # another visiting order, same items
    assert all(torch.equal(a, b) for a, b in zip(forward, backward, strict=True))
    assert torch.equal(torch.get_rng_state(), state)
    other_epoch = EpochDataset([source], order, NoisyProcessor(), Tokenizer(), seed=3, epoch=1)
    assert not torch.equal(other_epoch[1].image, forward[1])


# -------------------------------------------------------------------------------------
# Real tiny runs on toy data with broken images
# -------------------------------------------------------------------------------------


@attrs.frozen
class BrokenToysConfig(ToyDatasetConfig):
    bad: tuple[int, ...] = ()  # samples whose image bytes are not an image


class BrokenToys(ToyDataset):
    """The toy squares, with the images of ``config.bad`` replaced by bytes that are no image."""

    def __getitem__(self, index: int) -> Any:  # the toy set is indexed (and iterates through this)
        sample = super().__getitem__(index)
        broken = int(sample.id) in self.config.bad
        return attrs.evolve(sample, image=ImageRef(data=b"<html>gone</html>")) if broken else sample


class BrokenToysPlugin:
    @hookimpl
    def register_datasets(self, register: Any) -> None:
        register("broken_toys", BrokenToys, BrokenToysConfig, description="toy squares, some broken")


@pytest.fixture(scope="module")
def broken_plugins() -> Any:
    return load_plugins(extra=[("toys", ToyPlugin()), ("broken_toys", BrokenToysPlugin())])


def broken_recipe(tmp_path: Path, plugins: Any, bad: tuple[int, ...], name: str = "r", **run: Any) -> Any:
    """The toy recipe (8 samples, batch 4: 2 steps an epoch) with the images ``bad`` broken."""
    text = toy_training_recipe(str(tmp_path / name), str(tiny_llm_path()), **run)
    data = 'dataset = "toy_dataset"\nn = 8\n'
    assert data in text
    text = text.replace(data, f'dataset = "broken_toys"\nn = 8\nbad = {list(bad)}\n')
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return load_recipe(path, plugins)


def first_of_epoch(seed: int = 1, epoch: int = 0) -> int:
    """The sample index the run's first step reads first (8 toy samples, one entry)."""
    from microvlm.train.data import epoch_order

    order = epoch_order([Source("toy", range(8), None, 1.0)], epoch, seed)
    return order[0][1]


@pytest.mark.parametrize(
    "run_settings", [{"epochs": 1}, {"epochs": 1, "max_steps": 1}], ids=["last-epoch", "max-steps-mid-epoch"]
)
def test_the_limit_holds_at_the_end_of_training(
    tmp_path: Path, broken_plugins: Any, run_settings: dict[str, Any]
) -> None:
    """1 bad image of 8 (12.5 %) is over the default 1 %, in the last (here only) epoch and when
    max_steps ends training in the middle of an epoch (1 step of 2: 1 bad image of 4)."""
    bad = (first_of_epoch(),)
    recipe = broken_recipe(tmp_path, broken_plugins, bad, **run_settings)
    with pytest.raises(MicroVLMError, match=r"broken_toys/toy_task: 1 of \d samples .* skipped") as info:
        run(recipe, broken_plugins, progress=False)
    assert "run.max_bad_fraction = 0.01" in str(info.value)
    assert not (tmp_path / "r" / "checkpoint_final").exists()


def test_a_resumed_run_counts_the_bad_data_read_before_the_interruption(
    tmp_path: Path, broken_plugins: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broken image is read in step 1 of 2; a run killed after the step-1 checkpoint and
    resumed stops with the same counts as the run that was never interrupted."""

    bad = (first_of_epoch(),)
    straight = broken_recipe(tmp_path, broken_plugins, bad, name="a", epochs=1, save_every=1)
    with pytest.raises(MicroVLMError) as uninterrupted:
        run(straight, broken_plugins, progress=False)

    again = broken_recipe(tmp_path, broken_plugins, bad, name="b", epochs=1, save_every=1)
    run_until_checkpoint(again, broken_plugins, 1)
    with pytest.raises(MicroVLMError) as resumed:
        run(again, broken_plugins, progress=False)
    assert str(resumed.value) == str(uninterrupted.value)
    assert "1 of 8 samples" in str(resumed.value)

    # A checkpoint written before the counts were saved still resumes (counting from there).
    shutil.rmtree(tmp_path / "b" / "checkpoint_step000002")  # the resumed run's, with the counts
    meta_file = tmp_path / "b" / "checkpoint_step000001" / "trainer.json"
    meta = json.loads(meta_file.read_text())
    assert meta["bad_data"][0]["seen"] == [4] and meta["bad_data"][0]["reasons"] == [{"not_image": 1}]
    del meta["bad_data"]
    meta_file.write_text(json.dumps(meta))
    run(again, broken_plugins, progress=False)  # 0 of the 4 samples read after the checkpoint
    assert (tmp_path / "b" / "checkpoint_final").is_dir()


def test_counts_written_by_two_processes_resume_in_one(samples: list[Sample]) -> None:
    from microvlm.train.state import restore_bad_data

    data = _dataset(samples)
    collate = Collate(Tokenizer(), 32)
    ranks = [BadDataMonitor(data.sources, max_fraction=0.2, world=2) for _ in range(2)]
    ranks[0].update(collate([data[j] for j in range(5)]))  # 2 bad: missing, not_image
    ranks[1].update(collate([data[j] for j in range(5, 10)]))  # 1 bad: truncated
    saved = {"bad_data": [m.state_dict() for m in ranks]}
    alone = BadDataMonitor(data.sources, max_fraction=0.2)
    restore_bad_data(alone, saved, DistInfo(), "ck")
    assert alone.seen == [10] and sum(alone.reasons[0].values()) == 3
    with pytest.raises(MicroVLMError, match="3 of 10 samples"):
        alone.end_epoch(0)
    mine = BadDataMonitor(data.sources, max_fraction=0.2, world=2)
    restore_bad_data(mine, saved, DistInfo(1, 2), "ck")  # as many processes: each takes its own
    assert mine.seen == [5] and mine.reasons[0] == {"truncated": 1}
    with pytest.raises(MicroVLMError, match="ck: the bad-data counts are malformed"):
        restore_bad_data(alone, {"bad_data": [{"seen": 3}]}, DistInfo(), "ck")


@pytest.mark.parametrize("scale", [1.5, 3.0], ids=["warning range", "error range"])
def test_images_over_the_pixel_limit_are_refused_before_decoding(scale):
    """PIL only warns between MAX_IMAGE_PIXELS and twice that, and would decode; both are refused."""
    from PIL import Image

    from microvlm.contracts.samples import ImageError
    from microvlm.testing.fixtures import png_declaring

    side = int((Image.MAX_IMAGE_PIXELS * scale) ** 0.5) + 1
    with pytest.raises(ImageError) as raised:
        ImageRef(data=png_declaring(side, side)).open()
    assert raised.value.reason == "unreadable" and "pixels" in str(raised.value)
