"""microvlm eval / infer on a checkpoint trained by the runner on toy data."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from microvlm import load_plugins
from microvlm.cli import build_cli
from microvlm.recipes.load import load_recipe
from microvlm.testing.fixtures import tiny_llm_path
from microvlm.testing.toys import ToyPlugin, toy_training_recipe
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


# -- #13 item 12: no user input ends in a traceback ------------------------------------------


def _checkpoint_args(trained, *args):
    return ("infer", "--checkpoint", trained["checkpoint"], *args)


def _no_model(monkeypatch):
    """Make loading the model fail the test: the checks under test must come first."""

    def refuse(*_, **__):
        raise AssertionError("the model was loaded before the inputs were checked")

    monkeypatch.setattr("microvlm.cli.model_cmds.load_model", refuse)


def _big_image(tmp_path, monkeypatch, limit):
    """A 3,600-pixel image over a lowered PIL pixel limit (the 32 x 32 test image stays under)."""
    big = tmp_path / "big.png"
    Image.new("L", (60, 60)).save(big)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    return big


@pytest.mark.parametrize("limit", [1500, 2500], ids=["bomb-error", "bomb-warning"])
def test_infer_refuses_an_image_over_the_pixel_limit(plugins, trained, tmp_path, monkeypatch, limit):
    big = _big_image(tmp_path, monkeypatch, limit)  # PIL: an error over 2 x limit, a warning over limit
    _no_model(monkeypatch)
    result = CliRunner().invoke(
        build_cli(plugins), [str(a) for a in _checkpoint_args(trained, "--image", big, "--prompt", "x")]
    )
    assert result.exit_code == 1, result.output
    assert f"{big}: image too large" in result.output and "Traceback" not in result.output


def test_infer_interactive_survives_an_image_over_the_pixel_limit(plugins, trained, tmp_path, monkeypatch):
    big = _big_image(tmp_path, monkeypatch, 1500)
    session = f"load {big}\nload {trained['image']}\nWhat colour?\nquit\n"
    args = ["infer", "--checkpoint", str(trained["checkpoint"]), "--interactive", "--max-new-tokens", "2"]
    result = CliRunner().invoke(build_cli(plugins), args, input=session)
    assert result.exit_code == 0, result.output
    assert f"{big}: image too large" in result.output and f"loaded {trained['image']}" in result.output


def test_infer_with_beams_prints_the_answer_without_streaming(plugins, trained):
    args = ("--image", trained["image"], "--prompt", "x", "--max-new-tokens", 3, "--num-beams", 2)
    result = invoke(plugins, *_checkpoint_args(trained, *args))
    assert result.exit_code == 0, result.output
    assert result.output.strip()


def test_infer_names_the_line_of_a_jsonl_that_is_not_utf8(plugins, trained, tmp_path, monkeypatch):
    inputs = tmp_path / "in.jsonl"
    line = json.dumps({"image": str(trained["image"]), "prompt": "a"})
    inputs.write_bytes(f"{line}\n".encode() + b'{"image": "caf\xe9.png", "prompt": "b"}\n')
    _no_model(monkeypatch)
    result = invoke(plugins, *_checkpoint_args(trained, "--input", inputs, "--output", tmp_path / "o.jsonl"))
    assert result.exit_code == 1
    assert f"{inputs}:2: not UTF-8 text" in result.output and "save it as UTF-8" in result.output


@pytest.mark.parametrize(
    "row, problem",
    [
        ('{"image": null, "prompt": "a"}', '"image" must be'),
        ('{"image": 5}', '"image" must be'),
        ('{"image": "x.png", "prompt": ["a"]}', '"prompt" must be'),
        ('["x.png", "a"]', "expected an object"),
        ('{"image": "x.png", "prompt": "\\ud800"}', "not valid text"),
        ("[" * 100_000, "not JSON"),
    ],
)
def test_infer_refuses_jsonl_rows_of_the_wrong_shape(plugins, trained, tmp_path, monkeypatch, row, problem):
    inputs = tmp_path / "in.jsonl"
    inputs.write_text(row + "\n")
    _no_model(monkeypatch)
    result = invoke(plugins, *_checkpoint_args(trained, "--input", inputs, "--output", tmp_path / "o.jsonl"))
    assert result.exit_code == 1, result.output
    assert f"{inputs}:1: " in result.output and problem in result.output


@pytest.mark.parametrize("where", ["missing-folder", "inside-a-file", "a-folder"])
def test_infer_checks_the_output_before_loading_the_model(plugins, trained, tmp_path, monkeypatch, where):
    inputs = tmp_path / "in.jsonl"
    inputs.write_text(json.dumps({"image": str(trained["image"]), "prompt": "a"}) + "\n")
    (tmp_path / "a_file").write_text("")
    output = {
        "missing-folder": tmp_path / "no" / "such" / "out.jsonl",
        "inside-a-file": tmp_path / "a_file" / "out.jsonl",
        "a-folder": tmp_path,
    }[where]
    _no_model(monkeypatch)
    result = invoke(plugins, *_checkpoint_args(trained, "--input", inputs, "--output", output))
    assert result.exit_code in (1, 2), result.output
    assert str(output) in result.output and "Traceback" not in result.output


def test_eval_checks_the_output_dir_before_loading_the_model(plugins, trained, tmp_path, monkeypatch):
    a_file = tmp_path / "metrics"
    a_file.write_text("")
    _no_model(monkeypatch)
    inside = a_file / "eval"  # a folder that cannot be made: its parent is a file
    result = invoke(plugins, "eval", "--checkpoint", trained["checkpoint"], "--output-dir", inside)
    assert result.exit_code == 1, result.output
    assert str(inside) in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--temperature", "nan"),
        ("--temperature", "inf"),
        ("--temperature", "-1"),
        ("--top-p", "nan"),
        ("--top-p", "0"),
        ("--top-p", "1.5"),
        ("--num-beams", "100000"),
    ],
)
def test_infer_refuses_numbers_out_of_range(plugins, trained, monkeypatch, flag, value):
    _no_model(monkeypatch)
    args = ("--image", trained["image"], "--prompt", "x", "--do-sample", flag, value)
    result = invoke(plugins, *_checkpoint_args(trained, *args))
    assert result.exit_code == 2 and flag in result.output, result.output


def test_infer_temperature_zero_is_greedy(plugins, trained):
    args = ("--image", trained["image"], "--prompt", "x", "--max-new-tokens", 3)
    greedy = invoke(plugins, *_checkpoint_args(trained, *args))
    zero = invoke(plugins, *_checkpoint_args(trained, *args, "--do-sample", "--temperature", 0))
    assert zero.exit_code == 0 and zero.output.splitlines()[-1] == greedy.output.splitlines()[-1]


def test_infer_refuses_a_prompt_that_is_not_text(plugins, trained, monkeypatch):
    _no_model(monkeypatch)
    result = invoke(plugins, *_checkpoint_args(trained, "--image", trained["image"], "--prompt", "a\udcffb"))
    assert result.exit_code == 1 and "--prompt" in result.output and "not valid text" in result.output


def test_infer_folder_skips_unreadable_images_and_says_so(plugins, trained, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (16, 16), (0, 200, 0)).save(folder / "a_good.png")
    (folder / "b_bad.jpg").write_text("not an image")
    Image.new("RGB", (16, 16), (0, 0, 200)).save(folder / "c_good.png")
    out = tmp_path / "out.jsonl"
    args = ("--input", folder, "--prompt", "x", "--output", out, "--max-new-tokens", 2, "--batch-size", 2)
    result = invoke(plugins, *_checkpoint_args(trained, *args))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [Path(r["image"]).name for r in rows] == ["a_good.png", "c_good.png"]
    assert f"skipped {folder / 'b_bad.jpg'}: cannot read image" in result.output
    assert "skipped 1 of 3 images" in result.output


def test_infer_folder_of_only_unreadable_images_fails(plugins, trained, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    args = ("--input", folder, "--prompt", "x", "--output", tmp_path / "out.jsonl", "--max-new-tokens", 2)
    result = invoke(plugins, *_checkpoint_args(trained, *args))
    assert result.exit_code == 1 and "none of the 1 images could be read" in result.output


def test_generate_keeps_max_new_tokens_within_the_llm_context(plugins, trained, monkeypatch, caplog):
    import torch

    from microvlm.cli.model_cmds import load_model

    model = load_model(str(trained["checkpoint"]), plugins)
    seen = {}

    def fake_generate(inputs_embeds, **kwargs):
        seen["length"], seen["new"] = inputs_embeds.shape[1], kwargs["max_new_tokens"]
        return torch.zeros((inputs_embeds.shape[0], 1), dtype=torch.long)

    monkeypatch.setattr(model.llm.model, "generate", fake_generate)
    positions = model.llm.hf_config.max_position_embeddings
    images = torch.zeros((1, 3, 32, 32))
    with caplog.at_level("WARNING"):
        model.generate({"image": images, "prompt": "What colour?"}, max_new_tokens=10**9)
        assert seen["length"] + seen["new"] == positions
        assert f"max_new_tokens={10**9} does not fit" in caplog.text
        model.generate({"image": images, "prompt": "the " * 2000}, max_new_tokens=10**9)  # prompt cut
        assert seen["length"] + seen["new"] == positions and seen["new"] >= 1


@pytest.mark.parametrize("problem", ["big-image", "not-text"])
def test_demo_checks_its_image_and_prompt_before_loading_the_model(
    plugins, trained, tmp_path, monkeypatch, problem
):
    big = _big_image(tmp_path, monkeypatch, 1500)
    image, prompt = (big, "x") if problem == "big-image" else (trained["image"], "a\udcffb")
    _no_model(monkeypatch)
    args = ("demo", "--checkpoint", trained["checkpoint"], "--image", image, "--prompt", prompt)
    result = invoke(plugins, *args)
    assert result.exit_code == 1, result.output
    assert ("image too large" if problem == "big-image" else "--prompt is not valid text") in result.output


def test_eval_refuses_a_recipe_that_came_inside_the_checkpoint(plugins, trained, tmp_path):
    """trainer.json is the checkpoint's own file: it may point at the user's recipe, not at one
    shipped in the checkpoint (which would then choose data folders to read and write)."""
    import shutil

    copy = tmp_path / "ckpt"
    shutil.copytree(trained["checkpoint"], copy)
    shutil.copy(trained["recipe"], copy / "planted.toml")
    meta = json.loads((copy / "trainer.json").read_text())
    (copy / "trainer.json").write_text(json.dumps({**meta, "recipe": str(copy / "planted.toml")}))
    result = invoke(plugins, "eval", "--checkpoint", copy, "--limit", 1)
    assert result.exit_code == 1 and "names a recipe inside the checkpoint" in result.output
    assert "--recipe RECIPE" in result.output
    (copy / "trainer.json").write_text(json.dumps({**meta, "recipe": ["not", "a", "path"]}))
    result = invoke(plugins, "eval", "--checkpoint", copy, "--limit", 1)
    assert result.exit_code == 1 and "cannot tell which data to evaluate on" in result.output


def test_infer_refuses_a_pipe_named_like_an_image(tmp_path):
    """Opening a FIFO would block until something writes to it: refused before opening."""
    import os

    from microvlm.cli.infer_inputs import read_image
    from microvlm.errors import MicroVLMError

    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    with pytest.raises(MicroVLMError, match="not a regular file"):
        read_image(str(fifo))
