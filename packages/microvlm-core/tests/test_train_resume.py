"""Resuming with a changed recipe: the new run settings apply and each change is said; the
metrics file and the loss curve of a resumed run read as if it had never stopped."""

import json

import pytest

from microvlm import load_plugins
from microvlm.errors import MicroVLMError
from microvlm.io import layout
from microvlm.recipes.load import load_recipe
from microvlm.testing.fixtures import tiny_llm_path
from microvlm.testing.toys import Crash, ToyPlugin, run_until_checkpoint, toy_training_recipe
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


def rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def by_step(out, key):
    return {r["step"]: r[key] for r in rows(out) if key in r}


def test_a_changed_learning_rate_applies_on_resume_and_is_said(tmp_path, plugins, monkeypatch, caplog):
    reference = load(tmp_path, plugins, "ref", epochs=2, lr=1e-3)
    run(reference, plugins, progress=False)

    run_until_checkpoint(load(tmp_path, plugins, epochs=2, save_every=1, lr=3e-3), plugins, 2)
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
    run_until_checkpoint(recipe, plugins, 3)
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
    run_until_checkpoint(load(tmp_path, plugins, epochs=2, save_every=1), plugins, 1)
    changed = load(tmp_path, plugins, epochs=2, save_every=1, train=["bridge", "projection", "llm"])
    with pytest.raises(MicroVLMError, match=r"run\.train was \['bridge', 'projection'\] .* cannot resume"):
        run(changed, plugins, progress=False)


EVAL = '\n[eval]\nevery_steps = 3\nbatch_size = 4\n\n[[eval.data]]\ndataset = "toy_dataset"\nn = 8\ntask = "toy_task"\n'


def with_eval(tmp_path, plugins, out, **settings):
    """The toy recipe (4 steps) with a validation at step 3 and at the end."""
    path = tmp_path / f"{out}.toml"
    path.write_text(toy_training_recipe(str(tmp_path / out), str(tiny_llm_path()), **settings) + EVAL)
    return load_recipe(path, plugins)


def comparable(out):
    """Each metrics row without the numbers that depend on the clock."""
    return [{k: v for k, v in r.items() if k not in ("time", "samples_per_s")} for r in rows(out)]


@pytest.fixture
def plotted(monkeypatch):
    """The (x, y) of every line drawn with matplotlib (loss.png's curve)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.axes import Axes

    lines = []
    plot = Axes.plot

    def recording(self, *args, **kwargs):
        lines.append((list(args[0]), list(args[1])))
        return plot(self, *args, **kwargs)

    monkeypatch.setattr(Axes, "plot", recording)
    return lines


@pytest.mark.parametrize("kill", ["while logging step 4", "after the last checkpoint"])
def test_a_resumed_runs_metrics_and_loss_curve_read_as_if_it_never_stopped(
    tmp_path, plugins, monkeypatch, plotted, kill
):
    from microvlm.loggers.sinks import JsonlLogger

    settings = {"epochs": 2, "save_every": 1}
    run(with_eval(tmp_path, plugins, "ref", **settings), plugins, progress=False)
    reference = comparable(tmp_path / "ref")
    assert [r["step"] for r in reference if "loss" in r] == [1, 2, 3, 4]
    assert any("val/toy_dataset/toy_task/loss" in r for r in reference if r["step"] == 3)
    plotted.clear()

    recipe = with_eval(tmp_path, plugins, "out", **settings)
    if kill == "after the last checkpoint":
        run_until_checkpoint(recipe, plugins, 4)
    else:  # step 4's row is written, its checkpoint is not: the resumed run logs step 4 again
        log = JsonlLogger.log

        def log_then_crash(self, metrics, step):
            log(self, metrics, step)
            if step == 4 and "loss" in metrics:
                raise Crash

        monkeypatch.setattr(JsonlLogger, "log", log_then_crash)
        with pytest.raises(Crash):
            run(recipe, plugins, progress=False)
        monkeypatch.setattr(JsonlLogger, "log", log)
    meta = layout.load_meta(tmp_path / "out" / "checkpoint_step000003")
    assert meta["metrics_rows"] == {"metrics.jsonl": 4}  # steps 1-3 and step 3's validation
    plotted.clear()
    run(recipe, plugins, progress=False)
    assert comparable(tmp_path / "out") == reference
    assert (tmp_path / "out" / "loss.png").is_file()
    [(steps, losses)] = plotted
    assert steps == [1, 2, 3, 4] and losses == [r["loss"] for r in reference if "loss" in r]


def test_the_metrics_file_keeps_what_was_logged_up_to_the_checkpoint(tmp_path):
    from microvlm.loggers.sinks import JsonlLogger, JsonlLoggerConfig

    lines = [json.dumps({"step": s, "loss": float(s)}) for s in (1, 2, 2, 3)] + ['{"step": 4, "lo']
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines))  # the last line cut by a kill
    logger = JsonlLogger(JsonlLoggerConfig(), run_dir=tmp_path)
    assert logger.rows == 5
    logger.resume(3)
    assert [step for step, _ in logger.history()] == [1, 2, 2, 3] and logger.rows == 4
    logger.resume(3, rows=2)  # the checkpoint was written when the file had 2 rows
    logger.log({"loss": 9.0}, 3)
    logger.close()
    assert [r["step"] for r in rows(tmp_path)] == [1, 2, 3] and logger.rows == 3
