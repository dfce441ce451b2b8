"""microvlm eval / infer on a checkpoint trained by the runner on toy data."""

import json

import pytest
from click.testing import CliRunner
from PIL import Image

from microvlm import load_plugins
from microvlm.cli import build_cli
from microvlm.recipe import load_recipe
from microvlm.testing import tiny_llm_path
from microvlm.toys import ToyPlugin, toy_training_recipe
from microvlm.train import run


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(extra=[("toys", ToyPlugin())])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, plugins):
    root = tmp_path_factory.mktemp("trained")
    recipe_path = root / "toy.toml"
    recipe_path.write_text(
        toy_training_recipe(
            str(root / "out"), str(tiny_llm_path()), epochs=2, train=["bridge", "projection", "llm"]
        )
    )
    final = run(load_recipe(recipe_path, plugins), plugins, progress=False)
    image = root / "red.png"
    Image.new("RGB", (32, 32), (220, 20, 20)).save(image)
    return {"root": root, "recipe": recipe_path, "checkpoint": final, "image": image}


def invoke(plugins, *args):
    return CliRunner().invoke(build_cli(plugins), [str(a) for a in args], catch_exceptions=False)


def test_eval_writes_metrics_and_predictions(plugins, trained, tmp_path):
    result = invoke(
        plugins,
        "eval",
        "--checkpoint",
        trained["checkpoint"],
        "--tasks",
        "toy_task",
        "--limit",
        3,
        "--batch-size",
        2,
        "--output-dir",
        tmp_path,
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) == {"toy_dataset/toy_task"}
    assert metrics["toy_dataset/toy_task"]["samples"] == 3
    assert 0.0 <= metrics["toy_dataset/toy_task"]["exact_match"] <= 1.0
    rows = (tmp_path / "predictions_toy_dataset_toy_task.jsonl").read_text().splitlines()
    assert [json.loads(r)["id"] for r in rows] == ["0", "1", "2"]
    assert "exact_match" in result.output


def test_eval_is_deterministic(plugins, trained, tmp_path):
    for name in ("a", "b"):
        invoke(
            plugins,
            "eval",
            "--checkpoint",
            trained["checkpoint"],
            "--recipe",
            trained["recipe"],
            "--limit",
            4,
            "--output-dir",
            tmp_path / name,
        )
    read = lambda n: (tmp_path / n / "predictions_toy_dataset_toy_task.jsonl").read_text()  # noqa: E731
    assert read("a") == read("b")


def test_eval_rejects_a_filter_that_matches_nothing(plugins, trained):
    result = invoke(plugins, "eval", "--checkpoint", trained["checkpoint"], "--tasks", "vqa")
    assert result.exit_code == 1 and "no evaluation entry matches" in result.output


def test_infer_answers_a_question(plugins, trained):
    result = invoke(
        plugins,
        "infer",
        "--checkpoint",
        trained["checkpoint"],
        "--image",
        trained["image"],
        "--prompt",
        "Describe the image.",
        "--max-new-tokens",
        5,
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip()  # the streamed answer


def test_infer_batch_jsonl(plugins, trained, tmp_path):
    inputs = tmp_path / "in.jsonl"
    inputs.write_text(
        "\n".join(json.dumps({"image": str(trained["image"]), "prompt": p}) for p in ("a", "b"))
    )
    out = tmp_path / "out.jsonl"
    result = invoke(
        plugins,
        "infer",
        "--checkpoint",
        trained["checkpoint"],
        "--input",
        inputs,
        "--output",
        out,
        "--max-new-tokens",
        3,
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["prompt"] for r in rows] == ["a", "b"] and all("answer" in r for r in rows)


def test_infer_errors_are_one_line(plugins, trained, tmp_path):
    missing = invoke(
        plugins, "infer", "--checkpoint", tmp_path / "nope", "--image", trained["image"], "--prompt", "x"
    )
    assert missing.exit_code == 1 and "no checkpoint here" in missing.output
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    unreadable = invoke(
        plugins, "infer", "--checkpoint", trained["checkpoint"], "--image", bad, "--prompt", "x"
    )
    assert unreadable.exit_code == 1 and f"{bad}: cannot read image" in unreadable.output
    no_image = invoke(plugins, "infer", "--checkpoint", trained["checkpoint"], "--prompt", "x")
    assert no_image.exit_code == 2 and "--image and --prompt" in no_image.output
    assert "Traceback" not in missing.output + unreadable.output + no_image.output


def test_infer_interactive_session(plugins, trained):
    session = f"What colour?\nload {trained['image']}\nWhat colour?\nload /no/such.png\nquit\n"
    result = CliRunner().invoke(
        build_cli(plugins),
        ["infer", "--checkpoint", str(trained["checkpoint"]), "--interactive", "--max-new-tokens", "3"],
        input=session,
    )
    assert result.exit_code == 0, result.output
    assert "no image yet; load one with: load PATH" in result.output
    assert f"loaded {trained['image']}" in result.output
    assert "/no/such.png: no such image file" in result.output
