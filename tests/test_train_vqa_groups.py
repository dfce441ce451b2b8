"""``task = { name = "vqa", questions_per_sequence = N }`` in a real run: the runner trains the
questions about one image N to a sequence (one epoch takes fewer steps), and evaluation
entries still see one question per sample."""

import json
import math
import subprocess
import sys

from microvlm.testing.fixtures import TINY_MODEL_TOML, tiny_llm_path

RECIPE = (
    """\
[run]
name = "vqa_groups"
output_dir = "{out}"
seed = 3
epochs = 1
batch_size = 2
lr = 1e-3
log_every = 1
max_text_tokens = 128

"""
    + TINY_MODEL_TOML
    + """
[[data]]
dataset = "shapes"
root = "{root}"
view = "vqa"
task = {{ name = "vqa", questions_per_sequence = 3 }}

[[loggers]]
name = "jsonl"
"""
)


def test_questions_of_one_image_share_a_sequence_in_training_only(tmp_path):
    from microvlm.data.sources import build_sources
    from microvlm.plugins.manager import load_plugins
    from microvlm.recipes.load import load_recipe
    from microvlm_datasets.shapes import generate

    generate(tmp_path / "shapes", n_train=6, n_val=0, n_test=0, image_size=32)  # 5 questions an image
    path = tmp_path / "recipe.toml"
    out = tmp_path / "out"
    path.write_text(RECIPE.format(llm=tiny_llm_path(), root=tmp_path / "shapes", out=out))
    plugins = load_plugins()
    recipe = load_recipe(path, plugins)
    [plain] = build_sources(recipe.data, plugins)  # as evaluation builds them
    [grouped] = build_sources(recipe.data, plugins, train=True)  # as the runner does
    assert len(plain.samples) == 30 and not any(s.group for s in plain.samples)
    assert len(grouped.samples) == 12  # per image: 3 questions + 2 questions
    assert sorted(len(s.group) for s in grouped.samples) == [1] * 6 + [2] * 6
    assert all(g.image == s.image for s in grouped.samples for g in s.group)

    done = subprocess.run(
        [sys.executable, "-m", "microvlm", "run", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 7))  # 12 grouped samples / 2: an epoch of 6 steps
    assert all(math.isfinite(r["loss"]) for r in steps)
