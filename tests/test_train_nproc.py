"""``microvlm run RECIPE --nproc 2`` end to end with the real plugins: torchrun starts two
CPU workers (gloo); SIGTERM stops both at the same step with one checkpoint; the same
command resumes and ends bit for bit where an uninterrupted 2-process run ends (each
rank's generator state is restored: the Q-Former's dropout is on)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from microvlm.io import layout
from microvlm.testing.fixtures import TINY_COCO_DATA_TOML, TINY_MODEL_TOML, tiny_llm_path
from microvlm.train import checkpoint as ckpt

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.name != "posix", reason="SIGTERM as on POSIX"),
]

RECIPE = (
    """\
[run]
name = "ddp"
output_dir = "unused"
seed = 5
epochs = 4
batch_size = 2
lr = 1e-3
log_every = 1
max_text_tokens = 24

"""
    + TINY_MODEL_TOML
    + TINY_COCO_DATA_TOML
)
STEPS = 16  # 16 images / (2 per process x 2 processes) = 4 steps per epoch, 4 epochs


def command(recipe, out):
    return [
        sys.executable,
        "-m",
        "microvlm",
        "run",
        str(recipe),
        "--nproc",
        "2",
        "--set",
        f"run.output_dir={out}",
    ]


def test_two_processes_stop_on_sigterm_and_resume_exactly(tmp_path):
    from microvlm_datasets.shapes import generate

    generate(tmp_path / "shapes", n_train=16, n_val=0, n_test=0, image_size=32)
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE.format(llm=tiny_llm_path(), coco=tmp_path / "shapes" / "coco"))

    straight = subprocess.run(
        command(recipe, tmp_path / "a"), check=False, capture_output=True, text=True, timeout=300
    )
    assert straight.returncode == 0, straight.stderr[-3000:]

    out = tmp_path / "b"
    metrics = out / "metrics.jsonl"
    with open(tmp_path / "b.log", "wb") as log:
        process = subprocess.Popen(command(recipe, out), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 240
        while not (metrics.is_file() and metrics.read_text().count("\n") >= 2):
            assert process.poll() is None, (tmp_path / "b.log").read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)  # to torchrun, which passes it to both workers
        assert process.wait(timeout=120) != 0
    [(step, _)] = ckpt.step_checkpoints(out)  # rank 0 alone wrote it, once
    assert 2 <= step < STEPS and not (out / layout.FINAL).exists()

    again = subprocess.run(command(recipe, out), check=False, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    steps = [r["step"] for r in map(json.loads, metrics.read_text().splitlines()) if "loss" in r]
    assert steps == list(range(1, STEPS + 1))

    reference = load_file(str(tmp_path / "a" / layout.FINAL / "model.safetensors"))
    result = load_file(str(out / layout.FINAL / "model.safetensors"))
    assert result.keys() == reference.keys()
    for name in reference:
        assert torch.equal(result[name], reference[name]), name
