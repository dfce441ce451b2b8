"""Issue #17's "done when": ``microvlm datasets download --all`` against local mirrors of every
catalogue source, ``datasets status`` calling every dataset complete, every builder reading the
root, and a ``kill -9`` mid-download followed by the same command completing.

Mirrors on 127.0.0.1 (microvlm-datasets' test servers and stand-ins,
packages/microvlm-datasets/tests/{servers,download_standins}.py): the HTTP files behind
``--mirror``; the hub repositories (RefCOCO/+/g parquet, LLaVA, LAION-COCO's gated metadata, with
its token in ``HF_TOKEN``) on the fake hub; the web lists (CC3M's TSV, SBU's archive, LAION's
parquet, OCR-VQA's ``dataset.json``) naming real JPEG/PNG files on 127.0.0.1, some dead. The two
hand steps are done first, as their printed steps say: Flickr30k's Kaggle images and OCR-VQA's
``dataset.json``. The command runs in a subprocess (``python -c`` calling the CLI) with the
catalogue's sizes and checksums dropped, since the stand-ins are not the real files. img2dataset is
the ``[web]`` extra or ``MICROVLM_IMG2DATASET``; without it the module skips.
"""

from __future__ import annotations

import io
import json
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image

from microvlm_datasets.catalogue import CATALOGUE
from microvlm_datasets.download.sources import load_catalogue
from microvlm_datasets.download.web import find_img2dataset
from microvlm_datasets.status import rows

TESTS = Path(__file__).resolve().parents[1] / "packages" / "microvlm-datasets" / "tests"
servers = SimpleNamespace(**runpy.run_path(str(TESTS / "servers.py")))
standins = SimpleNamespace(**runpy.run_path(str(TESTS / "download_standins.py")))

pytestmark = [
    pytest.mark.skipif(
        find_img2dataset(Path("/nonexistent")) is None,
        reason='img2dataset is not installed (pip install "microvlm-datasets[web]", or set MICROVLM_IMG2DATASET)',
    ),
    pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL"),
]

TOKEN = "hf_test_token"
BIG = "images.cocodataset.org/zips/train2014.zip"  # padded, stalled mid-body in the kill run
LISTS = {  # the web sources' URL lists, by their catalogue URLs
    "cc3m": "https://storage.googleapis.com/gcc-data/Train/GCC-training.tsv",
    "sbu": "https://www.cs.rice.edu/~vo9/sbucaptions/sbu-captions-all.tar.gz",
}

#: The command, with the catalogue's sizes and checksums dropped (the stand-ins are not the real files).
SCRIPT = """
import sys
from microvlm.cli import build_cli
from microvlm_datasets import cli_download
from microvlm_datasets.download.sources import load_catalogue
import runpy
standins = runpy.run_path(sys.argv[1])
catalogue = {n: standins["no_checksums"](s) for n, s in load_catalogue().items()}
cli_download.plugin_sources = lambda ctx=None: catalogue
build_cli().main(args=sys.argv[2:], prog_name="microvlm")
"""


def image(i: int, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (12 + i, 9 + i), (40 * i % 256, 120, 200)).save(buffer, fmt)
    return buffer.getvalue()


def web_lists(served: Path, base: str) -> dict[str, Any]:
    """Images under ``served/img/`` (JPEG and PNG) and the web sources' lists naming them; each
    shard list has one dead URL. OCR-VQA's has none: a cover that is gone leaves its questions
    without an image, which status rightly reports as partial."""
    (served / "img").mkdir(parents=True)
    urls = []
    for i in range(4):
        fmt = ("JPEG", "PNG")[i % 2]
        name = f"img/{i}.{fmt.lower().replace('jpeg', 'jpg')}"
        (served / name).write_bytes(image(i, fmt))
        urls.append(f"{base}/{name}")
    shard_urls = [*urls[:3], f"{base}/img/dead.jpg"]
    files = {
        LISTS["cc3m"]: "".join(f"picture {i}\t{u}\n" for i, u in enumerate(shard_urls)).encode(),
        LISTS["sbu"]: standins.tgz_bytes(
            {
                "sbu-captions-all.json": standins.json_bytes(
                    {"image_urls": shard_urls, "captions": [f"photo {i}" for i in range(len(shard_urls))]}
                )
            }
        ),
    }
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    table = {"URL": shard_urls, "TEXT": ["alt"] * 4, "top_caption": [f"blip {i}" for i in range(4)]}
    pq.write_table(pa.table(table), buffer)
    ocrvqa = {
        f"b{i}": {
            "imageURL": u,
            "title": f"Book {i}",
            "questions": ["Who?"],
            "answers": [f"A{i}"],
            "split": s,
        }
        for i, (u, s) in enumerate(zip(urls[:3], (1, 2, 3), strict=True))
    }
    return {"files": files, "laion": buffer.getvalue(), "ocrvqa": ocrvqa}


def hand_steps(root: Path, jpeg: bytes, ocrvqa: dict[str, Any]) -> None:
    """What Flickr30k's and OCR-VQA's printed steps have the user do (Kaggle's folder, dataset.json)."""
    for name in standins.FLICKR_IMAGES:
        path = root / "flickr30k" / "flickr30k_images" / "flickr30k_images" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg)
    (root / "ocrvqa").mkdir(parents=True)
    (root / "ocrvqa" / "dataset.json").write_text(json.dumps(ocrvqa), encoding="utf-8")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("all")
    served = tmp / "served"
    jpeg = image(0, "JPEG")
    catalogue = load_catalogue()
    repos = {
        ("dataset", "liuhaotian/LLaVA-Instruct-150K"): servers.HubRepo(
            {"llava_instruct_150k.json": standins.llava_json()}
        )
    }
    for name, repo_id, splits in (
        ("refcoco", "jxu124/refcoco", ("train", "validation", "test", "testA", "testB")),
        ("refcoco_plus", "jxu124/refcocoplus", ("train", "validation", "testA", "testB")),
        ("refcocog", "jxu124/refcocog", ("train", "validation", "test")),
    ):
        assert catalogue[name].hub[0].repo_id == repo_id
        files = {f"data/{s}-00000-of-00001-0a1b2c.parquet": standins.refcoco_parquet(s) for s in splits}
        repos[("dataset", repo_id)] = servers.HubRepo(files)
    with servers.file_server(served) as server:
        lists = web_lists(served, server.base)
        files = {**standins.served_files(jpeg, padding=1_500_000), **lists["files"]}
        mirrors = standins.write_served(files, served)
        laion = {"part-00000-0a1b2c3d-c000.snappy.parquet": lists["laion"]}
        repos[("dataset", "laion/laion-coco")] = servers.HubRepo(laion, gated=True, token=TOKEN)
        needed = {f.url for s in catalogue.values() for f in s.files if not f.manual}
        needed |= {s.web.urls.url for s in catalogue.values() if s.web and hasattr(s.web.urls, "url")}
        needed -= {catalogue["ocrvqa"].web.urls.url}  # placed by hand
        assert needed == set(files), f"served and catalogue differ: {sorted(needed ^ set(files))}"
        with servers.fake_hub(repos) as hub:
            env = {
                **os.environ,
                "HF_ENDPOINT": hub.base,
                "HF_TOKEN": TOKEN,
                "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            }
            env.pop("WANDB_PROJECT", None)
            args = [a for prefix, host in mirrors.items() for a in ("--mirror", f"{prefix}={{base}}/{host}")]
            yield SimpleNamespace(
                server=server, served=served, env=env, mirror_args=args, jpeg=jpeg, lists=lists, tmp=tmp
            )


def command(world: Any, root: Path, base: str, *args: str) -> list[str]:
    mirrors = [a.replace("{base}", base) for a in world.mirror_args]
    download = ["datasets", "download", "--all", "--root", str(root), *mirrors, "--jobs", "4"]
    return [sys.executable, "-c", SCRIPT, str(TESTS / "download_standins.py"), *download, *args]


def status_of(world: Any, root: Path) -> dict[str, Any]:
    cmd = [*command(world, root, "")[:4], "datasets", "status", "--root", str(root), "--json"]
    out = subprocess.run(cmd, env=world.env, capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout)


def fed() -> set[str]:
    """Every dataset a catalogue source feeds."""
    return {d for s in load_catalogue().values() for d in s.datasets}


def assert_complete(report: dict[str, Any]) -> None:
    sources = {s["name"]: s["state"] for s in report["sources"]}
    assert sources == dict.fromkeys(load_catalogue(), "complete"), report["sources"]
    datasets = {d["name"]: d for d in report["datasets"]}
    states = {n: datasets[n]["state"] for n in fed()}
    assert states == dict.fromkeys(fed(), "complete"), {
        n: datasets[n] for n in fed() if states[n] != "complete"
    }


def test_download_all_then_status_complete_and_every_builder_reads_it(world: Any) -> None:
    root = world.tmp / "data"
    hand_steps(root, world.jpeg, world.lists["ocrvqa"])
    run = subprocess.run(
        command(world, root, world.server.base),
        env=world.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "flickr30k (needs a Kaggle login), by hand first" in run.stdout  # the manual steps printed
    report = status_of(world, root)
    assert_complete(report)
    shards = {
        d["name"]: d["splits"][0] for d in report["datasets"] if d["name"] in ("cc3m", "sbu", "laion_coco")
    }
    assert {n: (r["samples"], r["download_failures"]) for n, r in shards.items()} == dict.fromkeys(
        shards, (3, 1)
    )  # three images each, one dead URL each

    # every builder, with status' settings (its defaults, the data root moved), reads a readable image
    present = {
        (d["name"], r["split"]) for d in report["datasets"] for r in d["splits"] if r["status"] == "present"
    }
    for name in sorted(fed()):
        info = CATALOGUE[name]
        read = 0
        for label, settings in rows(info, root / info.folder, root):
            if (name, label) not in present:
                continue
            builder = info.factory()(info.config_cls(**settings))
            assert len(builder) > 0, (name, label)
            assert min(builder[0].image.open().size) > 0, (name, label)
            read += 1
        assert read > 0, name


def test_kill_9_mid_download_then_the_same_command_completes(world: Any) -> None:
    root = world.tmp / "killed"
    hand_steps(root, world.jpeg, world.lists["ocrvqa"])
    part = root / "coco" / "train2014.zip.part"
    others = [root / "coco" / "val2014.zip", root / "vqa" / "v2_Questions_Train_mscoco.zip"]
    # stall_all: a loaded machine takes longer than the client's read timeout to finish the other
    # files, and the retry must not complete the big one before the kill
    with servers.file_server(world.served, stall={BIG: 300_000}, stall_all=True) as server:
        cmd = command(world, root, server.base)
        first = subprocess.Popen(
            cmd, env=world.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        try:
            wait_for(lambda: part.is_file() and part.stat().st_size > 0, "train2014.zip's part file")
            wait_for(lambda: all(p.is_file() for p in others), "other files to finish")
        finally:
            os.killpg(first.pid, signal.SIGKILL)  # the command and any img2dataset it started
            first.wait()
        assert first.returncode == -signal.SIGKILL
        kept = part.stat().st_size
        assert kept > 0 and not (root / "coco" / "train2014.zip").exists()
        finished = {  # served paths whose file had landed whole before the kill
            path
            for path, n in server.requests.items()
            if n == 1 and path != BIG and (landed := _landed(root, path)) is not None and landed.is_file()
        }
        assert len(finished) >= 2

        server.stall_all = False  # the rerun gets the rest of the file
        before = len(server.ranges)
        again = subprocess.run(cmd, env=world.env, capture_output=True, text=True, timeout=300, check=False)
        assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
        assert (BIG, f"bytes={kept}-") in server.ranges[before:]  # the rerun resumed, not restarted
        assert {p: server.requests[p] for p in finished} == dict.fromkeys(finished, 1)  # not fetched again
    assert not part.exists()
    assert (root / "coco" / "train2014.zip").read_bytes() == (world.served / BIG).read_bytes()
    assert_complete(status_of(world, root))


def _landed(root: Path, served_path: str) -> Path | None:
    """Where the file served at ``served_path`` ({host}/{url path}) lands under ``root``."""
    for source in load_catalogue().values():
        files = list(source.files) + (
            [source.web.urls] if source.web and hasattr(source.web.urls, "url") else []
        )
        for f in files:
            if f.url.split("://", 1)[1] == served_path:
                return root / source.folder / f.path
    return None


def wait_for(condition: Any, what: str, limit_s: float = 120.0) -> None:
    """Poll until ``condition()``; the limit only stops a broken run from hanging the suite."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)
