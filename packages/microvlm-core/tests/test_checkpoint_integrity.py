"""Damaged checkpoints and full disks: resume falls back to the newest intact checkpoint, every
damaged file is named (never with torch's advice to unpickle it), a full disk says so."""

import errno
import json
import logging
import pickle
import shutil
import subprocess

import pytest
import torch
from safetensors.torch import load_file

from microvlm import load_plugins
from microvlm.errors import MicroVLMError
from microvlm.io import layout
from microvlm.recipes.load import load_recipe
from microvlm.testing.fixtures import tiny_llm_path
from microvlm.testing.toys import ToyPlugin, run_until_checkpoint, toy_training_recipe
from microvlm.train import checkpoint as ckpt
from microvlm.train import run


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(extra=[("toys", ToyPlugin())])


def load(tmp_path, plugins, out, **settings):
    path = tmp_path / f"{out.name}.toml"
    path.write_text(toy_training_recipe(str(out), str(tiny_llm_path()), **settings))
    return load_recipe(path, plugins)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, plugins):
    """Final weights of the uninterrupted 4-step run."""
    tmp = tmp_path_factory.mktemp("straight")
    run(load(tmp, plugins, tmp / "a", epochs=2, save_every=1), plugins, progress=False)
    return load_file(str(tmp / "a" / "checkpoint_final" / "model.safetensors"))


class Planted:  # any class: weights_only loading refuses it
    pass


def _truncate(path):
    data = (path / layout.STATE).read_bytes()
    (path / layout.STATE).write_bytes(data[: len(data) // 2])


def _planted_pickle(path):
    (path / layout.STATE).write_bytes(pickle.dumps({"optimizer": Planted()}))


DAMAGE = {
    "truncated trainer_state.pt": (_truncate, "trainer_state.pt: damaged or truncated"),
    "0-byte weights": (lambda p: (p / layout.WEIGHTS).write_bytes(b""), "model.safetensors: not a readable"),
    "invalid trainer.json": (
        lambda p: (p / layout.META).write_text("{not json"),
        "trainer.json: not valid JSON",
    ),
    "incomplete trainer.json": (
        lambda p: (p / layout.META).write_text(json.dumps({"epoch": 1})),
        "step, micro_step must be non-negative integers",
    ),
    "missing trainer_state.pt": (lambda p: (p / layout.STATE).unlink(), "trainer_state.pt: damaged"),
    "planted pickle": (_planted_pickle, "not a valid checkpoint file"),
    "state without optimizer": (
        lambda p: torch.save({"rng": {}}, p / layout.STATE),
        "incomplete, it lacks optimizer, scheduler",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_resume_falls_back_to_the_newest_intact_checkpoint(damage, tmp_path, plugins, reference, caplog):
    out = tmp_path / "b"
    recipe = load(tmp_path, plugins, out, epochs=2, save_every=1)
    run_until_checkpoint(recipe, plugins, 3)
    breaker, said = DAMAGE[damage]
    breaker(layout.step_dir(out, 3))
    with caplog.at_level(logging.WARNING, logger="microvlm.train.checkpoint"):
        run(recipe, plugins, progress=False)  # resumes at step 2 instead of failing
    warnings = " ".join(r.getMessage() for r in caplog.records if r.name == "microvlm.train.checkpoint")
    assert said in warnings and "checkpoint_step000003" in warnings, warnings
    assert "checkpoint_step000002, the newest intact checkpoint" in warnings
    assert "weights_only=False" not in warnings
    result = load_file(str(out / "checkpoint_final" / "model.safetensors"))
    for name in reference:  # resuming from step 2 is as exact as from step 3
        assert torch.equal(result[name], reference[name]), name


def test_no_intact_checkpoint_is_an_error_listing_each(tmp_path, plugins):
    out = tmp_path / "c"
    recipe = load(tmp_path, plugins, out, epochs=2, save_every=1)
    run_until_checkpoint(recipe, plugins, 3)
    _planted_pickle(layout.step_dir(out, 2))
    (layout.step_dir(out, 3) / layout.WEIGHTS).write_bytes(b"\0" * 7)
    with pytest.raises(layout.CheckpointError) as raised:
        run(recipe, plugins, progress=False)
    message = str(raised.value)
    assert "no intact checkpoint to resume from" in message
    assert "checkpoint_step000002/trainer_state.pt" in message
    assert "checkpoint_step000003/model.safetensors" in message
    assert "weights_only" not in message


def test_a_refused_state_file_never_suggests_unpickling(tmp_path):
    torch.save({"optimizer": Planted(), "scheduler": {}, "rng": {}}, tmp_path / layout.STATE)
    with pytest.raises(layout.CheckpointError) as raised:
        ckpt.load_state(tmp_path)
    assert str(raised.value).startswith(str(tmp_path / layout.STATE))
    assert "weights_only" not in str(raised.value) and raised.value.__cause__ is None


def test_damaged_final_weights_are_a_clear_error(tmp_path, plugins):
    from microvlm import MicroVLM
    from microvlm.recipes.load import build_model_config

    section = {
        "encoder": {"name": "toy_encoder", "width": 16, "image_size": 32},
        "bridge": {"name": "qformer", "num_queries": 4, "num_layers": 1, "hidden_size": 32, "num_heads": 4},
        "llm": {"name": "hf_causal_lm", "model": str(tiny_llm_path())},
    }
    model = MicroVLM.from_config(build_model_config(section, plugins), plugins)
    directory = model.save_pretrained(tmp_path / "export", weights="all")
    (directory / layout.WEIGHTS).write_bytes(b"")
    with pytest.raises(MicroVLMError, match=r"model\.safetensors: not a readable safetensors file"):
        MicroVLM.from_pretrained(directory, plugins)


@pytest.mark.parametrize(
    "failure",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 320 vs 210"),
    ],
    ids=["ENOSPC", "torch zip writer"],
)
def test_a_full_disk_says_so_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, failure):
    target = tmp_path / "checkpoint_step000002"
    ckpt.save_checkpoint(target, {"w": torch.ones(2)}, {"rng": 1}, {"step": 2})

    def full(*_a, **_k):
        raise failure

    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: shutil._ntuple_diskusage(2**30, 2**30 - 4096, 4096))
    with pytest.raises(layout.DiskFullError) as raised:
        ckpt.save_checkpoint(target, {"w": torch.zeros(2)}, {"rng": 2}, {"step": 2})
    message = str(raised.value)
    assert "the disk is full (0.0 MiB free" in message and "previous version of it is intact" in message
    assert torch.equal(load_file(str(target / layout.WEIGHTS))["w"], torch.ones(2))
    assert not list(tmp_path.glob(".tmp-*"))


def test_other_write_errors_are_not_called_a_full_disk(tmp_path, monkeypatch):
    def broken(*_a, **_k):
        raise RuntimeError("something else")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(RuntimeError, match="something else"):  # plenty of space: not disk-full
        ckpt.save_checkpoint(tmp_path / "x", {"w": torch.ones(2)}, {"rng": 1}, {"step": 1})


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 1 MiB tmpfs (needs root with mount rights; skipped elsewhere)."""
    where = tmp_path / "disk"
    where.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], check=True, capture_output=True
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_really_full_disk(tiny_disk):
    target = tiny_disk / "checkpoint_step000001"
    ckpt.save_checkpoint(target, {"w": torch.ones(16)}, {"rng": 1}, {"step": 1})
    with pytest.raises(layout.DiskFullError, match="the disk is full"):
        ckpt.save_checkpoint(target, {"w": torch.ones(2**19)}, {"big": torch.ones(2**18)}, {"step": 1})
    assert torch.equal(load_file(str(target / layout.WEIGHTS))["w"], torch.ones(16))
    assert layout.load_meta(target)["step"] == 1
