"""download() end to end on 127.0.0.1: COCO-format archives and a hub repo, read by the real builders;
a failing source does not stop the others; finished files are not fetched again; the disk check."""

from __future__ import annotations

import hashlib
import io
import json
import runpy
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import attrs
import pytest

from microvlm_datasets.download.engine import disk_check, download, needed_bytes
from microvlm_datasets.download.http import DownloadError
from microvlm_datasets.download.sources import DatasetSource, HubFiles, RemoteFile, WebImages

#: tests/servers.py, run by path (the suite uses --import-mode=importlib, so test modules cannot import it)
servers = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("servers.py"))))
COCO = "http://images.cocodataset.org"
VQA = "https://s3.amazonaws.com/cvmlp/vqa/mscoco/vqa"
CITE = "https://example.org/the-page-the-url-comes-from"


def source(name: str, folder: str, **kw: Any) -> DatasetSource:
    """A test source: it feeds the dataset of its own name unless ``datasets`` says otherwise."""
    kw.setdefault("datasets", (name,))
    return DatasetSource(name=name, folder=folder, description=f"test {name}", licence="test", **kw)


def no_sleep(_: float) -> None:
    pass


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def served_file(served: Path, url_path: str, data: bytes, url_base: str, dest: str, **kw: Any) -> RemoteFile:
    """Write ``data`` under the served folder and describe it as the catalogue would (real size + sha256)."""
    (served / url_path).parent.mkdir(parents=True, exist_ok=True)
    (served / url_path).write_bytes(data)
    prefix = url_path.split("/", 1)[1]
    return RemoteFile(
        url=f"{url_base}/{prefix}",
        path=dest,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        cite=CITE,
        **kw,
    )


@pytest.fixture
def world(tmp_path: Path, formats, jpeg_bytes: Callable[..., bytes], monkeypatch: pytest.MonkeyPatch):
    """A served folder mirroring COCO and VQA's hosts, a fake hub with a RefCOCO repo, and the sources."""
    served = tmp_path / "served"
    captions = formats.captions.COCO_2017
    val_images = {f"val2017/{im['file_name']}": jpeg_bytes() for im in captions["images"]}
    train2014 = {
        "train2014/COCO_train2014_000000458752.jpg": jpeg_bytes(),
        "train2014/COCO_train2014_000000581857.jpg": jpeg_bytes(),
    }
    coco = source(
        "coco2017",
        "coco",
        datasets=("coco_caption",),
        files=(
            served_file(
                served,
                "coco/annotations/annotations_trainval2017.zip",
                zip_bytes({"annotations/captions_val2017.json": json.dumps(captions).encode()}),
                COCO,
                "annotations_trainval2017.zip",
                extract=True,
            ),
            served_file(
                served, "coco/zips/val2017.zip", zip_bytes(val_images), COCO, "val2017.zip", extract=True
            ),
            served_file(
                served, "coco/zips/train2014.zip", zip_bytes(train2014), COCO, "train2014.zip", extract=True
            ),
        ),
    )
    vqa = source(
        "vqav2",
        "vqa",
        files=(
            served_file(
                served,
                "vqa/v2_Questions_Train_mscoco.zip",
                zip_bytes(
                    {
                        "v2_OpenEnded_mscoco_train2014_questions.json": json.dumps(
                            formats.vqa.VQA_QUESTIONS
                        ).encode()
                    }
                ),
                VQA,
                "v2_Questions_Train_mscoco.zip",
                extract=True,
            ),
            served_file(
                served,
                "vqa/v2_Annotations_Train_mscoco.zip",
                zip_bytes(
                    {"v2_mscoco_train2014_annotations.json": json.dumps(formats.vqa.VQA_ANNOTATIONS).encode()}
                ),
                VQA,
                "v2_Annotations_Train_mscoco.zip",
                extract=True,
            ),
        ),
    )
    refcoco = source(
        "refcoco",
        "refcoco",
        hub=(HubFiles(repo_id="jxu124/refcoco", cite=CITE),),
    )
    rows = (json.dumps(formats.ref_web.REF_ROW) + "\n").encode()
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    with (
        servers.file_server(served) as server,
        servers.fake_hub({("dataset", "jxu124/refcoco"): servers.HubRepo({"train.jsonl": rows})}) as hub,
    ):
        monkeypatch.setenv("HF_ENDPOINT", hub.base)
        mirrors = {COCO: f"{server.base}/coco", VQA: f"{server.base}/vqa"}
        yield {
            "server": server,
            "hub": hub,
            "mirrors": mirrors,
            "sources": [coco, vqa, refcoco],
            "served": served,
        }


def test_download_produces_what_the_real_builders_read(world, tmp_path: Path, build) -> None:
    root = tmp_path / "data"
    summaries = download(
        world["sources"], root, jobs=3, mirrors=world["mirrors"], progress=False, sleep=no_sleep
    )
    assert [(s.name, s.status, s.errors) for s in summaries] == [
        ("coco2017", "complete", ()),
        ("vqav2", "complete", ()),
        ("refcoco", "complete", ()),
    ]
    assert summaries[0].fetched == 3 and summaries[0].bytes > 0
    captions = list(build("coco_caption", root=root / "coco", split="val"))
    assert len(captions) == 2 and captions[0].image.open().size == (8, 6)
    questions = list(build("vqav2", root=root / "vqa", split="train", image_root=root / "coco"))
    assert [q.id for q in questions] == ["458752000", "458752002"] and questions[0].image.open().size == (
        8,
        6,
    )
    refs = list(build("refcoco", root=root / "refcoco", split="train", image_root=root / "coco"))
    assert len(refs) == 2 and refs[0].image.open().size == (8, 6)

    server = world["server"]
    before = sum(server.requests.values())
    again = download(world["sources"], root, jobs=3, mirrors=world["mirrors"], progress=False, sleep=no_sleep)
    assert sum(server.requests.values()) == before  # nothing fetched again
    assert [(s.status, s.fetched, s.present) for s in again[:2]] == [("complete", 0, 3), ("complete", 0, 2)]


def test_a_failing_source_does_not_stop_the_others(world, tmp_path: Path) -> None:
    server = world["server"]
    server.missing.add("vqa/v2_Annotations_Train_mscoco.zip")
    server.corrupt.add("coco/zips/train2014.zip")
    gone = source(
        "withdrawn",
        "gone",
        datasets=(),
        hub=(HubFiles(repo_id="someone/withdrawn", cite=CITE),),
    )
    manual = source(
        "flickr30k",
        "flickr30k",
        login="kaggle",
        manual_steps="1. sign in to Kaggle ...",
    )
    summaries = download(
        [*world["sources"], gone, manual],
        tmp_path / "data",
        mirrors=world["mirrors"],
        progress=False,
        sleep=no_sleep,
    )
    by_name = {s.name: s for s in summaries}
    assert by_name["refcoco"].status == "complete"
    assert by_name["coco2017"].status == "failed" and by_name["coco2017"].fetched == 2
    (coco_error,) = by_name["coco2017"].errors
    assert "train2014.zip: sha256 mismatch" in coco_error
    (vqa_error,) = by_name["vqav2"].errors
    assert "v2_Annotations_Train_mscoco.zip: HTTP 404" in vqa_error and CITE in vqa_error
    assert "datasets/someone/withdrawn" in by_name["withdrawn"].errors[0]
    assert by_name["flickr30k"].status == "manual" and by_name["flickr30k"].manual_steps.startswith(
        "1. sign in"
    )


def test_progress_bars_run(world, tmp_path: Path) -> None:
    summaries = download(
        world["sources"][:1], tmp_path / "data", mirrors=world["mirrors"], progress=True, sleep=no_sleep
    )
    assert summaries[0].status == "complete"


def test_disk_check_refuses_before_any_request(world, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"needs about 5\.00 GB but only 1\.00 GB is free"):
        disk_check(tmp_path / "not" / "yet", 5 * 10**9, free=lambda _: 10**9)
    huge = source(
        "huge",
        "huge",
        datasets=(),
        files=(RemoteFile(url=f"{COCO}/huge.zip", path="huge.zip", size=10**18, cite=CITE),),
    )
    with pytest.raises(DownloadError, match="free some space"):
        download([huge], tmp_path / "data", mirrors=world["mirrors"], progress=False)
    assert sum(world["server"].requests.values()) == 0


def test_needed_bytes_counts_what_is_left(world, tmp_path: Path) -> None:
    coco = world["sources"][0]
    sizes = [f.size for f in coco.files]
    root = tmp_path / "data"
    assert needed_bytes([coco], root) == 2 * sum(sizes)  # archives: the download and its extraction
    (root / "coco").mkdir(parents=True)
    (root / "coco" / "val2017.zip.part").write_bytes(
        (world["served"] / "coco/zips/val2017.zip").read_bytes()[:10]
    )
    assert needed_bytes([coco], root) == 2 * sum(sizes) - 20
    (summary,) = download([coco], root, mirrors=world["mirrors"], progress=False, sleep=no_sleep)
    assert summary.status == "complete" and ("coco/zips/val2017.zip", "bytes=10-") in world["server"].ranges
    assert needed_bytes([coco], root) == 0


def test_web_images_fetch_the_url_list_then_run_fetch_web(
    world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from microvlm_datasets.download import web as web_module

    calls: list[tuple[Any, Path, dict[str, Any]]] = []

    def fake_fetch_web(web: WebImages, folder: Path, **kw: Any) -> str:
        assert (folder / "list.tsv").read_bytes() == b"caption\turl\n"  # the list came first
        calls.append((web, folder, kw))
        return "web result"

    monkeypatch.setattr(web_module, "fetch_web", fake_fetch_web)
    listing = served_file(world["served"], "coco/lists/list.tsv", b"caption\turl\n", COCO, "list.tsv")
    web = WebImages(urls=listing, url_col="url", caption_col="caption", input_format="tsv", cite=CITE)
    (summary,) = download(
        [source("cc3m", "cc3m", web=web)],
        tmp_path / "data",
        mirrors=world["mirrors"],
        retry_failed=True,
        progress=False,
        sleep=no_sleep,
    )
    assert summary.status == "complete" and summary.web == "web result" and summary.fetched == 1
    ((got, folder, kw),) = calls
    assert got is web and folder == tmp_path / "data" / "cc3m"
    assert kw == {"retry_failed": True, "mirrors": world["mirrors"]}


@attrs.define
class FakeLog:
    """Records what the engine reports (the ProgressLog of download/wandb_log.py)."""

    progress: list[tuple[str, str, int, int | None]] = attrs.Factory(list)
    done: dict[str, dict[str, Any]] = attrs.Factory(dict)
    closed: int = 0

    def file_progress(self, dataset: str, path: str, done: int, total: int | None) -> None:
        self.progress.append((dataset, path, done, total))

    def web_stats(self, dataset: str, result: Any) -> None:  # pragma: no cover - no web source here
        raise AssertionError("no web source")

    def dataset_done(self, dataset: str, **kw: Any) -> None:
        self.done[dataset] = kw

    def close(self) -> None:
        self.closed += 1


def test_progress_and_results_go_to_the_log(world, tmp_path: Path) -> None:
    world["server"].missing.add("vqa/v2_Annotations_Train_mscoco.zip")
    fake = FakeLog()
    coco, vqa, _ = world["sources"]
    download(
        [coco, vqa], tmp_path / "data", mirrors=world["mirrors"], progress=False, sleep=no_sleep, log_to=fake
    )
    size = coco.files[1].size
    assert ("coco2017", "val2017.zip", size, size) in fake.progress
    assert fake.done["coco2017"] == {
        "status": "complete",
        "files": 3,
        "size": sum(f.size for f in coco.files),
        "success_rate": None,
        "error": "",
    }
    assert fake.done["vqav2"]["status"] == "failed" and "HTTP 404" in fake.done["vqav2"]["error"]
    assert fake.closed == 1
