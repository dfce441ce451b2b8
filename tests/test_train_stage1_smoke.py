"""Smoke check of the full-size architecture (the training issue's "Done when"):

    microvlm run recipes/stage1_alignment.toml --set model.llm.init=random --set run.max_steps=2

runs two optimizer steps of DeiT-Tiny (224 px) -> 6-layer, 768-wide Q-Former (32 queries)
-> Qwen2.5-0.5B (random weights from the shipped config) on CPU, with every [[data]] entry
of the recipe pointed at the synthetic shapes set (COCO captions and img2dataset shards).
Nothing is downloaded: the encoder starts from random weights and the tokenizer is the
tiny local one (its vocabulary is smaller than Qwen's 151,936 embeddings, which is allowed).
Measured on a busy 2-core CPU: about 2 minutes, 4 GB resident.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from microvlm.testing.fixtures import make_tiny_tokenizer

pytestmark = pytest.mark.slow

STAGE1 = Path(__file__).parent.parent / "recipes" / "stage1_alignment.toml"
QWEN_WIDTH = 896  # hidden size of Qwen2.5-0.5B


def test_stage1_recipe_runs_two_steps_of_the_full_size_model(tmp_path):
    from microvlm_datasets.shapes import generate

    shapes = tmp_path / "shapes"
    generate(shapes, n_train=8, n_val=0, n_test=0, image_size=64)
    tokenizer = make_tiny_tokenizer(tmp_path / "tokenizer")
    out = tmp_path / "out"
    overrides = [
        "model.llm.init=random",
        "run.max_steps=2",
        "model.encoder.pretrained=none",
        f"model.llm.tokenizer={tokenizer}",
        "run.batch_size=2",
        "run.precision=fp32",
        f"run.output_dir={out}",
        f"data.0.root={shapes / 'coco'}",  # coco_caption
        *(f"data.{i}.{key}" for i in (1, 2, 3) for key in (f"root={shapes / 'shards'}", "split=train")),
    ]
    command = [sys.executable, "-m", "microvlm", "run", str(STAGE1)]
    for override in overrides:
        command += ["--set", override]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in rows if "loss" in r][-1]
    assert last["step"] == 2 and math.isfinite(last["loss"])
    assert last["loss"] > 5  # random Qwen over 151,936 classes: about ln(151936) = 11.9
    with safe_open(str(out / "checkpoint_final" / "model.safetensors"), "pt") as f:
        names = list(f.keys())
        assert {n.split(".")[0] for n in names} == {"bridge", "projection"}  # stage 1 trains these
        widths = {f.get_slice(n).get_shape()[0] for n in names if n.startswith("projection.")}
    assert QWEN_WIDTH in widths  # the projection maps into Qwen2.5-0.5B's 896-wide embeddings
