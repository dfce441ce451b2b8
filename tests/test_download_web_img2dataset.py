"""The real img2dataset against images on 127.0.0.1 (some URLs dead): shards the cc3m builder reads,
success rates from its stats files, a cut run resumed, failed rows retried, OCR-VQA's named files,
and the download engine running it with its rates logged.

img2dataset is microvlm-datasets' ``[web]`` extra (the integration session installs it) or its own
environment (``MICROVLM_IMG2DATASET`` names its script); without either these tests skip. The
local server is microvlm-datasets' test server (packages/microvlm-datasets/tests/servers.py).
"""

from __future__ import annotations

import io
import json
import runpy
import tarfile
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from microvlm_datasets.catalogue import CATALOGUE
from microvlm_datasets.download.engine import download
from microvlm_datasets.download.sources import DatasetSource, RemoteFile, WebImages
from microvlm_datasets.download.wandb_log import ProgressLog
from microvlm_datasets.download.web import fetch_web, find_img2dataset, read_stats
from microvlm_datasets.status import status

ROOT = Path(__file__).resolve().parents[1]
servers = SimpleNamespace(
    **runpy.run_path(str(ROOT / "packages" / "microvlm-datasets" / "tests" / "servers.py"))
)
CITE = "https://example.org/the-list's-page"
HOST = "http://images.example.invalid"  # the list's host in the "catalogue"; mirrored to 127.0.0.1

pytestmark = pytest.mark.skipif(
    find_img2dataset(Path("/nonexistent")) is None,
    reason='img2dataset is not installed (pip install "microvlm-datasets[web]", or set MICROVLM_IMG2DATASET)',
)


def jpeg(i: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40 + 8 * i, 30 + 4 * i), (20 * i % 256, 90, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


def serve_images(served: Path, good: int) -> list[str]:
    """``good`` real JPEGs under ``served/img/``; their paths relative to the served folder."""
    (served / "img").mkdir(parents=True, exist_ok=True)
    for i in range(good):
        (served / "img" / f"{i}.jpg").write_bytes(jpeg(i))
    return [f"img/{i}.jpg" for i in range(good)]


def cc3m_like(served: Path, server_base: str, good: int, dead: int) -> list[tuple[str, str]]:
    """CC3M's TSV: ``caption<TAB>url`` with no header row; ``dead`` URLs that 404."""
    rows = [(f"picture number {i}", f"{server_base}/{p}") for i, p in enumerate(serve_images(served, good))]
    rows += [(f"gone {i}", f"{server_base}/img/dead{i}.jpg") for i in range(dead)]
    (served / "lists").mkdir(exist_ok=True)
    (served / "lists" / "cc3m.tsv").write_text("".join(f"{c}\t{u}\n" for c, u in rows), encoding="utf-8")
    return rows


def cc3m_source(samples: int = 4) -> WebImages:
    urls = RemoteFile(url=f"{HOST}/lists/cc3m.tsv", path="Train_GCC-training.tsv", size=None, cite=CITE)
    return WebImages(
        urls=urls,
        url_col="url",
        caption_col="caption",
        input_format="tsv",
        cite=CITE,
        image_size=32,
        header=("caption", "url"),
    )


def run(web: WebImages, folder: Path, server, **kw):
    return fetch_web(
        web,
        folder,
        processes=1,
        threads=4,
        samples_per_shard=4,
        mirrors={HOST: server.base},
        timeout=5,
        poll_s=0.2,
        **kw,
    )


def cc3m(folder: Path):
    info = CATALOGUE["cc3m"]
    return info.factory()(info.config_cls(root=str(folder), index_workers=1))


def test_shards_are_read_by_the_cc3m_builder_and_status_counts_the_dead_urls(tmp_path: Path) -> None:
    served, root = tmp_path / "served", tmp_path / "data"
    with servers.file_server(served) as server:
        rows = cc3m_like(served, server.base, good=7, dead=3)
        seen = []
        result = run(cc3m_source(), root / "cc3m", server, on_stats=seen.append)

    assert (result.rows, result.successes, result.failed_to_download) == (10, 7, 3)
    assert result.success_rate == pytest.approx(0.7)
    assert result.shards == 3 and result.resumed == 0  # 10 rows, 4 a shard
    assert any("404" in reason for reason, _ in result.reasons)
    assert seen[-1] == result  # the W&B hook gets the final totals
    assert sorted(p.name for p in (root / "cc3m").glob("*.tar")) == ["00000.tar", "00001.tar", "00002.tar"]

    builder = cc3m(root / "cc3m")
    assert len(builder) == 7 and builder.expected_count() == 7
    captions = sorted(builder[i].captions[0] for i in range(len(builder)))
    assert captions == sorted(c for c, u in rows if "dead" not in u)
    assert min(builder[0].image.open().size) <= 32  # resized for the encoder (keep_ratio, only when bigger)

    entry = next(d for d in status(root)["datasets"] if d["name"] == "cc3m")
    (row,) = entry["splits"]
    assert row["status"] == "present" and row["samples"] == 7 and row["download_failures"] == 3


def test_a_cut_run_resumes_without_fetching_finished_shards_again(tmp_path: Path) -> None:
    served, folder = tmp_path / "served", tmp_path / "data" / "cc3m"
    with servers.file_server(served) as server:
        cc3m_like(served, server.base, good=10, dead=0)
        first = run(cc3m_source(), folder, server)
        assert first.successes == 10 and first.shards == 3
        # a kill during shard 2: its tar half written, no stats file yet
        (folder / "00002_stats.json").unlink()
        tar = folder / "00002.tar"
        tar.write_bytes(tar.read_bytes()[:700])
        server.requests.clear()

        again = run(cc3m_source(), folder, server)

    assert again.resumed == 2 and again.successes == 10 and again.rows == 10
    fetched = {path for path in server.requests if path.startswith("img/")}
    assert fetched == {"img/8.jpg", "img/9.jpg"}  # only shard 2's rows (rows 8 and 9)
    assert "lists/cc3m.tsv" not in server.requests  # the list is on disk already
    assert len(cc3m(folder)) == 10


def fetched_since(server, before: Counter) -> set[str]:
    """Image paths requested since ``before`` was taken (the server's counter also drives ``flaky``)."""
    return {path for path, n in (server.requests - before).items() if path.startswith("img/") and n}


def test_retry_failed_fetches_only_the_failed_rows_and_counts_each_row_once(tmp_path: Path) -> None:
    served, folder = tmp_path / "served", tmp_path / "data" / "cc3m"
    flaky = {"img/1.jpg": 1, "img/4.jpg": 1}  # 503 once, then served
    with servers.file_server(served, flaky=flaky) as server:
        cc3m_like(served, server.base, good=6, dead=2)
        first = run(cc3m_source(), folder, server)
        assert (first.rows, first.successes) == (8, 4)

        before = Counter(server.requests)
        retried = run(cc3m_source(), folder, server, retry_failed=True)
        assert retried.retried == 4  # two flaky, two dead
        assert fetched_since(server, before) == {"img/1.jpg", "img/4.jpg", "img/dead0.jpg", "img/dead1.jpg"}
        assert (retried.rows, retried.successes, retried.failed_to_download) == (8, 6, 2)
        assert retried.success_rate == pytest.approx(0.75)

        before = Counter(server.requests)
        twice = run(cc3m_source(), folder, server, retry_failed=True)  # only the dead ones are left
        assert fetched_since(server, before) == {"img/dead0.jpg", "img/dead1.jpg"}

    assert twice.retried == 2 and (twice.rows, twice.successes) == (8, 6)
    assert len(cc3m(folder)) == 6
    assert sorted(read_stats(folder)) == [0, 1, 2, 3]  # the first retry's shard is 2; the second's 3


def test_ocrvqa_covers_land_as_the_builder_names_them(tmp_path: Path) -> None:
    served, root = tmp_path / "served", tmp_path / "data"
    folder = root / "ocrvqa"
    with servers.file_server(served) as server:
        paths = serve_images(served, 3)
        records = {
            f"00{i}": {
                "imageURL": f"{server.base}/{p}",
                "title": f"Book {i}",
                "questions": [f"Who wrote book {i}?"],
                "answers": [f"Author {i}"],
                "split": 1,
            }
            for i, p in enumerate(paths)
        }
        records["dead"] = {**records["000"], "imageURL": f"{server.base}/img/none.jpg"}
        folder.mkdir(parents=True)
        (folder / "dataset.json").write_text(json.dumps(records), encoding="utf-8")  # placed by hand
        urls = RemoteFile(
            url="https://ocr-vqa.github.io/", path="dataset.json", size=None, cite=CITE, manual=True
        )
        web = WebImages(
            urls=urls,
            url_col="imageURL",
            caption_col="title",
            input_format="json",
            cite=CITE,
            image_size=32,
            output="images",
            output_format="files",
        )
        result = run(web, folder, server)

    assert (result.rows, result.successes, result.failed_to_download) == (4, 3, 1)
    assert sorted(p.name for p in (folder / "images").glob("*.jpg")) == ["000.jpg", "001.jpg", "002.jpg"]
    info = CATALOGUE["ocrvqa"]
    builder = info.factory()(
        info.config_cls(root=str(folder), image_root=str(folder / "images"), split="train")
    )
    assert len(builder) == 4  # the dead cover's question is there; its image is not
    missing = [builder[i] for i in range(len(builder)) if not Path(builder[i].image.path).is_file()]
    assert [s.image.path for s in missing] == [str(folder / "images" / "dead.jpg")]


class Recorder(ProgressLog):
    """A progress log that keeps its points instead of sending them to W&B."""

    def __init__(self) -> None:
        super().__init__(min_interval_s=0.0)
        self.points: list[dict] = []

    def _emit(self, metrics: dict) -> None:
        self.points.append(metrics)


def test_the_download_command_runs_it_and_logs_the_success_rate(tmp_path: Path) -> None:
    served, root = tmp_path / "served", tmp_path / "data"
    recorder = Recorder()
    with servers.file_server(served) as server:
        cc3m_like(served, server.base, good=3, dead=1)
        cc3m = DatasetSource(
            name="cc3m",
            datasets=("cc3m",),
            folder="cc3m",
            description="test",
            licence="test",
            web=cc3m_source(),
        )
        (summary,) = download([cc3m], root, mirrors={HOST: server.base}, progress=False, log_to=recorder)

    assert summary.status == "complete" and summary.web.success_rate == pytest.approx(0.75)
    rates = [p["cc3m/success_rate"] for p in recorder.points if "cc3m/success_rate" in p]
    assert rates[-1] == pytest.approx(0.75)
    assert recorder.rows == [["cc3m", "complete", 1, summary.bytes, pytest.approx(0.75), ""]]
    assert len(CATALOGUE["cc3m"].factory()(CATALOGUE["cc3m"].config_cls(root=str(root / "cc3m")))) == 3


def test_sbu_list_inside_an_archive_with_columns_of_values(tmp_path: Path) -> None:
    served, folder = tmp_path / "served", tmp_path / "data" / "sbu"
    with servers.file_server(served) as server:
        urls = [f"{server.base}/{p}" for p in serve_images(served, 3)] + [f"{server.base}/img/gone.jpg"]
        listing = json.dumps({"image_urls": urls, "captions": [f"photo {i}" for i in range(len(urls))]})
        with tarfile.open(served / "sbu-captions-all.tar.gz", "w:gz") as tar:
            info = tarfile.TarInfo("sbu-captions-all.json")
            info.size = len(listing.encode())
            tar.addfile(info, io.BytesIO(listing.encode()))
        archive = RemoteFile(
            url=f"{HOST}/sbu-captions-all.tar.gz",
            path="metadata/sbu-captions-all.tar.gz",
            size=None,
            cite=CITE,
            extract=True,
            extract_to="metadata",
        )
        sbu = WebImages(
            urls=archive,
            url_col="image_urls",
            caption_col="captions",
            input_format="json",
            cite=CITE,
            image_size=32,
            list_path="metadata/sbu-captions-all.json",
        )
        result = run(sbu, folder, server)

    assert (result.rows, result.successes, result.failed_to_download) == (4, 3, 1)
    info = CATALOGUE["sbu"]
    builder = info.factory()(info.config_cls(root=str(folder), index_workers=1))
    assert sorted(builder[i].captions[0] for i in range(len(builder))) == ["photo 0", "photo 1", "photo 2"]
