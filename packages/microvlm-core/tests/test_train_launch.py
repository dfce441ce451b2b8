"""``microvlm run RECIPE --nproc N`` relaunches the same command through torchrun."""

import sys

import pytest
from click.testing import CliRunner

from microvlm import load_plugins
from microvlm.cli import build_cli, recipe_cmd
from microvlm.testing.toys import TOY_RECIPE, ToyPlugin


class Launched(Exception):
    pass


@pytest.fixture
def cli():
    return build_cli(load_plugins(extra=[("toys", ToyPlugin())]))


@pytest.fixture
def recipe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    (tmp_path / "r.toml").write_text(TOY_RECIPE)
    return "r.toml"


@pytest.fixture
def execv(monkeypatch):
    calls = []

    def fake_execv(path, argv):
        calls.append((path, argv))
        raise Launched

    monkeypatch.setattr(recipe_cmd.os, "execv", fake_execv)
    return calls


def test_nproc_relaunches_through_torchrun_with_the_same_arguments(cli, recipe, execv):
    args = ["-v", "run", recipe, "--nproc", "2", "--set", "run.lr=0.01", "--use-lora", "--lora-r", "8"]
    with pytest.raises(Launched):
        CliRunner().invoke(cli, args, catch_exceptions=False)
    [(path, argv)] = execv
    assert path == sys.executable
    assert argv == [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "microvlm",
        "-v",
        "run",
        recipe,
        "--set",
        "run.lr=0.01",
        "--set",
        'model.llm.adapter="lora"',
        "--set",
        "model.llm.lora_r=8",
    ]  # --nproc itself is gone: the workers train


def test_an_invalid_recipe_fails_before_launching(cli, recipe, execv):
    result = CliRunner().invoke(cli, ["run", recipe, "--nproc", "2", "--set", "run.lr=-1"])
    assert result.exit_code != 0 and "run.lr" in result.output
    assert execv == []


def test_nproc_inside_torchrun_is_refused(cli, recipe, execv, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = CliRunner().invoke(cli, ["run", recipe, "--nproc", "2"])
    assert result.exit_code == 2 and "already runs under" in result.output
    assert execv == []


def test_nproc_1_trains_in_this_process(cli, recipe, execv, monkeypatch):
    dispatched = []
    monkeypatch.setattr(recipe_cmd, "dispatch", lambda r, p: dispatched.append(r.run.name))
    result = CliRunner().invoke(cli, ["run", recipe, "--nproc", "1"], catch_exceptions=False)
    assert result.exit_code == 0
    assert dispatched == ["toy"] and execv == []
