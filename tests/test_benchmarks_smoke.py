"""The benchmark scripts run end to end at ``--size small`` and print what the issue asks for.

No timing is asserted (timings belong in benchmarks/RESULTS.md, not in tests): these check that
both models ran the same work and that the JSON carries the ratio fields, so a change that
breaks a benchmark shows up in CI rather than on the next person's measurement day.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each script starts worker processes that import torch + transformers

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--size", "small", "--threads", "1", "--repeats", "1"]


def run_script(name, *args, common=SMALL):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), *common, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def positive(x):
    return isinstance(x, float) and math.isfinite(x) and x > 0


def test_train_step_small_vqa_json():
    out = run_script("train_step.py", "--workload", "vqa", "--warmup", "0", "--steps", "1", "--json")
    rec = json.loads(out.strip().splitlines()[-1])
    assert rec["benchmark"] == "train_step" and rec["workload"] == "vqa" and rec["size"] == "small"
    for key in ("ratio_samples_per_s", "ratio_peak_mem", "ratio_flops_bound"):
        assert positive(rec[key]), (key, rec[key])
    ours, blip2 = rec["ours"], rec["blip2"]
    assert ours["samples_per_s"] / blip2["samples_per_s"] == pytest.approx(rec["ratio_samples_per_s"])
    assert blip2["flops"] / ours["flops"] == pytest.approx(rec["ratio_flops_bound"])
    # the same trainable set: Q-Former + projection of the same sizes on both sides
    assert ours["trainable_params"] == pytest.approx(blip2["trainable_params"], rel=0.05)
    assert 1 <= rec["target_tokens"] <= 3 * rec["batch"]  # 1-3 answer tokens a row
    assert all(math.isfinite(m["loss"]) for m in (ours, blip2))


def test_generate_small_json():
    out = run_script("generate.py", "--batches", "1", "2", "--new-tokens", "4", "--json")
    records = [json.loads(line) for line in out.strip().splitlines() if line.startswith("{")]
    assert [r["batch"] for r in records] == [1, 2]
    for rec in records:
        assert positive(rec["ratio_tokens_per_s"]), rec
        assert rec["new_tokens"] == 4


def ceiling(tmp_path, *args):
    out = run_script(
        "demo_ceiling.py",
        *("--steps", "4", "--eval-every", "2", "--held-out", "24", "--json", *args),
        *("--tokenizer", str(tmp_path / "none"), "--demo-results", str(tmp_path / "none.json")),
        common=(),  # not a BLIP-2 comparison: no --size / --repeats
    )
    rec = json.loads(out.strip().splitlines()[-1])
    assert rec["benchmark"] == "demo_ceiling" and rec["steps"] == 4 and rec["demo"] is None
    assert rec["tokenizer"].startswith("trained on")  # no demo tokenizer: one trained on fresh texts
    assert [c["step"] for c in rec["curve"]] == [2, 4]
    assert all(math.isfinite(c["loss"]) and c["loss"] > 0 for c in rec["curve"])
    assert 0.0 <= rec["value"] <= 1.0 and rec["value"] == rec["curve"][-1][rec["metric"]]
    return rec


def test_demo_ceiling_vqa_is_scored_with_the_vqa_metric(tmp_path):
    rec = ceiling(tmp_path, "--caption-share", "0.5")
    assert rec["task"] == "vqa" and rec["metric"] == "accuracy"
    assert 0.0 < rec["scores"]["majority_baseline"] < 1.0
    # the vqa task's per-type metric: the shapes generator's question types, each beside its baseline
    types = {"how_many", "is_the", "is_there_a", "what", "what_color_is_the", "where_is_the"}
    assert set(rec["by_type"]) <= types
    assert all(set(v) == {"accuracy", "majority_baseline"} for v in rec["by_type"].values())


def test_demo_ceiling_grounding_is_scored_with_the_grounding_metric(tmp_path):
    rec = ceiling(tmp_path, "--task", "grounding")
    assert rec["task"] == "grounding" and rec["metric"] == "acc@0.5"
    assert rec["scores"]["count"] == 24.0 and 0.0 <= rec["scores"]["unparseable_rate"] <= 1.0


@pytest.mark.parametrize("stem", ["patch", "conv"])
def test_demo_encoder_probe_trains_the_demo_encoder_on_shape_labels(stem):
    out = run_script(
        "demo_encoder_probe.py",
        *("--stem", stem, "--steps", "2", "--eval-every", "1", "--held-out", "16", "--json"),
        common=(),
    )
    rec = json.loads(out.strip().splitlines()[-1])
    assert rec["benchmark"] == "demo_encoder_probe" and rec["stem"] == stem
    assert [c["step"] for c in rec["curve"]] == [1, 2] and rec["final"] == rec["curve"][-1]
    for point in rec["curve"]:
        assert math.isfinite(point["loss"]) and point["loss"] > 0
        for key in ("kind_label_acc", "kind_set_exact", "colour_label_acc", "colour_set_exact"):
            assert 0.0 <= point[key] <= 1.0, (key, point)
        assert 0.5 <= point["kind_label_prior"] <= 1.0 and 0.5 <= point["colour_label_prior"] <= 1.0
