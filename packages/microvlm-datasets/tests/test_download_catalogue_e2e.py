"""The real catalogue entries, served from 127.0.0.1: ``microvlm datasets download`` (the CLI and
the real engine) fetches them with the catalogue's own URLs behind ``--mirror``, and what lands
is what the builders read: ``datasets status`` calls each dataset and source complete, the
builders read every split, and a second run fetches nothing.

The files served are small stand-ins with the member names the real archives have (COCO's
``train2014/COCO_train2014_*.jpg``, VQAv2's ``v2_OpenEnded_mscoco_train2014_questions.json``,
GQA's ``images/``, ...), so the test holds the catalogue's paths and archive flags to the
builders; the catalogue's sizes and checksums (of the real files) are left out for them.
"""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from microvlm.cli import build_cli
from microvlm_datasets import cli_download
from microvlm_datasets.download.sources import load_catalogue, select_sources

servers = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("servers.py"))))
standins = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("download_standins.py"))))

WANTED = ["vqav2", "okvqa", "aokvqa", "gqa", "llava_instruct", "coco_karpathy"]


@pytest.fixture
def world(tmp_path: Path, jpeg_bytes: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    catalogue = {n: standins.no_checksums(s) for n, s in load_catalogue().items()}
    wanted = select_sources(catalogue, WANTED)
    served = tmp_path / "served"
    files = standins.served_files(jpeg_bytes())
    mirrors = standins.write_served(files, served)
    needed = {f.url for s in wanted for f in s.files}
    assert needed == set(files), f"served and catalogue differ: {sorted(needed ^ set(files))}"
    repos = {
        ("dataset", "liuhaotian/LLaVA-Instruct-150K"): servers.HubRepo(
            {"llava_instruct_150k.json": standins.llava_json()}
        )
    }
    monkeypatch.setattr(cli_download, "plugin_sources", lambda ctx=None: catalogue)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    with servers.file_server(served) as server, servers.fake_hub(repos) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.base)
        args = [a for prefix, host in mirrors.items() for a in ("--mirror", f"{prefix}={server.base}/{host}")]
        yield SimpleNamespace(server=server, mirrors=args, wanted=wanted)


def _cli(*args: str) -> Any:
    return CliRunner().invoke(build_cli(), ["datasets", *args], catch_exceptions=False)


def test_the_catalogue_downloads_what_the_builders_read(world: Any, tmp_path: Path, build: Any) -> None:
    root = tmp_path / "data"
    result = _cli("download", "--datasets", *WANTED, "--root", str(root), *world.mirrors)
    assert result.exit_code == 0, result.output
    names = {s.name for s in world.wanted}
    assert names == {*WANTED, "coco2014", "coco2017"}

    report = json.loads(_cli("status", "--root", str(root), "--json").output)
    sources = {s["name"]: s for s in report["sources"]}
    assert {n: sources[n]["state"] for n in names} == dict.fromkeys(names, "complete"), sources
    datasets = {d["name"]: d for d in report["datasets"]}
    for name in ("coco_caption", "vqav2", "okvqa", "aokvqa", "gqa", "llava_instruct"):
        assert datasets[name]["state"] == "complete", datasets[name]
    karpathy = {r["split"]: r for r in datasets["coco_caption"]["splits"]}
    assert (
        karpathy["karpathy test"]["status"] == "present" and karpathy["karpathy test"]["missing_images"] == 0
    )

    # the builders read it with their defaults, only the data root moved
    sample = build("vqav2", root=root / "vqa", split="val", image_root=root / "coco")[0]
    assert sample.answers[0] == "yes" and sample.image.open().size[0] > 0
    assert len(build("llava_instruct", root=root / "llava", image_root=root / "coco" / "train2017")) == 1

    before = sum(world.server.requests.values())
    again = _cli("download", "--datasets", *WANTED, "--root", str(root), *world.mirrors)
    assert again.exit_code == 0, again.output
    assert sum(world.server.requests.values()) == before  # nothing fetched twice
