"""``microvlm infer --interactive`` in a real process on a pseudo-terminal (stdin is a tty, as for a user).

The checkpoint uses installed components only (timm encoder, Q-Former, the tiny Qwen2), so
``python -m microvlm`` in a child process can load it.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

pty = pytest.importorskip("pty")  # POSIX only

WAIT_S = 180.0  # a guard against a hung child on a loaded machine, not a time assertion


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from microvlm import load_plugins
    from microvlm.models.vlm import MicroVLM
    from microvlm.recipe import build_model_config
    from microvlm.testing import TINY_MODEL_TOML, tiny_llm_path

    plugins = load_plugins()
    section = tomllib.loads(TINY_MODEL_TOML.format(llm=tiny_llm_path()))["model"]
    model = MicroVLM(config=build_model_config(section, plugins, "test"), plugins=plugins)
    return model.save_pretrained(tmp_path_factory.mktemp("pty") / "checkpoint", weights="all")


class Session:
    """A child process whose stdin, stdout and stderr are one pseudo-terminal."""

    def __init__(self, args: list[str]) -> None:
        self.master, slave = pty.openpty()
        env = {**os.environ, "TERM": "dumb", "NO_COLOR": "1", "COLUMNS": "200"}
        self.process = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env)
        os.close(slave)
        self.output = ""

    def read_until(self, text: str, count: int = 1) -> None:
        while self.output.count(text) < count:
            ready, _, _ = select.select([self.master], [], [], WAIT_S)
            assert ready, f"no {text!r} after {WAIT_S} s; output so far:\n{self.output}"
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the child closed the terminal
                chunk = b""
            assert chunk, f"the session ended before {text!r}; output:\n{self.output}"
            self.output += chunk.decode("utf-8", "replace")

    def send(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def finish(self) -> int:
        try:
            return self.process.wait(WAIT_S)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            os.close(self.master)


def test_interactive_session_survives_images_over_the_pixel_limit(checkpoint, tmp_path):
    from microvlm.testing import png_declaring

    over_error = tmp_path / "bomb_error.png"  # 200 M pixels: PIL raises DecompressionBombError
    over_error.write_bytes(png_declaring(20000, 10000))
    over_warning = tmp_path / "bomb_warning.png"  # 100 M pixels: PIL only warns, then decodes
    over_warning.write_bytes(png_declaring(10000, 10000))
    good = tmp_path / "red.png"
    Image.new("RGB", (32, 32), (220, 20, 20)).save(good)

    args = [sys.executable, "-m", "microvlm", "infer", "--checkpoint", str(checkpoint), "--interactive"]
    session = Session([*args, "--max-new-tokens", "2"])
    session.read_until("Interactive mode")
    session.send(f"load {over_error}")
    session.read_until("image too large")
    session.send(f"load {over_warning}")
    session.read_until("image too large", count=2)
    session.send(f"load {good}")
    session.read_until(f"loaded {good}")
    session.send("What colour is it?")
    session.send("quit")
    assert session.finish() == 0, session.output
    assert f"{over_error}: image too large" in session.output
    assert f"{over_warning}: image too large" in session.output
    assert "Traceback" not in session.output
