"""``microvlm datasets download``: which sources --all / --group / names choose, what reaches the
engine (a stub here: the transfers have their own tests against local servers), the summary
and exit code, the seed's spellings, and a third party's source in --help and status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest
from click.testing import CliRunner

import microvlm
from microvlm.cli import build_cli
from microvlm_datasets.download import engine
from microvlm_datasets.download.sources import load_catalogue

SOURCES = load_catalogue()


@attrs.frozen
class Summary:  # what the CLI reads of engine.SourceSummary
    name: str
    status: str
    fetched: int = 0
    present: int = 0
    bytes: int = 0
    errors: tuple[str, ...] = ()
    manual_steps: str = ""
    web: Any = None


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace the engine's download with one that records its arguments; a source named in
    ``FAIL`` fails."""
    seen: list[dict[str, Any]] = []

    def download(sources: Any, root: Path, **kwargs: Any) -> list[Summary]:
        seen.append({"names": [s.name for s in sources], "root": root, **kwargs})
        return [
            Summary(s.name, "failed" if s.name in FAIL else "complete", errors=_errors(s)) for s in sources
        ]

    monkeypatch.setattr(engine, "download", download)
    return seen


FAIL: set[str] = set()


def _errors(source: Any) -> tuple[str, ...]:
    return (f"http://127.0.0.1/x: 404 Not Found (see {source.name}'s cite)",) if source.name in FAIL else ()


def _run(*args: str, plugins: microvlm.Plugins | None = None) -> Any:
    return CliRunner().invoke(build_cli(plugins), ["datasets", "download", *args])


def test_seed_spelling_names_after_one_flag_bring_what_they_need(
    calls: list[dict[str, Any]], tmp_path: Path
) -> None:
    result = _run("--datasets", "coco", "vqav2", "llava_instruct", "--root", str(tmp_path), "--jobs", "3")
    assert result.exit_code == 0, result.output
    (call,) = calls
    assert call["names"] == ["coco2014", "coco2017", "llava_instruct", "vqav2"]  # catalogue order
    assert call["root"] == tmp_path and call["jobs"] == 3 and call["mirrors"] == {}
    assert "complete" in result.output and f"datasets status --root {tmp_path}" in result.output


def test_all_and_groups(calls: list[dict[str, Any]], tmp_path: Path) -> None:
    assert _run("--all", "--root", str(tmp_path)).exit_code == 0
    assert _run("--group", "grounding", "--root", str(tmp_path)).exit_code == 0
    assert (
        _run("--group", "pretraining", "vqa", "--root", str(tmp_path)).exit_code == 0
    )  # seed: groups after one flag
    everything, grounding, two = (set(c["names"]) for c in calls)
    assert everything == set(SOURCES)
    assert grounding == {"refcoco", "refcoco_plus", "refcocog", "coco2014"}
    assert two == {
        "cc3m",
        "laion_coco",
        "sbu",
        "vqav2",
        "okvqa",
        "aokvqa",
        "gqa",
        "ocrvqa",
        "coco2014",
        "coco2017",
    }


def test_mirrors_and_retry_reach_the_engine(calls: list[dict[str, Any]], tmp_path: Path) -> None:
    mirror = "http://images.cocodataset.org=http://127.0.0.1:8765/coco"
    result = _run("coco2017", "--mirror", mirror, "--retry-failed", "--root", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert calls[0]["mirrors"] == {"http://images.cocodataset.org": "http://127.0.0.1:8765/coco"}
    assert calls[0]["retry_failed"] is True
    bad = _run("coco2017", "--mirror", "no-equals-sign", "--root", str(tmp_path))
    assert bad.exit_code == 2 and "FROM=TO" in bad.output


def test_unknown_names_are_refused_with_the_list(calls: list[dict[str, Any]], tmp_path: Path) -> None:
    result = _run("--datasets", "coco", "vqa3", "--root", str(tmp_path))
    assert result.exit_code == 2 and not calls
    assert (
        "unknown dataset 'vqa3'" in result.output and "vqav2" in result.output and "refcocog" in result.output
    )
    nothing = _run("--root", str(tmp_path))
    assert nothing.exit_code == 2 and "--all" in nothing.output


def test_a_failed_source_is_summarised_and_the_exit_code_says_so(
    calls: list[dict[str, Any]], tmp_path: Path
) -> None:
    FAIL.add("okvqa")
    try:
        result = _run("okvqa", "--root", str(tmp_path))
    finally:
        FAIL.discard("okvqa")
    assert result.exit_code == 1
    assert (
        "failed" in result.output and "404 Not Found" in result.output and "complete" in result.output
    )  # coco2014 went on


def test_manual_steps_are_printed_before_downloading(calls: list[dict[str, Any]], tmp_path: Path) -> None:
    result = _run("flickr30k", "--root", str(tmp_path))
    assert result.exit_code == 0
    assert (
        f"kaggle datasets download -d hsankesara/flickr-image-dataset -p {tmp_path}/flickr30k"
        in result.output
    )
    assert calls[0]["names"] == ["flickr30k"]  # Karpathy's split file is still fetched


def test_status_spelling_leads_to_datasets_status(calls: list[dict[str, Any]], tmp_path: Path) -> None:
    result = _run("--status", "--root", str(tmp_path))
    assert result.exit_code == 0 and not calls
    assert "0 of 15 datasets present" in result.output and "download sources" in result.output


def test_wandb_project_reaches_the_engine(
    calls: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WANDB_PROJECT", raising=False)

    def download(
        sources: Any, root: Path, *, wandb_project: str | None = None, **kwargs: Any
    ) -> list[Summary]:
        calls.append({"wandb_project": wandb_project})
        return []

    monkeypatch.setattr(engine, "download", download)
    assert _run("sbu", "--root", str(tmp_path)).exit_code == 0
    assert _run("sbu", "--wandb", "--root", str(tmp_path)).exit_code == 0
    monkeypatch.setenv("WANDB_PROJECT", "mine")
    assert _run("sbu", "--root", str(tmp_path)).exit_code == 0
    assert [c["wandb_project"] for c in calls] == [None, "MicroVLM-E-datasets-logs", "mine"]


# -- a third party's source --------------------------------------------------------------------


@attrs.frozen
class TinySource:
    """The least a source provides (microvlm.contracts.data.DataSource): no file list."""

    name: str = "tiny_pets"
    folder: str = "tiny_pets"
    description: str = "a third party's pet photos"
    licence: str = "CC0"
    login: str = "manual"


class ThirdParty:
    @microvlm.hookimpl
    def register_sources(self, register: Any) -> None:
        from microvlm_datasets.download.sources import SourceSettings

        register("tiny_pets", lambda config, **_: TinySource(), SourceSettings, description="pets")


def test_a_third_party_source_is_in_help_and_status(tmp_path: Path) -> None:
    plugins = microvlm.load_plugins(extra=[("pets", ThirdParty())])
    assert "tiny_pets" in plugins.names("source")
    help_text = _run("--help", plugins=plugins).output
    assert "tiny_pets" in help_text and "a third party's pet photos" in help_text
    status = CliRunner().invoke(build_cli(plugins), ["datasets", "status", "--root", str(tmp_path), "--json"])
    sources = {s["name"]: s for s in json.loads(status.output)["sources"]}
    assert sources["tiny_pets"]["state"] == "needs login"
    (tmp_path / "tiny_pets").mkdir()
    (tmp_path / "tiny_pets" / "cat.jpg").write_bytes(b"x")
    status = CliRunner().invoke(build_cli(plugins), ["datasets", "status", "--root", str(tmp_path), "--json"])
    assert {s["name"]: s for s in json.loads(status.output)["sources"]}["tiny_pets"]["state"] == "complete"
    without = _run("--help").output
    assert "tiny_pets" not in without


class Broken:
    @microvlm.hookimpl
    def register_sources(self, register: Any) -> None:
        from microvlm_datasets.download.sources import SourceSettings

        def fail(config: Any, **_: Any) -> Any:
            raise ValueError("bad catalogue file")

        register("broken_source", fail, SourceSettings, description="fails")


def test_a_source_that_fails_to_build_is_left_out_with_a_warning() -> None:
    plugins = microvlm.load_plugins(extra=[("broken_src", Broken())])
    result = CliRunner().invoke(build_cli(plugins), ["datasets", "download", "--help"])
    assert result.exit_code == 0
    assert "coco2017" in result.output and "broken_source" in result.output  # in the warning only
    assert "source 'broken_source' of broken_src (<local>) left out: bad catalogue file" in result.output
