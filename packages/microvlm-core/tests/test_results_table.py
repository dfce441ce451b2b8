"""results.json and the printed results table come from each task's ``summarize``: core keeps
what the task returns, whatever the task is called, and prints the rows the task chose."""

from __future__ import annotations

import json

import pytest

from microvlm.cli.results_table import print_results
from microvlm.contracts.data import ResultRow, TaskSummary, default_summary
from microvlm.eval.final_eval import summarize


class Summarizes:
    """Just enough of a task for results.json: ``summarize`` returns what it was given."""

    def __init__(self, summary: TaskSummary) -> None:
        self.summary = summary

    def summarize(self, metrics):
        return self.summary


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich: one line per table row


def table_lines(path, capsys):
    print_results(path)
    return capsys.readouterr().out.splitlines()


def test_results_keep_what_each_task_summarized_under_any_name():
    # Names core once branched on, here for tasks that mean something else by them.
    metrics = {"accuracy": 0.5, "question_type/a/accuracy": 1.0, "cider": 2.0, "samples": 2}
    tasks = {
        "mine/vqa": Summarizes(TaskSummary({"hits": 3}, (ResultRow("hits", 3, 1),), "guessing")),
        "mine/captioning": Summarizes(default_summary(metrics)),
    }
    summary = summarize({"mine/vqa": {"hits": 3}, "mine/captioning": metrics}, tasks)
    assert summary["vqa"] == {"hits": 3}  # no accuracy/by_question_type of core's making
    assert summary["captioning"] == metrics  # no renaming to CIDEr
    assert summary["entries"] == {"mine/vqa": {"hits": 3}, "mine/captioning": metrics}
    assert summary["table"][0] == {
        "task": "vqa",
        "metric": "hits",
        "value": 3,
        "baseline": 1,
        "baseline_name": "guessing",
    }
    assert [r["metric"] for r in summary["table"][1:]] == list(metrics)


def test_a_second_entry_of_a_task_and_reserved_names_are_keyed_by_entry():
    tasks = {e: Summarizes(TaskSummary({"x": 1})) for e in ("a/t", "b/t", "c/table", "d/entries")}
    summary = summarize({e: {"x": 1} for e in tasks}, tasks)
    assert set(summary) == {"t", "b/t", "c/table", "d/entries", "entries", "table"}
    assert summary["table"] == []


def test_the_table_prints_each_tasks_rows_and_baseline(tmp_path, capsys):
    tasks = {
        "shapes/length": Summarizes(
            TaskSummary(
                {"match": 0.75},
                (ResultRow("match", 0.75, 0.25), ResultRow("  long", 0.5, 0.125)),
                "always one word",
            )
        ),
    }
    path = tmp_path / "results.json"
    summary = summarize({"shapes/length": {"match": 0.75}}, tasks)
    path.write_text(json.dumps({**summary, "wall_seconds": 12.3}))
    lines = table_lines(path, capsys)
    assert any("always one word" in line for line in lines)  # heads the baseline column
    [first] = [line for line in lines if " match " in line]
    assert "length" in first and "0.7500" in first and "0.2500" in first
    [breakdown] = [line for line in lines if " long " in line]
    assert "length" not in breakdown and "0.5000" in breakdown and "0.1250" in breakdown
    assert any("wall seconds" in line and "12" in line for line in lines)


def test_several_baselines_name_themselves_in_one_column(tmp_path, capsys):
    tasks = {
        "d/a": Summarizes(TaskSummary({}, (ResultRow("acc", 0.5, 0.25),), "majority")),
        "d/b": Summarizes(TaskSummary({}, (ResultRow("hit", 0.5, 0.125),), "chance")),
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps(summarize({"d/a": {}, "d/b": {}}, tasks)))
    lines = table_lines(path, capsys)
    assert any(" acc " in line and "0.2500 (majority)" in line for line in lines)
    assert any(" hit " in line and "0.1250 (chance)" in line for line in lines)


def test_a_results_json_without_rows_prints_every_number(tmp_path, capsys):
    path = tmp_path / "results.json"
    old = {
        "vqa": {"accuracy": 0.97, "majority_baseline": 0.41, "by_question_type": {"a": {"accuracy": 1.0}}},
        "grounding": {"acc@0.5": 0.93, "tokenizer": "simple"},
        "entries": {"shapes/vqa": {"accuracy": 0.97}},
    }
    path.write_text(json.dumps(old))
    lines = table_lines(path, capsys)
    assert any("vqa" in line and "accuracy" in line and "0.9700" in line for line in lines)
    assert any("majority_baseline" in line and "0.4100" in line for line in lines)
    assert any("grounding" in line and "acc@0.5" in line and "0.9300" in line for line in lines)
    assert not any("simple" in line or "shapes/vqa" in line for line in lines)
