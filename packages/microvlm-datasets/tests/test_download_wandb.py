"""W&B logging of downloads (download/wandb_log.py): when it is on, what a fake wandb receives, the
message without wandb, and a real offline run (skipped where wandb is not installed)."""

from __future__ import annotations

import importlib.machinery
import sys
import types
from pathlib import Path

import pytest

from microvlm.errors import MicroVLMError
from microvlm_datasets.download import wandb_log
from microvlm_datasets.download.web import WebResult

RESULT = WebResult(Path("cc3m"), rows=10, successes=7, failed_to_download=2, failed_to_resize=1, shards=3)


class FakeRun:
    def __init__(self, calls: list) -> None:
        self.calls = calls
        self.summary: dict = {}

    def log(self, metrics: dict) -> None:
        self.calls.append(("log", dict(metrics)))

    def finish(self) -> None:
        self.calls.append(("finish",))


@pytest.fixture
def fake_wandb(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("wandb")
    module.__spec__ = importlib.machinery.ModuleSpec("wandb", None)
    module.calls = []

    def init(**kwargs):
        module.calls.append(("init", kwargs))
        module.run = FakeRun(module.calls)
        return module.run

    module.init = init
    module.Table = lambda columns, data: ("table", list(columns), [list(row) for row in data])
    monkeypatch.setitem(sys.modules, "wandb", module)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    return module


def logs(fake: types.ModuleType) -> list[dict]:
    return [call[1] for call in fake.calls if call[0] == "log"]


def test_on_with_the_flag_or_wandb_project() -> None:
    assert not wandb_log.wandb_wanted(False, {})
    assert wandb_log.wandb_wanted(True, {})
    assert wandb_log.wandb_wanted(False, {"WANDB_PROJECT": "mine"})
    assert not wandb_log.wandb_wanted(False, {"WANDB_PROJECT": ""})


def test_off_needs_no_wandb_and_sends_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    log = wandb_log.open_log(False, tmp_path)
    assert type(log) is wandb_log.ProgressLog
    log.file_progress("coco2017", "train2017.zip", 10, 100)
    log.web_stats("cc3m", RESULT)
    log.dataset_done("cc3m", status="complete", success_rate=0.7)
    log.close()
    assert not (tmp_path / wandb_log.LOG_DIR).exists()


def test_without_wandb_asking_for_it_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(MicroVLMError, match=r'pip install "microvlm-core\[wandb\]".*--wandb'):
        wandb_log.open_log(True, tmp_path)


def test_the_run_gets_progress_rates_statuses_and_a_table(
    fake_wandb: types.ModuleType, tmp_path: Path
) -> None:
    now = [0.0]
    config = {"datasets": ["coco2017", "cc3m"], "jobs": 4, "hf_token": "hf_secret"}
    log = wandb_log.DownloadLog(tmp_path, config=config, min_interval_s=1.0, clock=lambda: now[0])
    (_, kwargs), *_ = fake_wandb.calls
    assert kwargs["project"] == wandb_log.DEFAULT_PROJECT == "MicroVLM-E-datasets-logs"
    assert kwargs["dir"] == str(tmp_path / ".logs") and (tmp_path / ".logs").is_dir()
    assert kwargs["config"] == {"datasets": ["coco2017", "cc3m"], "jobs": 4}  # the token is not sent

    log.file_progress("coco2017", "train2017.zip", 0, 1000)
    now[0] = 0.5
    log.file_progress("coco2017", "train2017.zip", 400, 1000)  # throttled: within a second
    log.file_progress("coco2017", "val2017.zip", 50, None)  # another file: its own throttle; no size
    now[0] = 0.6
    log.file_progress("coco2017", "train2017.zip", 1000, 1000)  # the end is always logged
    log.web_stats("cc3m", RESULT)
    log.dataset_done("coco2017", status="complete", files=2, size=1050)
    log.dataset_done("cc3m", status="partial", files=1, size=99, success_rate=0.7, error="3 rows failed")
    log.close()

    points = logs(fake_wandb)
    assert points[0] == {"progress/bytes": 0, "progress/coco2017/train2017.zip": 0.0}
    assert points[1] == {"progress/bytes": 450}  # val2017.zip: bytes only, no fraction without a size
    assert points[2] == {"progress/bytes": 1050, "progress/coco2017/train2017.zip": 1.0}
    assert points[3] == {
        "cc3m/success_rate": 0.7,
        "cc3m/successes": 7,
        "cc3m/rows": 10,
        "cc3m/failed_to_download": 2,
        "cc3m/failed_to_resize": 1,
    }
    assert points[4] == {"coco2017/files": 2, "coco2017/bytes": 1050}
    assert points[5] == {"cc3m/files": 1, "cc3m/bytes": 99, "cc3m/success_rate": 0.7}
    assert points[6]["datasets"] == (
        "table",
        wandb_log.TABLE_COLUMNS,
        [["coco2017", "complete", 2, 1050, None, ""], ["cc3m", "partial", 1, 99, 0.7, "3 rows failed"]],
    )
    assert fake_wandb.run.summary == {"coco2017/status": "complete", "cc3m/status": "partial"}
    assert fake_wandb.calls[-1] == ("finish",)


def test_wandb_project_names_the_project(fake_wandb: types.ModuleType, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WANDB_PROJECT", "my-downloads")
    wandb_log.open_log(False, tmp_path).close()
    assert fake_wandb.calls[0][1]["project"] == "my-downloads"
    assert fake_wandb.calls[-1] == ("finish",)  # no dataset finished: no table


def test_a_real_offline_run_is_written_under_the_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("wandb", reason='wandb is not installed (pip install "microvlm-core[wandb]")')
    for name in ("WANDB_PROJECT", "WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))  # no ~/.config/wandb
    log = wandb_log.open_log(True, tmp_path)
    log.file_progress("cc3m", "Train_GCC-training.tsv", 5, 5)
    log.web_stats("cc3m", RESULT)
    log.dataset_done("cc3m", status="complete", files=1, size=5, success_rate=RESULT.success_rate)
    log.close()
    runs = list((tmp_path / ".logs" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("run-*.wandb"))  # the run's records, for `wandb sync` later
