"""Resuming with a changed recipe: the new run settings apply and each change is said; the
metrics file and the loss curve of a resumed run read as if it had never stopped."""

import json

import pytest

from microvlm import load_plugins
from microvlm.errors import MicroVLMError
from microvlm.recipe import load_recipe
from microvlm.testing import tiny_llm_path
from microvlm.toys import ToyPlugin, toy_training_recipe
from microvlm.train import run
from microvlm.train.state import RunState


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(extra=[("toys", ToyPlugin())])


def load(tmp_path, plugins, out="out", **settings):
    """The toy recipe (8 samples, batch 4: 2 steps an epoch) writing to ``tmp_path / out``."""
    path = tmp_path / f"{out}-{len(list(tmp_path.glob('*.toml')))}.toml"
    path.write_text(toy_training_recipe(str(tmp_path / out), str(tiny_llm_path()), **settings))
    return load_recipe(path, plugins)


class Crash(Exception):
    pass


def crash_after(monkeypatch, recipe, plugins, step):
    """Run ``recipe`` and stop it right after its step-``step`` checkpoint is written."""
    save = RunState.save

    def save_then_crash(self, *args, **kwargs):
        path = save(self, *args, **kwargs)
        if self.step == step:
            raise Crash
        return path

    monkeypatch.setattr(RunState, "save", save_then_crash)
    with pytest.raises(Crash):
        run(recipe, plugins, progress=False)
    monkeypatch.setattr(RunState, "save", save)


def rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def by_step(out, key):
    return {r["step"]: r[key] for r in rows(out) if key in r}


def test_a_changed_learning_rate_applies_on_resume_and_is_said(tmp_path, plugins, monkeypatch, caplog):
    reference = load(tmp_path, plugins, "ref", epochs=2, lr=1e-3)
    run(reference, plugins, progress=False)

    crash_after(monkeypatch, load(tmp_path, plugins, epochs=2, save_every=1, lr=3e-3), plugins, 2)
    with caplog.at_level("WARNING"):
        run(load(tmp_path, plugins, epochs=2, save_every=1, lr=1e-3, seed=2), plugins, progress=False)
    lrs, expected = by_step(tmp_path / "out", "lr"), by_step(tmp_path / "ref", "lr")
    assert lrs[1] != expected[1]  # before the restart: the old rate
    assert [lrs[3], lrs[4]] == [expected[3], expected[4]]  # after it: the new schedule's rates
    assert "run.lr changed from 0.003 to 0.001 since the checkpoint: the learning rate follows" in caplog.text
    assert "run.seed changed from 1 to 2" in caplog.text and "data order" in caplog.text
    assert "run.epochs changed" not in caplog.text


def test_the_recipes_weight_decay_and_schedule_replace_the_checkpoints(tmp_path, plugins, monkeypatch):
    from microvlm.models.vlm import MicroVLM
    from microvlm.train.schedule import make_optimizer, make_scheduler

    recipe = load(tmp_path, plugins, epochs=2, save_every=1)
    crash_after(monkeypatch, recipe, plugins, 3)
    model = MicroVLM.from_config(recipe.model, plugins)
    model.set_trainable(recipe.run.train)
    optimizer = make_optimizer(model, 2e-3, 0.5)
    scheduler = make_scheduler(optimizer, 0, 10, 0.0)
    state = RunState.resume(tmp_path / "out", model, optimizer, scheduler, run=recipe.run)
    assert state.step == 3 and scheduler.last_epoch == 3
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.5, 0.0]
    assert scheduler.base_lrs == [2e-3, 2e-3]
    assert optimizer.param_groups[0]["lr"] == scheduler.get_last_lr()[0] == 2e-3 * scheduler.lr_lambdas[0](3)
    assert optimizer.state  # the moments came back


def test_a_changed_trainable_set_cannot_resume(tmp_path, plugins, monkeypatch):
    crash_after(monkeypatch, load(tmp_path, plugins, epochs=2, save_every=1), plugins, 1)
    changed = load(tmp_path, plugins, epochs=2, save_every=1, train=["bridge", "projection", "llm"])
    with pytest.raises(MicroVLMError, match=r"run\.train was \['bridge', 'projection'\] .* cannot resume"):
        run(changed, plugins, progress=False)
