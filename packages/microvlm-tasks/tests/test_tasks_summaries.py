"""What each task contributes to ``results.json`` and the results table (``Task.summarize``),
and the samples it trains on (``Task.training_samples``)."""

from __future__ import annotations

import json

import pytest

import microvlm
from microvlm.contracts.data import ResultRow, TaskSummary
from microvlm.data import ImageRef, Sample
from microvlm_tasks.captioning import build_captioning, build_pretrain
from microvlm_tasks.config import CaptioningConfig, PretrainConfig, VQAConfig
from microvlm_tasks.vqa import VQATask

PLUGINS = microvlm.load_plugins(allow=["microvlm-tasks"])

VQA_METRICS = {
    "accuracy": 0.8,
    "accuracy_other": 0.8,
    "count": 5.0,
    "majority_baseline": 0.6,
    "question_type/how_many/accuracy": 2 / 3,
    "question_type/how_many/majority_baseline": 2 / 3,
    "question_type/what_color/accuracy": 1.0,
    "question_type/what_color/majority_baseline": 0.5,
    "samples": 5,
}


def test_vqa_summary_keeps_accuracy_baseline_and_question_types() -> None:
    summary = VQATask(VQAConfig()).summarize(VQA_METRICS)
    assert summary.results == {
        "accuracy": 0.8,
        "majority_baseline": 0.6,
        "by_question_type": {
            "how_many": {"accuracy": 2 / 3, "majority_baseline": 2 / 3},
            "what_color": {"accuracy": 1.0, "majority_baseline": 0.5},
        },
    }
    assert summary.rows == (
        ResultRow("accuracy", 0.8, 0.6),
        ResultRow("  how_many", 2 / 3, 2 / 3),
        ResultRow("  what_color", 1.0, 0.5),
    )
    assert summary.baseline_name == "majority baseline"


def test_vqa_summary_of_real_scores() -> None:
    samples = [
        Sample(str(i), ImageRef("x.jpg"), question="q?", answers=(a,) * 10, meta={"question_type": k})
        for i, (k, a) in enumerate([("how many", "1"), ("how many", "2"), ("what color", "red")])
    ]
    task = VQATask(VQAConfig())
    summary = task.summarize(task.score(["1", "1", "red"], samples))
    assert summary.results["accuracy"] == pytest.approx(2 / 3)
    assert set(summary.results["by_question_type"]) == {"how_many", "what_color"}
    assert [r.metric for r in summary.rows] == ["accuracy", "  how_many", "  what_color"]


@pytest.mark.parametrize(
    "task", [build_pretrain(PretrainConfig()), build_captioning(CaptioningConfig())], ids=lambda t: t.name
)
def test_caption_summaries_use_the_coco_toolkit_names(task) -> None:
    metrics = {"bleu_4": 0.5, "cider": 2.0, "rouge_l": 0.4, "tokenizer": "simple", "samples": 3}
    summary = task.summarize(metrics)
    assert summary.results == {
        "BLEU-4": 0.5,
        "CIDEr": 2.0,
        "ROUGE-L": 0.4,
        "tokenizer": "simple",
        "samples": 3,
    }
    assert [(r.metric, r.value, r.baseline) for r in summary.rows] == [
        ("BLEU-4", 0.5, None),
        ("CIDEr", 2.0, None),
        ("ROUGE-L", 0.4, None),
        ("samples", 3, None),
    ]  # strings are notes: in results.json, not in the table


@pytest.mark.parametrize("name", ["grounding", "aokvqa_da", "aokvqa_mc", "instruct"])
def test_other_tasks_keep_their_metrics_as_they_are(name: str) -> None:
    task = PLUGINS.build("task", name)
    metrics = {"acc@0.5": 0.9, "cider": 1.5, "note": "x", "samples": 2}
    summary = task.summarize(metrics)
    assert summary.results == metrics
    assert [r.metric for r in summary.rows] == ["acc@0.5", "cider", "samples"]


@pytest.mark.parametrize("name", PLUGINS.names("task"))
def test_every_task_summarizes_to_json_and_trains_on_what_it_is_given(name: str) -> None:
    task = PLUGINS.build("task", name)
    summary = task.summarize({"samples": 1})
    assert isinstance(summary, TaskSummary)
    json.dumps(summary.results)  # JSON-able
    samples = [Sample("a", ImageRef("a.jpg")), Sample("b", ImageRef("b.jpg"))]
    assert list(task.training_samples(samples)) == samples  # default configs: no regrouping
