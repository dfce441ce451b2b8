"""``microvlm infer --interactive`` driven through a pseudo-terminal, as a person would use it:
a question before any image, ``load PATH``, a question, ``quit``."""

import os
import select
import subprocess
import sys
import time

import pytest

from microvlm import load_plugins
from microvlm.recipes.load import load_recipe
from microvlm.testing.fixtures import TINY_MODEL_TOML, tiny_llm_path
from microvlm.train import run

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.name != "posix", reason="pseudo-terminals are POSIX")]

RECIPE = (
    """\
[run]
name = "pty"
output_dir = "{out}"
epochs = 1
batch_size = 4
lr = 1e-3
threads = 1

"""
    + TINY_MODEL_TOML
    + """

[[data]]
dataset = "shapes"
root = "{data}"
view = "caption"
generate = true
n_train = 8
n_val = 1
n_test = 1
image_size = 32
task = "captioning"
"""
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("pty")
    recipe = root / "recipe.toml"
    recipe.write_text(RECIPE.format(out=root / "out", llm=tiny_llm_path(), data=root / "shapes"))
    plugins = load_plugins()
    final = run(load_recipe(recipe, plugins), plugins, progress=False)
    image = next((root / "shapes" / "coco" / "train2017").glob("*.jpg"))
    return final, image


def read_until(fd, text, timeout=120.0):
    """Read from the terminal until ``text`` shows up; returns everything read."""
    seen = b""
    deadline = time.monotonic() + timeout
    while text.encode() not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {text!r}; got {seen.decode(errors='replace')!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            seen += chunk
    return seen.decode(errors="replace")


def start_session(final):
    """``microvlm infer --interactive`` in a child process on a new terminal: (process, terminal fd)."""
    leader, follower = os.openpty()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "microvlm",
            "infer",
            "--checkpoint",
            str(final),
            "--interactive",
            "--max-new-tokens",
            "4",
        ],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        close_fds=True,
    )
    os.close(follower)
    return proc, leader


def end_session(proc, leader):
    if proc.poll() is None:
        proc.kill()
    os.close(leader)


def test_interactive_session_in_a_terminal(checkpoint):
    final, image = checkpoint
    proc, leader = start_session(final)
    try:
        read_until(leader, "> ")
        os.write(leader, b"How many shapes are there?\n")
        assert "no image yet; load one with: load PATH" in read_until(leader, "> ")
        os.write(leader, f"load {image}\n".encode())
        assert f"loaded {image}" in read_until(leader, "> ")
        os.write(leader, b"Describe this image.\n")
        answer = read_until(leader, "> ")
        assert answer.strip().strip(">").strip(), "the model streamed nothing"
        os.write(leader, b"quit\n")
        assert proc.wait(timeout=60) == 0
    finally:
        end_session(proc, leader)


def test_interactive_session_goes_on_after_images_over_the_pixel_limit(checkpoint, tmp_path):
    """#13 item 12: PIL's DecompressionBombError (and its warning) ended the session in a traceback."""
    from microvlm.testing.fixtures import png_declaring

    final, image = checkpoint
    over_error = tmp_path / "bomb_error.png"  # 200 M pixels: PIL raises DecompressionBombError
    over_error.write_bytes(png_declaring(20000, 10000))
    over_warning = tmp_path / "bomb_warning.png"  # 100 M pixels: PIL only warns, then decodes
    over_warning.write_bytes(png_declaring(10000, 10000))
    proc, leader = start_session(final)
    try:
        seen = read_until(leader, "> ")
        for bomb in (over_error, over_warning):
            os.write(leader, f"load {bomb}\n".encode())
            reply = read_until(leader, "> ")
            assert f"{bomb}: image too large" in reply, reply
            seen += reply
        os.write(leader, f"load {image}\n".encode())
        assert f"loaded {image}" in read_until(leader, "> ")
        os.write(leader, b"Describe this image.\n")
        seen += read_until(leader, "> ")
        os.write(leader, b"quit\n")
        assert proc.wait(timeout=60) == 0
        assert "Traceback" not in seen
    finally:
        end_session(proc, leader)
