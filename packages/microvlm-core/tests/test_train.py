"""The runner on toy data: it learns, checkpoints atomically, resumes exactly, chains stages."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from microvlm import load_plugins
from microvlm.io import layout
from microvlm.recipes.load import load_recipe
from microvlm.testing.fixtures import tiny_llm_path
from microvlm.testing.toys import ToyPlugin, run_until_checkpoint, toy_training_recipe
from microvlm.train import checkpoint as ckpt
from microvlm.train import run


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(extra=[("toys", ToyPlugin())])


def recipe_text(out, **run):
    out = run.pop("output_dir", out)
    return toy_training_recipe(str(out), str(tiny_llm_path()), **run)


def load(tmp_path, plugins, name="r.toml", **run):
    path = tmp_path / name
    path.write_text(recipe_text(tmp_path / "out", **run))
    return load_recipe(path, plugins)


def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_training_lowers_the_loss_and_writes_outputs(tmp_path, plugins):
    recipe = load(tmp_path, plugins, train=["bridge", "projection", "llm"])
    final = run(recipe, plugins, progress=False)
    rows = [r for r in metrics(tmp_path / "out") if "loss" in r]
    assert len(rows) == 12  # 8 samples / batch 4 = 2 steps per epoch, 6 epochs
    assert rows[-1]["loss"] < rows[0]["loss"] * 0.7, [r["loss"] for r in rows]
    assert final == tmp_path / "out" / "checkpoint_final"
    weights = load_file(str(final / "model.safetensors"))
    assert {k.split(".")[0] for k in weights} == {"bridge", "projection", "llm"}
    assert (final / "model.toml").read_text().count("[model.") >= 3
    assert (tmp_path / "out" / "loss.png").stat().st_size > 1000


def test_checkpoints_resume_bitwise(tmp_path, plugins, monkeypatch):
    straight = load(tmp_path, plugins, "a.toml", output_dir=str(tmp_path / "a"), epochs=2, save_every=1)
    run(straight, plugins, progress=False)
    reference = load_file(str(tmp_path / "a" / "checkpoint_final" / "model.safetensors"))

    # The same recipe, crashing right after the step-3 checkpoint is written (of 4 steps).
    again = load(tmp_path, plugins, "b.toml", output_dir=str(tmp_path / "b"), epochs=2, save_every=1)
    run_until_checkpoint(again, plugins, 3)
    assert [s for s, _ in ckpt.step_checkpoints(tmp_path / "b")] == [2, 3]  # keep_last = 2
    assert not (tmp_path / "b" / "checkpoint_final").exists()
    run(again, plugins, progress=False)  # rerunning the command resumes at step 3
    result = load_file(str(tmp_path / "b" / "checkpoint_final" / "model.safetensors"))
    assert result.keys() == reference.keys()
    for name in reference:
        assert torch.equal(result[name], reference[name]), name


def test_trainer_state_loads_without_unpickling(tmp_path, plugins):
    run(load(tmp_path, plugins, epochs=1, save_every=1), plugins, progress=False)
    [(_, path)] = ckpt.step_checkpoints(tmp_path / "out")[-1:]
    state = torch.load(path / "trainer_state.pt", weights_only=True)
    assert {"optimizer", "scheduler", "rng"} <= set(state)
    assert json.loads((path / "trainer.json").read_text())["step"] == 2


def test_init_from_and_unknown_weights(tmp_path, plugins):
    run(load(tmp_path, plugins, epochs=1), plugins, progress=False)
    first = load_file(str(tmp_path / "out" / "checkpoint_final" / "model.safetensors"))
    recipe = load(
        tmp_path,
        plugins,
        "s2.toml",
        output_dir=str(tmp_path / "s2"),
        epochs=1,
        lr=1e-9,
        init_from=str(tmp_path / "out" / "checkpoint_final.pth"),
    )  # the seed's spelling works
    run(recipe, plugins, progress=False)
    second = load_file(str(tmp_path / "s2" / "checkpoint_final" / "model.safetensors"))
    name = next(iter(first))
    assert torch.allclose(first[name], second[name], atol=1e-5)  # started from stage 1's weights


def test_atomic_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    target = tmp_path / "checkpoint_final"
    ckpt.save_checkpoint(target, {"w": torch.ones(2)}, None, {"step": 1})

    def fail(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(layout, "_fsync_dir", fail)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(target, {"w": torch.zeros(2)}, None, {"step": 2})
    assert json.loads((target / "trainer.json").read_text())["step"] == 1
    assert torch.equal(load_file(str(target / "model.safetensors"))["w"], torch.ones(2))


def test_pth_pickles_are_refused(tmp_path):
    bad = tmp_path / "model.pth"
    bad.write_bytes(b"not really a pickle")
    with pytest.raises(Exception, match="pickles and are not loaded"):
        layout.resolve_checkpoint(bad)


def test_gradient_checkpointing_recomputes_the_llm_and_changes_nothing(tmp_path, plugins, monkeypatch):
    from microvlm.models.vlm import MicroVLM

    mlp_calls = {}
    build = MicroVLM.from_config.__func__

    def counting_build(cls, config, *args, **kwargs):
        """Count the decoder MLPs' forward calls: recomputation in backward calls them again."""
        model = build(cls, config, *args, **kwargs)
        key = config.llm.config.gradient_checkpointing
        mlp_calls[key] = 0

        def hook(*_):
            mlp_calls[key] += 1

        for name, module in model.llm.named_modules():
            if name.endswith("mlp"):
                module.register_forward_pre_hook(hook)  # a recompute may stop early, inside
        return model

    monkeypatch.setattr(MicroVLM, "from_config", classmethod(counting_build))
    plain = load(tmp_path, plugins, "a.toml", output_dir=str(tmp_path / "a"), epochs=1)
    run(plain, plugins, progress=False)
    saving = load(
        tmp_path, plugins, "b.toml", output_dir=str(tmp_path / "b"), epochs=1, gradient_checkpointing=True
    )
    assert not saving.model.llm.config.gradient_checkpointing  # the run setting turns it on
    run(saving, plugins, progress=False)
    # same steps; every decoder MLP ran once more per training step (the final evaluation adds
    # the same number of calls to both runs)
    assert mlp_calls[True] > mlp_calls[False] > 0, mlp_calls
    a = load_file(str(tmp_path / "a" / "checkpoint_final" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "checkpoint_final" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-6, msg=name)


def test_gradient_checkpointing_needs_an_llm_that_offers_it(tmp_path, plugins):
    import attrs

    from microvlm.errors import MicroVLMError
    from microvlm.train.loop import with_gradient_checkpointing

    @attrs.frozen
    class NoOption:
        model: str = "x"

    recipe = load(tmp_path, plugins, gradient_checkpointing=True)
    llm = attrs.evolve(recipe.model.llm, name="other_llm", config=NoOption())
    recipe = attrs.evolve(recipe, model=attrs.evolve(recipe.model, llm=llm))
    with pytest.raises(MicroVLMError, match="'other_llm' has no gradient_checkpointing option"):
        with_gradient_checkpointing(recipe)


def test_image_token_spread():
    from microvlm.train.validation import image_token_spread

    same = torch.randn(1, 4, 8).expand(16, -1, -1)  # every image gives the same tokens
    assert image_token_spread(same) == pytest.approx(0.0, abs=1e-6)
    independent = torch.randn(256, 4, 8)  # all variation is across images
    assert image_token_spread(independent) == pytest.approx(1.0, abs=0.05)
    per_query = torch.randn(1, 4, 8) * 10 + 0.1 * torch.randn(64, 4, 8)  # mostly the queries' own
    assert 0.005 < image_token_spread(per_query) < 0.05
    assert math.isnan(image_token_spread(torch.randn(1, 4, 8)))


def test_validation_reports_the_image_token_spread_and_warns_when_blind(tmp_path, plugins, caplog):
    from microvlm.train.validation import warn_if_blind

    path = tmp_path / "r.toml"
    path.write_text(
        recipe_text(tmp_path / "out", epochs=1)
        + '\n[eval]\nbatch_size = 4\n\n[[eval.data]]\ndataset = "toy_dataset"\nn = 8\ntask = "toy_task"\n'
    )
    run(load_recipe(path, plugins), plugins, progress=False)
    rows = [r for r in metrics(tmp_path / "out") if any(k.endswith("image_token_spread") for k in r)]
    assert rows, metrics(tmp_path / "out")
    (spread,) = [v for k, v in rows[-1].items() if k.endswith("image_token_spread")]
    assert 0.0 <= spread < 1.5

    with caplog.at_level("WARNING", logger="microvlm.train.validation"):
        warn_if_blind(
            {"val/a/image_token_spread": 0.3, "val/b/image_token_spread": 0.0004, "val/b/loss": 0.0}
        )
    warned = [r for r in caplog.records if r.name == "microvlm.train.validation" and r.levelname == "WARNING"]
    assert [r.getMessage().split(" = ")[0] for r in warned] == ["val/b/image_token_spread"]


def test_micro_step_at_keeps_the_sample_position(caplog):
    from microvlm.train.state import micro_step_at

    assert micro_step_at(12, batch_size=2, world=1, grad_accum_steps=1) == 6
    assert micro_step_at(12, batch_size=2, world=2, grad_accum_steps=1) == 3
    assert micro_step_at(12, batch_size=3, world=2, grad_accum_steps=2) == 2  # 12 = 3 x 2 x 2
    assert not caplog.records
    with caplog.at_level("WARNING"):
        assert micro_step_at(12, batch_size=4, world=2, grad_accum_steps=1, where="ck") == 1  # 8 of 12
    assert "continues at sample 8, so 4 samples are seen a second time" in caplog.text


def test_resume_with_another_batch_size_continues_at_the_same_sample(tmp_path, plugins, monkeypatch):
    from microvlm.train.state import RunState

    recipe = load(tmp_path, plugins, epochs=2, save_every=1)  # batch 4, 8 samples: 2 steps an epoch
    run_until_checkpoint(recipe, plugins, 3)
    meta = layout.load_meta(tmp_path / "out" / "checkpoint_step000003")
    assert (meta["epoch"], meta["micro_step"], meta["epoch_samples"], meta["world"]) == (1, 1, 4, 1)

    from microvlm.models.vlm import MicroVLM
    from microvlm.train.schedule import make_optimizer, make_scheduler

    model = MicroVLM.from_config(recipe.model, plugins)
    model.set_trainable(recipe.run.train)
    optimizer = make_optimizer(model, 1e-3, 0.0)
    scheduler = make_scheduler(optimizer, 0, 4, 0.1)
    state = RunState.resume(tmp_path / "out", model, optimizer, scheduler, batch_size=2)
    assert (state.step, state.epoch, state.micro_step) == (3, 1, 2)  # 4 samples = 2 batches of 2
    state = RunState.resume(tmp_path / "out", model, optimizer, scheduler)  # no batch size: as saved
    assert state.micro_step == 1
