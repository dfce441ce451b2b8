"""A non-finite loss or gradient stops training with the step, the numbers and the likely cause;
``run.max_nonfinite_steps`` lets a run skip a few such steps (counted, logged, checkpointed)."""

import json
import math

import attrs
import pytest
import torch
from safetensors.torch import load_file

from microvlm import load_plugins
from microvlm.errors import MicroVLMError
from microvlm.io import layout
from microvlm.models.vlm import MicroVLM
from microvlm.recipes.config import RunConfig
from microvlm.recipes.load import load_recipe
from microvlm.testing.fixtures import tiny_llm_path
from microvlm.testing.toys import ToyPlugin, run_until_checkpoint, toy_training_recipe
from microvlm.train import checkpoint as ckpt
from microvlm.train import run


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(extra=[("toys", ToyPlugin())])


def load(tmp_path, plugins, **settings):
    """The toy recipe: 8 samples, batch 4, 2 steps an epoch."""
    path = tmp_path / "r.toml"
    path.write_text(toy_training_recipe(str(tmp_path / "out"), str(tiny_llm_path()), **settings))
    return load_recipe(path, plugins)


def with_run(recipe, **settings):
    """``recipe`` with run settings the recipe checks refuse (a run must stop on them all the same)."""
    with attrs.validators.disabled():
        return attrs.evolve(recipe, run=attrs.evolve(recipe.run, **settings))


@pytest.fixture
def nan_at(monkeypatch):
    """``nan_at({2, 3})``: the model's loss is NaN in its 2nd and 3rd training forward passes
    (counted from 1 in each run; one pass per step here)."""
    calls = {"n": 0, "at": set()}
    forward = MicroVLM.forward

    def poisoned(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        if self.training:
            calls["n"] += 1
            if calls["n"] in calls["at"]:
                out = attrs.evolve(out, loss=out.loss * math.nan)  # NaN gradients too
        return out

    monkeypatch.setattr(MicroVLM, "forward", poisoned)

    def arm(at):
        calls["n"], calls["at"] = 0, set(at)

    return arm


def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_an_infinite_learning_rate_stops_at_the_first_step(tmp_path, plugins):
    recipe = with_run(load(tmp_path, plugins, epochs=1), lr=math.inf)
    with pytest.raises(MicroVLMError, match=r"step 1: the learning rate is inf .*run\.lr = inf"):
        run(recipe, plugins, progress=False)
    assert not (tmp_path / "out" / "checkpoint_final").exists()


def test_a_nan_loss_stops_the_run_and_says_where_and_why(tmp_path, plugins, nan_at):
    nan_at({2})
    with pytest.raises(MicroVLMError) as info:
        run(load(tmp_path, plugins, epochs=2, save_every=1), plugins, progress=False)
    message = str(info.value)
    assert message.startswith("step 2: the loss is nan and the gradient norm nan"), message
    assert "run.lr = 0.003" in message and "run.max_nonfinite_steps" in message
    assert not (tmp_path / "out" / "checkpoint_final").exists()
    assert [s for s, _ in ckpt.step_checkpoints(tmp_path / "out")] == [1]  # the last good step's


def test_max_nonfinite_steps_skips_and_counts_them_across_a_resume(tmp_path, plugins, nan_at):
    assert RunConfig().max_nonfinite_steps == 0
    recipe = load(tmp_path, plugins, epochs=2, save_every=1, max_nonfinite_steps=1)

    nan_at({2})  # step 2 is skipped: the optimizer leaves the weights as they were
    run_until_checkpoint(recipe, plugins, 2)
    one = load_file(str(tmp_path / "out" / "checkpoint_step000001" / "model.safetensors"))
    two = load_file(str(tmp_path / "out" / "checkpoint_step000002" / "model.safetensors"))
    assert all(torch.equal(one[k], two[k]) for k in one)
    assert layout.load_meta(tmp_path / "out" / "checkpoint_step000002")["nonfinite_steps"] == 1
    assert [r["nonfinite_steps"] for r in metrics(tmp_path / "out") if "nonfinite_steps" in r] == [1]

    nan_at({1})  # the resumed run's first step, step 3: a second one is one too many
    with pytest.raises(
        MicroVLMError, match=r"step 3: the loss is nan .* 2 steps .*run\.max_nonfinite_steps = 1"
    ):
        run(recipe, plugins, progress=False)

    nan_at(set())
    run(recipe, plugins, progress=False)  # from the step-2 checkpoint again, without a bad step
    final = load_file(str(tmp_path / "out" / "checkpoint_final" / "model.safetensors"))
    assert all(torch.isfinite(t).all() for t in final.values())


def test_no_final_checkpoint_of_non_finite_weights():
    from microvlm.train.guards import check_weights

    model = torch.nn.Linear(2, 2)
    check_weights(model, 5, RunConfig())
    with torch.no_grad():
        model.weight[0, 0] = math.inf
    with pytest.raises(
        MicroVLMError, match=r"after step 5 1 trainable tensors hold NaN/inf \(e\.g\. weight\)"
    ):
        check_weights(model, 5, RunConfig())
    model.weight.requires_grad_(False)  # frozen weights are not the optimizer's doing
    check_weights(model, 5, RunConfig())
