"""Fuzzing ``microvlm infer``'s inputs (#13): a clear error or success, never a traceback or a hang.

Image bytes, ``--input`` JSONL lines, prompts and numeric flags come from hypothesis. The
functions that check inputs (:mod:`microvlm.cli.infer_inputs`) are called directly; the
CLI runs against one tiny model built once per module (``load_model`` is patched to hand
it back, so no example pays for loading). That model's context is cut to
``CONTEXT`` positions so that every accepted ``--max-new-tokens`` ends quickly.

Bounded for CI: few examples per test and a per-example deadline far above what an example
takes, with no timing assertions; the example database is off (nothing written to the repo).
"""

from __future__ import annotations

import io
import json
import struct
import tempfile
from datetime import timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from microvlm import load_plugins
from microvlm.cli import build_cli
from microvlm.cli.infer_inputs import IMAGE_SUFFIXES, batch_inputs, read_image
from microvlm.errors import MicroVLMError
from microvlm.testing.fixtures import png_declaring, tiny_llm_path
from microvlm.testing.toys import ToyPlugin, toy_training_recipe

CONTEXT = 40  # LLM positions of the fuzzed model: 4 image tokens, the rest prompt and answer

FAST = settings(
    max_examples=60,
    deadline=timedelta(seconds=20),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CLI = settings(FAST, max_examples=15)


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(extra=[("toys", ToyPlugin())])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz_infer")


@pytest.fixture(scope="module")
def checkpoint(plugins, workdir) -> Path:
    """A tiny untrained model saved with all its weights, and loaded through the CLI's own path."""
    from microvlm.cli import model_cmds
    from microvlm.models.vlm import MicroVLM
    from microvlm.recipes.load import load_recipe

    recipe = workdir / "toy.toml"
    recipe.write_text(toy_training_recipe(str(workdir / "out"), str(tiny_llm_path())))
    model = MicroVLM.from_config(load_recipe(recipe, plugins).model, plugins)
    path = model.save_pretrained(workdir / "checkpoint", weights="all")
    loaded = model_cmds.load_model(str(path), plugins)
    loaded.llm.hf_config.max_position_embeddings = CONTEXT
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(model_cmds, "load_model", lambda *_, **__: loaded)
        yield path


@pytest.fixture(scope="module")
def image(workdir) -> Path:
    path = workdir / "red.png"
    Image.new("RGB", (16, 16), (220, 20, 20)).save(path)
    return path


def _encoded(fmt: str) -> bytes:
    picture = Image.new("RGB", (16, 12))
    picture.putdata([(x * 15, y * 20, (x * y) % 256) for y in range(12) for x in range(16)])
    buf = io.BytesIO()
    picture.save(buf, fmt)
    return buf.getvalue()


REAL_IMAGES = {fmt: _encoded(fmt) for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")}


def _write(directory: Path, data: bytes, suffix: str = ".png") -> Path:
    fd, name = tempfile.mkstemp(suffix=suffix, dir=directory)
    with open(fd, "wb") as f:
        f.write(data)
    return Path(name)


def _read_cleanly(directory: Path, data: bytes) -> None:
    """The property for image bytes: an RGB image with pixels, or a MicroVLMError naming the file."""
    path = _write(directory, data)
    try:
        picture = read_image(str(path))
    except MicroVLMError as exc:
        assert str(path) in str(exc)
    else:
        assert picture.mode == "RGB" and picture.width >= 1 and picture.height >= 1
    finally:
        path.unlink()


def _clean(result) -> None:
    """The property for a CLI run: success or a clean error; never an unhandled exception."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 1, 2), result.output


def _invoke(plugins, args: list[str]):
    return CliRunner().invoke(build_cli(plugins), args)


# -- image bytes -------------------------------------------------------------------------


@FAST
@given(data=st.binary(max_size=4096))
def test_random_bytes_are_an_image_or_a_clean_error(workdir, data):
    _read_cleanly(workdir, data)


@FAST
@given(
    fmt=st.sampled_from(sorted(REAL_IMAGES)),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 255)), max_size=8),
)
def test_truncated_or_corrupted_real_images_are_read_or_refused_cleanly(workdir, fmt, cut, flips):
    data = bytearray(REAL_IMAGES[fmt])
    for where, byte in flips:
        data[int(where * len(data))] = byte
    _read_cleanly(workdir, bytes(data[: int(cut * len(data))]))


@FAST
@given(
    kind=st.sampled_from(["png", "jpeg", "bmp", "gif"]),
    width=st.integers(0, 2**31 - 1),
    height=st.integers(0, 2**31 - 1),
)
def test_huge_declared_dimensions_are_refused_cleanly(workdir, kind, width, height):
    if kind == "png":
        data = png_declaring(width, height)
    elif kind == "jpeg":  # SOF0: precision, height, width (16 bits each)
        jpeg = REAL_IMAGES["JPEG"]
        at = jpeg.index(b"\xff\xc0") + 5
        data = jpeg[:at] + struct.pack(">HH", height % 2**16, width % 2**16) + jpeg[at + 4 :]
    elif kind == "bmp":  # BITMAPINFOHEADER: signed 32-bit width and height
        bmp = bytearray(REAL_IMAGES["BMP"])
        bmp[18:26] = struct.pack("<ii", width, height - 2**30)
        data = bytes(bmp)
    else:  # GIF logical screen: 16-bit width and height
        gif = bytearray(REAL_IMAGES["GIF"])
        gif[6:10] = struct.pack("<HH", width % 2**16, height % 2**16)
        data = bytes(gif)
    _read_cleanly(workdir, data)


# -- --input JSONL -----------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
ROWS = st.one_of(
    st.fixed_dictionaries({}, optional={"image": JSON_VALUES, "prompt": JSON_VALUES}),
    st.fixed_dictionaries({"image": st.text(max_size=20)}, optional={"prompt": st.text(max_size=20)}),
    JSON_VALUES,
).map(lambda row: json.dumps(row, ensure_ascii=False))
LINES = st.one_of(
    ROWS.map(lambda text: text.encode("utf-8", "surrogatepass")),  # lone surrogates: not UTF-8
    st.text(max_size=40).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.binary(max_size=40),
)


@FAST
@given(lines=st.lists(LINES, max_size=6), prompt=st.none() | st.text(max_size=10))
def test_jsonl_lines_give_pairs_of_text_or_a_clean_error(workdir, lines, prompt):
    path = _write(workdir, b"\n".join(lines), ".jsonl")
    try:
        pairs = batch_inputs(str(path), prompt)
    except MicroVLMError as exc:
        assert str(path) in str(exc)
    else:
        for image, question in pairs:
            assert isinstance(image, str) and image.strip() and isinstance(question, str)
            (image + question).encode("utf-8")  # text a tokenizer takes
    finally:
        path.unlink()


def test_deeply_nested_and_huge_number_lines_are_clean_errors(workdir):
    for line in ("[" * 200_000, '{"image": ' + "9" * 10_000 + "}"):
        path = _write(workdir, line.encode(), ".jsonl")
        with pytest.raises(MicroVLMError, match=f"{path}:1: not JSON"):
            batch_inputs(str(path), "x")


# -- the CLI: prompts, numeric flags, batches ----------------------------------------------

PROMPTS = st.one_of(
    st.text(max_size=60),
    st.text(max_size=12).map(lambda text: text * 400),  # far past the context: the head is cut
    st.sampled_from(["", "\x00", "\ud800", "🙂" * 300, "<|im_end|><|endoftext|>", "-x", "load x"]),
)


@CLI
@given(prompt=PROMPTS)
def test_any_prompt_is_answered_or_refused_cleanly(plugins, checkpoint, image, prompt):
    args = ["infer", "--checkpoint", str(checkpoint), "--image", str(image), f"--prompt={prompt}"]
    _clean(_invoke(plugins, [*args, "--max-new-tokens", "2"]))


NUMBERS = st.one_of(
    st.integers(-3, 5).map(str),
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "nan", "-inf", "1e999", "0x10", "1_0", "١", "+1", ".5", "1e-320"]),
    st.text(max_size=6),
)
FLAGS = ("--temperature", "--top-p", "--max-new-tokens", "--num-beams", "--batch-size")


@CLI
@given(values=st.tuples(*(st.none() | NUMBERS for _ in FLAGS)), sample=st.booleans())
def test_any_numeric_flags_are_used_or_refused_cleanly(plugins, checkpoint, image, values, sample):
    args = ["infer", "--checkpoint", str(checkpoint), "--image", str(image), "--prompt", "What colour?"]
    args += [f"{flag}={value}" for flag, value in zip(FLAGS, values, strict=True) if value is not None]
    _clean(_invoke(plugins, [*args, *(["--do-sample"] if sample else [])]))


IMAGE_FILES = st.one_of(
    st.sampled_from(sorted(REAL_IMAGES)).map(REAL_IMAGES.__getitem__),
    st.binary(max_size=64),
    st.sampled_from(sorted(REAL_IMAGES)).map(lambda fmt: REAL_IMAGES[fmt][:40]),
)


@CLI
@given(files=st.lists(IMAGE_FILES, min_size=1, max_size=5), as_jsonl=st.booleans())
def test_batches_answer_the_readable_images_and_skip_the_rest(plugins, checkpoint, workdir, files, as_jsonl):
    folder = Path(tempfile.mkdtemp(dir=workdir))
    paths = [_write(folder, data, IMAGE_SUFFIXES[i % len(IMAGE_SUFFIXES)]) for i, data in enumerate(files)]
    source = folder
    if as_jsonl:
        source = folder / "in.jsonl"
        source.write_text("".join(json.dumps({"image": str(p), "prompt": "x"}) + "\n" for p in paths))
    out = folder / "out.txt"
    args = ["infer", "--checkpoint", str(checkpoint), "--input", str(source), "--output", str(out)]
    result = _invoke(
        plugins, [*args, "--prompt", "What colour?", "--max-new-tokens", "2", "--batch-size", "2"]
    )
    _clean(result)
    readable = 0
    for path in paths:
        try:
            read_image(str(path))
            readable += 1
        except MicroVLMError:
            pass
    assert result.exit_code == (0 if readable else 1), result.output
    if readable:
        assert len(out.read_text().splitlines()) == readable


def test_an_unusable_output_is_a_clean_error_before_anything_runs(plugins, checkpoint, image, workdir):
    (workdir / "a_file").write_text("")
    jsonl = workdir / "one.jsonl"
    jsonl.write_text(json.dumps({"image": str(image), "prompt": "x"}) + "\n")
    for output in (workdir, workdir / "a_file" / "out.jsonl", workdir / "missing" / "out.jsonl"):
        args = ["infer", "--checkpoint", str(checkpoint), "--input", str(jsonl), "--output", str(output)]
        result = _invoke(plugins, args)
        _clean(result)
        assert result.exit_code != 0 and str(output) in result.output


def test_the_usage_error_of_a_folder_without_prompt_is_click_s(workdir):
    with pytest.raises(click.UsageError, match="--prompt"):
        batch_inputs(str(workdir), None)
