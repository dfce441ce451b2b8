import json
import logging
import math

from microvlm import load_plugins


def test_jsonl_logger_appends_records(tmp_path):
    plugins = load_plugins()
    log = plugins.build("logger", "jsonl", run_dir=tmp_path)
    log.log({"loss": 1.5, "lr": 1e-4}, step=1)
    log.log({"loss": math.nan}, step=2)
    log.close()
    again = plugins.build("logger", "jsonl", run_dir=tmp_path)  # a resumed run appends
    again.log({"loss": 0.5}, step=3)
    again.close()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert rows[0]["loss"] == 1.5 and rows[1]["loss"] == "nan"


def test_console_logger_writes_through_logging(caplog):
    log = load_plugins().build("logger", "console")
    with caplog.at_level(logging.INFO, logger="microvlm.metrics"):
        log.log({"loss": 2.3456789, "step_time": 3}, step=7)
    assert "step 7 | loss 2.346 | step_time 3" in caplog.text
