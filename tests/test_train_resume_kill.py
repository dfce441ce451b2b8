"""Exact resume of a real training process: ``python -m microvlm run`` is killed (SIGKILL, and
SIGTERM), the same command is run again, and the final weights equal those of an
uninterrupted run bit for bit. Real plugins: a small random DeiT (timm), a 1-layer Q-Former
(dropout on, so the generator states matter), the tiny Qwen2, COCO captions of the shapes set."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from microvlm import load_plugins
from microvlm.io import layout
from microvlm.recipes.load import load_recipe
from microvlm.testing.fixtures import TINY_COCO_DATA_TOML, TINY_MODEL_TOML, tiny_llm_path
from microvlm.train import checkpoint as ckpt
from microvlm.train import run

pytestmark = [
    pytest.mark.slow,  # ~20 s a test: two training processes start up (torch, transformers)
    pytest.mark.skipif(os.name != "posix", reason="SIGKILL / SIGTERM as on POSIX"),
]

STEPS = 24  # 16 images / batch 4 = 4 steps per epoch, 6 epochs: long enough to interrupt
# One intra-op thread everywhere: bitwise equality needs the same kernels in every run, and
# on a busy 2-core machine tiny models run several times faster on one thread than on two.
THREADS = 1

RECIPE = (
    """\
[run]
name = "resume"
output_dir = "{out}"
seed = 3
epochs = 6
batch_size = 4
lr = 1e-3
warmup_steps = 2
log_every = 1
save_every = 1
keep_last = 2
max_text_tokens = 32

"""
    + TINY_MODEL_TOML
    + TINY_COCO_DATA_TOML
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The recipe file (output_dir set per run with --set) and the uninterrupted run's weights."""
    from microvlm_datasets.shapes import generate

    root = tmp_path_factory.mktemp("resume")
    generate(root / "shapes", n_train=16, n_val=4, n_test=4, image_size=32)
    recipe = root / "recipe.toml"
    recipe.write_text(
        RECIPE.format(out=root / "straight", llm=tiny_llm_path(), coco=root / "shapes" / "coco")
    )
    plugins = load_plugins()
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        final = run(load_recipe(recipe, plugins), plugins, progress=False)
    finally:
        torch.set_num_threads(threads)
    return recipe, load_file(str(final / "model.safetensors"))


def start(recipe, out, *overrides):
    command = [sys.executable, "-m", "microvlm", "run", str(recipe), "--set", f"run.output_dir={out}"]
    for override in overrides:
        command += ["--set", override]
    log = open(out.parent / f"{out.name}.log", "ab")  # noqa: SIM115 - closed by finish()
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS)}
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=out.parent, env=env), log


def finish(process, log, timeout=240):
    try:
        return process.wait(timeout=timeout)
    finally:
        log.close()


def wait_for(condition, process, what, timeout=180):
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"training exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def assert_bitwise(out, reference):
    result = load_file(str(out / "checkpoint_final" / "model.safetensors"))
    assert result.keys() == reference.keys()
    assert {k.split(".")[0] for k in result} == {"bridge", "projection"}
    for name in reference:
        assert torch.equal(result[name], reference[name]), name


def logged_steps(out):
    lines = (out / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    return [r["step"] for r in rows if "loss" in r]  # training steps (not evaluation rows)


def log_text(out):
    return (out.parent / f"{out.name}.log").read_text(errors="replace")[-3000:]


def test_sigkill_then_rerun_equals_an_uninterrupted_run(setup):
    recipe, reference = setup
    out = recipe.parent / "killed"
    process, log = start(recipe, out)
    wait_for((layout.step_dir(out, 3) / layout.META).is_file, process, "the step-3 checkpoint")
    process.send_signal(signal.SIGKILL)
    assert finish(process, log) == -signal.SIGKILL
    assert not (out / layout.FINAL).exists()
    saved = [s for s, _ in ckpt.step_checkpoints(out)]
    assert saved and 3 <= saved[-1] < STEPS, saved

    before = len(logged_steps(out))

    process, log = start(recipe, out)  # the same command again
    assert finish(process, log) == 0, log_text(out)
    assert logged_steps(out)[before:] == list(range(saved[-1] + 1, STEPS + 1))  # resumed there
    assert_bitwise(out, reference)


def test_sigterm_checkpoints_at_the_step_boundary_then_exits(setup):
    recipe, reference = setup
    out = recipe.parent / "terminated"
    metrics = out / "metrics.jsonl"
    process, log = start(recipe, out, "run.save_every=0")  # only the signal writes a step checkpoint
    wait_for(lambda: metrics.is_file() and metrics.read_text().count("\n") >= 2, process, "two steps")
    process.send_signal(signal.SIGTERM)
    assert finish(process, log) == 128 + signal.SIGTERM, log_text(out)
    [(step, _)] = ckpt.step_checkpoints(out)
    assert 2 <= step < STEPS
    assert not (out / layout.FINAL).exists()

    process, log = start(recipe, out, "run.save_every=0")
    assert finish(process, log) == 0, log_text(out)
    assert_bitwise(out, reference)
    assert logged_steps(out) == list(range(1, STEPS + 1))  # no step lost or repeated
