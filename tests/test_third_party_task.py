"""A task from a third-party package (tests/plugins/microvlm-toy-plugin, entry point
``toy_length``) trains and is evaluated by ``microvlm run``; its own metric and baseline reach
``results.json`` and the printed results table, with no change to MicroVLM's code."""

import json
import os
import subprocess
import sys

from microvlm.testing.fixtures import TINY_MODEL_TOML, tiny_llm_path

RECIPE = (
    """\
[run]
name = "toy_length"
output_dir = "{out}"
seed = 1
max_steps = 2
batch_size = 2
lr = 1e-3
max_text_tokens = 64

[eval]
max_samples = 4
batch_size = 4
"""
    + TINY_MODEL_TOML
    + """
[[data]]
dataset = "coco_caption"
root = "{coco}"
split = "train"
task = "toy_length"

[[eval.data]]
dataset = "coco_caption"
root = "{coco}"
split = "train"
task = {{ name = "toy_length", max_new_tokens = 4 }}
"""
)


def test_a_third_party_task_brings_its_metric_and_baseline_to_results(tmp_path):
    from microvlm_datasets.shapes import generate

    generate(tmp_path / "shapes", n_train=4, n_val=0, n_test=0, image_size=32)
    out = tmp_path / "out"
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE.format(llm=tiny_llm_path(), coco=tmp_path / "shapes" / "coco", out=out))
    done = subprocess.run(
        [sys.executable, "-m", "microvlm", "run", str(recipe)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},  # one line per table row
    )
    assert done.returncode == 0, done.stderr[-3000:]

    results = json.loads((out / "results.json").read_text())
    summary = results["toy_length"]
    assert 0.0 <= summary["length_match"] <= 1.0
    assert summary["one_word_baseline"] == 0.0  # shapes captions are sentences
    assert results["entries"]["coco_caption/toy_length"]["samples"] == 4
    assert results["table"] == [
        {
            "task": "toy_length",
            "metric": "length_match",
            "value": summary["length_match"],
            "baseline": 0.0,
            "baseline_name": "always one word",
        }
    ]
    [row] = [line for line in done.stdout.splitlines() if "length_match" in line]
    assert "toy_length" in row and f"{summary['length_match']:.4f}" in row and "0.0000" in row
    assert "always one word" in done.stdout  # the task's baseline heads the baseline column
