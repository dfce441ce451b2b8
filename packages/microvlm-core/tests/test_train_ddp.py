"""Distributed training: 2 CPU processes (gloo, DDP) follow the loss curve of 1 process with
the same global batch; only rank 0 writes; per-rank RNG states go into checkpoints."""

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from microvlm import load_plugins
from microvlm.recipes.load import load_recipe
from microvlm.testing.fixtures import tiny_llm_path
from microvlm.testing.toys import ToyPlugin, toy_training_recipe
from microvlm.train import checkpoint as ckpt
from microvlm.train import run
from microvlm.train.dist import DistInfo
from microvlm.train.loop import _token_weight, text_token_budget
from microvlm.train.reporting import Reporter

# The toy plugin is not an entry point, so the workers run this script, which registers it.
SCRIPT = """\
import sys
from microvlm import load_plugins
from microvlm.recipes.load import load_recipe
from microvlm.testing.toys import ToyPlugin
from microvlm.train import run

plugins = load_plugins(extra=[("toys", ToyPlugin())])
run(load_recipe(sys.argv[1], plugins, sys.argv[2:]), plugins, progress=False)
"""

# A second entry with a one-token prompt; with 6 text tokens per sample the first entry's
# captions are cut to 2 target tokens, the second's keep 4, so the ranks' token counts differ.
SECOND_ENTRY = """
[[data]]
dataset = "toy_dataset"
n = 8
task = {name = "toy_task", prompt = "Say"}
"""
# 16 samples, global batch 8: 2 steps per epoch, 6 steps; no dropout, so both runs compute
# the same function; the LLM stays frozen (stage 1's trainable set), the encoder too.
COMMON = ["run.max_text_tokens=6", "model.bridge.dropout=0.0", "run.epochs=3", "run.save_every=2"]


def reduction_order_bound(recipe, plugins, state, c=100.0):
    """How far apart two runs of ``recipe`` may end that add the same numbers in another order.

    fp32 rounding makes each gradient element differ by about ``c * eps * S``, where ``S`` is the
    size of the gradients it is summed from (the largest RMS gradient of the run, from the
    reference run's Adam state ``v``) and ``c`` covers the summation depth and the steps that
    feed the differences back. Adam moves an element by ``lr * g / (sqrt(v) + eps_adam)`` per
    step, at most ``lr``; so an element whose RMS gradient is ``sqrt(v)`` ends at most
    ``2 * steps * lr * min(1, c * eps * S / (sqrt(v) + eps_adam))`` apart: tight where the
    gradient is well above the rounding noise, up to Adam's full step where it is the noise
    itself (an attention key bias, whose true gradient is zero, moves with the noise's sign).
    A wrong gradient (a rank weighted or sliced wrongly) moves elements by ``~lr`` per step.
    """
    from microvlm.models.vlm import MicroVLM
    from microvlm.train.schedule import param_groups

    model = MicroVLM.from_config(recipe.model, plugins)
    model.set_trainable(recipe.run.train)
    names = {id(p): n for n, p in model.named_parameters()}
    order = [names[id(p)] for g in param_groups(model.named_parameters(), 0.1) for p in g["params"]]
    opt = state["optimizer"]
    (beta2,) = {g["betas"][1] for g in opt["param_groups"]}
    (adam_eps,) = {g["eps"] for g in opt["param_groups"]}
    steps = int(opt["state"][0]["step"])
    rms = {n: (opt["state"][i]["exp_avg_sq"] / (1 - beta2**steps)).sqrt() for i, n in enumerate(order)}
    scale = max(float(v.max()) for v in rms.values())
    noise = c * torch.finfo(torch.float32).eps * scale
    lr = recipe.run.lr
    return {n: 2 * steps * lr * torch.clamp(noise / (v + adam_eps), max=1.0) for n, v in rms.items()}


def torchrun(tmp_path, script, *args):
    """Run the Python ``script`` (its text) in 2 processes under torchrun, in ``tmp_path``."""
    path = tmp_path / "train_script.py"
    path.write_text(script)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(path),
        *map(str, args),
    ]
    return subprocess.run(command, check=False, cwd=tmp_path, capture_output=True, text=True, timeout=300)


def losses(out):
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"], r["target_tokens"]) for r in rows if "loss" in r]


@pytest.mark.slow  # ~40 s: two worker processes start up (torch, transformers)
def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    plugins = load_plugins(extra=[("toys", ToyPlugin())])
    path = tmp_path / "r.toml"
    path.write_text(toy_training_recipe("unused", str(tiny_llm_path())) + SECOND_ENTRY)

    single = tmp_path / "single"
    run(load_recipe(path, plugins, [*COMMON, f"run.output_dir={single}", "run.batch_size=8"]), plugins, False)

    double = tmp_path / "double"
    per_process = "run.batch_size=4"
    done = torchrun(tmp_path, SCRIPT, path, *COMMON, f"run.output_dir={double}", per_process)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "unused parameters" not in done.stderr

    one, two = losses(single), losses(double)
    assert [s for s, _, _ in two] == [1, 2, 3, 4, 5, 6]
    assert [n for _, _, n in two] == [n for _, _, n in one]  # tokens of both ranks are counted
    assert [loss for _, loss, _ in two] == pytest.approx([loss for _, loss, _ in one], rel=1e-4)
    assert two[-1][1] < two[0][1]  # and it trains

    a = load_file(str(single / "checkpoint_final" / "model.safetensors"))
    b = load_file(str(double / "checkpoint_final" / "model.safetensors"))
    assert a.keys() == b.keys() and {k.split(".")[0] for k in a} == {"bridge", "projection"}
    recipe = load_recipe(path, plugins, [*COMMON, f"run.output_dir={single}", "run.batch_size=8"])
    bound = reduction_order_bound(recipe, plugins, ckpt.load_state(single / "checkpoint_step000006"))
    for name in a:
        excess = ((b[name] - a[name]).abs() - bound[name]).max()
        assert excess <= 0, (name, float((b[name] - a[name]).abs().max()), float(bound[name].min()))
    # and the bound is no blank cheque: two steps fewer of training are far outside it
    a4 = load_file(str(single / "checkpoint_step000004" / "model.safetensors"))
    outside = sum(int(((a4[n] - a[n]).abs() > bound[n]).sum()) for n in a) / sum(
        t.numel() for t in a.values()
    )
    assert outside > 0.5, outside

    # Rank 0 alone wrote the run folder; the checkpoint holds both ranks' generator states.
    assert sorted(p.name for p in double.iterdir() if p.name.startswith("checkpoint")) == [
        "checkpoint_final",
        "checkpoint_step000004",
        "checkpoint_step000006",
    ]
    [(_, last)] = ckpt.step_checkpoints(double)[-1:]
    state = ckpt.load_state(last)
    assert state["rng"]["by_rank"]["torch"].shape[0] == 2


def test_text_budget_leaves_room_for_the_image_tokens():
    assert text_token_budget(256, 32, 32768) == 256
    assert text_token_budget(1000, 32, 512) == 480  # Q + T never exceeds the LLM's positions
    assert text_token_budget(1000, 32, None) == 1000
    with pytest.raises(Exception, match="num_queries"):
        text_token_budget(10, 64, 64)


class OtherRankAdds(DistInfo):
    """Rank 0 of 2, where the other rank contributes ``OTHER`` to every sum."""

    OTHER = (2.0 * 30, 30.0, 4.0)  # loss sum (mean 2.0 over 30 tokens), tokens, samples

    def sum(self, values):
        return [v + o for v, o in zip(values, self.OTHER[: len(values)], strict=False)]


def test_logged_loss_is_the_mean_over_all_ranks_target_tokens(tmp_path):
    plugins = load_plugins(extra=[("toys", ToyPlugin())])
    path = tmp_path / "r.toml"
    path.write_text(toy_training_recipe(str(tmp_path / "out"), "unused-llm"))
    reporter = Reporter(load_recipe(path, plugins), plugins, OtherRankAdds(0, 2), 10, progress=False)
    reporter.accumulate(1.0, 10, 4)  # this rank: mean 1.0 over 10 tokens
    reporter.step(1, 1e-3, 0.5)
    # (1.0 * 10 + 2.0 * 30) / 40, not the mean of the two ranks' means (1.5)
    assert reporter.history == [(1, pytest.approx(1.75))]


def test_token_weight_makes_ddp_average_the_global_token_mean():
    other_tokens = OtherRankAdds.OTHER[0]  # the first number summed is the token count
    weight = _token_weight(10, OtherRankAdds(0, 2))  # DDP averages 2 gradients: x world / all tokens
    assert weight == pytest.approx(2 * 10 / (10 + other_tokens))
    assert _token_weight(7, DistInfo()) == 1.0


BROKEN_SCRIPT = """\
import sys
from pathlib import Path

sys.path.insert(0, str(Path(sys.argv[1])))  # the tests folder: the broken toy dataset
from test_train_data_bad import BrokenToysPlugin

from microvlm import load_plugins
from microvlm.recipes.load import load_recipe
from microvlm.testing.toys import ToyPlugin
from microvlm.train import run

plugins = load_plugins(extra=[("toys", ToyPlugin()), ("broken_toys", BrokenToysPlugin())])
run(load_recipe(sys.argv[2], plugins, sys.argv[3:]), plugins, progress=False)
"""


@pytest.mark.slow  # ~30 s: two worker processes
def test_two_processes_stop_on_bad_data_at_the_end_of_training(tmp_path):
    """1 broken image of 8 read in the only step (4 per process): both processes stop after it
    with the counts of both, and no final checkpoint is written."""
    from pathlib import Path

    text = toy_training_recipe(str(tmp_path / "out"), str(tiny_llm_path()), epochs=1)
    path = tmp_path / "r.toml"
    path.write_text(
        text.replace('dataset = "toy_dataset"\nn = 8\n', 'dataset = "broken_toys"\nn = 8\nbad = [5]\n')
    )
    done = torchrun(tmp_path, BROKEN_SCRIPT, Path(__file__).parent, path, "run.max_text_tokens=6")
    assert done.returncode != 0
    assert done.stderr.count("broken_toys/toy_task: 1 of 8 samples read this epoch were skipped") == 2, (
        done.stderr[-3000:]
    )
    assert not (tmp_path / "out" / "checkpoint_final").exists()
