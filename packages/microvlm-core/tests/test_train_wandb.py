"""The optional ``wandb`` logger, against a fake ``wandb`` module (the real one is not needed)."""

import importlib.machinery
import sys
import types

import pytest

from microvlm import load_plugins
from microvlm.errors import MicroVLMError
from microvlm.loggers.wandb_sink import WandbLoggerConfig, scrub
from microvlm.recipes.load import load_recipe
from microvlm.testing.fixtures import tiny_llm_path
from microvlm.testing.toys import ToyPlugin, toy_training_recipe
from microvlm.train import run


class FakeRun:
    def __init__(self, calls, run_id):
        self.calls = calls
        self.id = run_id

    def log(self, metrics, step):
        self.calls.append(("log", dict(metrics), step))

    def finish(self):
        self.calls.append(("finish",))


@pytest.fixture
def fake_wandb(monkeypatch):
    module = types.ModuleType("wandb")
    module.__spec__ = importlib.machinery.ModuleSpec("wandb", None)  # transformers probes find_spec
    module.calls = []

    def init(**kwargs):
        module.calls.append(("init", kwargs))
        return FakeRun(module.calls, kwargs.get("id", "run123"))

    module.init = init
    monkeypatch.setitem(sys.modules, "wandb", module)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    return module


RUN_CONFIG = {
    "run": {"name": "stage1", "lr": 1e-4, "max_text_tokens": 256},
    "model": {"llm": {"model": "Qwen/Qwen2.5-0.5B", "tokenizer": "", "hf_token": "hf_abc", "api_key": "k"}},
    "data": [{"dataset": "webdataset", "root": "s3://b", "aws_secret_access_key": "x", "password": "p"}],
    "loggers": [{"name": "wandb", "project": "p"}],
}


def test_init_gets_the_scrubbed_config_and_mode_and_logs_then_finishes(fake_wandb, tmp_path):
    config = WandbLoggerConfig(project="microvlm-e", mode="offline", tags=("stage1", "cpu"))
    logger = load_plugins().build("logger", "wandb", config, run_dir=tmp_path, run_config=RUN_CONFIG)
    logger.log({"loss": 2.5, "lr": 1e-4}, step=10)
    logger.close()

    (_, kwargs), log, finish = fake_wandb.calls
    assert kwargs["project"] == "microvlm-e" and kwargs["mode"] == "offline"
    assert kwargs["tags"] == ["stage1", "cpu"] and kwargs["name"] == "stage1"
    assert kwargs["dir"] == str(tmp_path) and "entity" not in kwargs  # "" defers to WANDB_ENTITY
    sent = kwargs["config"]
    assert sent["model"]["llm"] == {"model": "Qwen/Qwen2.5-0.5B", "tokenizer": ""}
    assert sent["data"] == [{"dataset": "webdataset", "root": "s3://b"}]
    assert sent["run"]["max_text_tokens"] == 256  # a count of tokens is not a credential
    assert "hf_abc" not in repr(sent)
    assert log == ("log", {"loss": 2.5, "lr": 1e-4}, 10)
    assert finish == ("finish",)
    assert (tmp_path / "wandb_run_id").read_text().strip() == "run123"


def test_a_resumed_run_continues_the_same_wandb_run(fake_wandb, tmp_path):
    (tmp_path / "wandb_run_id").write_text("abc42\n")
    load_plugins().build("logger", "wandb", run_dir=tmp_path, run_config=RUN_CONFIG).close()
    kwargs = fake_wandb.calls[0][1]
    assert kwargs["id"] == "abc42" and kwargs["resume"] == "allow"
    assert "mode" not in kwargs  # "" defers to WANDB_MODE, then wandb's default


def test_missing_wandb_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    with pytest.raises(MicroVLMError, match=r'pip install "microvlm-core\[wandb\]"'):
        load_plugins().build("logger", "wandb", run_dir=tmp_path, run_config={})


def test_scrub_keeps_tokenizer_and_token_counts():
    table = {"tokenizer": "t", "max_new_tokens": 3, "token": "s", "HF_TOKEN": "s", "keep_last": 2, "key": 1}
    assert scrub(table) == {"tokenizer": "t", "max_new_tokens": 3, "keep_last": 2}


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(extra=[("toys", ToyPlugin())])


def toy_recipe(folder, plugins, loggers=""):
    folder.mkdir(exist_ok=True)
    path = folder / "r.toml"
    path.write_text(toy_training_recipe(str(folder / "out"), str(tiny_llm_path()), epochs=1) + loggers)
    return load_recipe(path, plugins)


def test_wandb_project_in_the_environment_turns_it_on(fake_wandb, tmp_path, plugins, monkeypatch):
    monkeypatch.setenv("WANDB_PROJECT", "from-env")
    run(toy_recipe(tmp_path, plugins), plugins, progress=False)
    kinds = [c[0] for c in fake_wandb.calls]
    assert kinds == ["init", "log", "log", "finish"]  # 8 samples / batch 4: 2 steps, then finish
    init = fake_wandb.calls[0][1]
    assert init["project"] == "from-env" and init["config"]["run"]["name"] == "toy"
    assert [c[2] for c in fake_wandb.calls[1:3]] == [1, 2] and "loss" in fake_wandb.calls[1][1]


def test_off_unless_the_recipe_or_the_environment_says(fake_wandb, tmp_path, plugins):
    run(toy_recipe(tmp_path / "a", plugins), plugins, progress=False)
    assert fake_wandb.calls == []
    listed = toy_recipe(tmp_path / "b", plugins, '\n[[loggers]]\nname = "wandb"\nmode = "disabled"\n')
    run(listed, plugins, progress=False)
    assert [c[0] for c in fake_wandb.calls] == ["init", "log", "log", "finish"]
    assert fake_wandb.calls[0][1]["mode"] == "disabled"
