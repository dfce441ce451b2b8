"""download/web.py without img2dataset: where the tool is looked for and the install command when it
is not there, the lists it is given, the rates from its stats files, and the subprocess wiring against
a stand-in script that writes one shard the way img2dataset does (the real one: tests/ at the repo
root, test_download_web_img2dataset.py)."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from microvlm.errors import MicroVLMError
from microvlm_datasets.builders.web import WebShards
from microvlm_datasets.config import WebDatasetConfig
from microvlm_datasets.download import web
from microvlm_datasets.download.sources import RemoteFile, WebImages

servers = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("servers.py"))))
CITE = "https://example.org/the-list's-page"
HOST = "http://lists.example.invalid"
PYTHON = sys.executable  # this interpreter (no_tool moves sys.executable away)


@pytest.fixture
def no_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No img2dataset anywhere: no override, no tool env, none beside the interpreter."""
    monkeypatch.delenv(web.ENV_VAR, raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "elsewhere" / "bin" / "python"))
    return tmp_path / "data" / ".tools"


def source(**kw) -> WebImages:
    urls = RemoteFile(url=f"{HOST}/list.tsv", path="list.tsv", size=None, cite=CITE)
    fields = {"urls": urls, "url_col": "url", "caption_col": "caption", "input_format": "tsv", "cite": CITE}
    return WebImages(**{**fields, **kw})


def test_without_img2dataset_the_error_gives_the_one_line_install_command(
    no_tool: Path, tmp_path: Path
) -> None:
    assert web.find_img2dataset(no_tool) is None
    with pytest.raises(web.ToolMissingError) as raised:
        web.fetch_web(source(), tmp_path / "data" / "cc3m")
    message = str(raised.value)
    command = web.install_command(no_tool)
    assert command in message and 'pip install "microvlm-datasets[web]"' in message
    assert command == (
        f'python3 -m venv {no_tool}/img2dataset && {no_tool}/img2dataset/bin/pip install "{web.REQUIREMENT}"'
    )
    assert not (tmp_path / "data" / "cc3m").exists()  # nothing fetched before the tool is there


def test_the_tool_is_found_in_its_env_beside_the_interpreter_or_where_the_variable_says(
    no_tool: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = no_tool / "img2dataset" / "bin" / "img2dataset"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    assert web.find_img2dataset(no_tool) == script

    beside = Path(sys.executable).parent / "img2dataset"  # the [web] extra's script
    beside.parent.mkdir(parents=True)
    beside.write_text("#!/bin/sh\n")
    assert web.find_img2dataset(tmp_path / "other") == beside

    monkeypatch.setenv(web.ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(web.ToolMissingError, match=f"{web.ENV_VAR}=.*missing is not a file"):
        web.find_img2dataset(no_tool)


def test_a_failed_install_says_why_and_gives_the_command(no_tool: Path, tmp_path: Path) -> None:
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'no venv module here' >&2\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(web.ToolMissingError) as raised:
        web.install_img2dataset(no_tool, python=str(broken))
    assert "exited 3" in str(raised.value) and "no venv module here" in str(raised.value)
    assert web.install_command(no_tool) in str(raised.value)


#: A stand-in for a base Python: ``-m venv ENV`` makes ENV/bin/python (itself), ``-m pip install
#: REQ`` records REQ and puts the script $STAND_IN_SCRIPT in as img2dataset.
FAKE_PYTHON = """#!/bin/sh
if [ "$2" = venv ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && exit 0; fi
if [ "$2" = pip ]; then d=$(dirname "$0"); echo "$4" > "$d/installed.txt"; cp "$STAND_IN_SCRIPT" "$d/img2dataset"; exit 0; fi
exit 1
"""


def test_install_creates_the_tool_env_and_fetch_web_uses_it_on_first_use(
    no_tool: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "python3"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    (tmp_path / "stand-in").write_text(f"#!{PYTHON}\n{STAND_IN}")
    monkeypatch.setenv("STAND_IN_SCRIPT", str(tmp_path / "stand-in"))
    script = web.install_img2dataset(no_tool, python=str(fake))
    assert script == no_tool / "img2dataset" / "bin" / "img2dataset" == web.find_img2dataset(no_tool)
    assert (script.parent / "installed.txt").read_text().strip() == web.REQUIREMENT
    assert web.install_img2dataset(no_tool, python="/nonexistent") == script  # there: not installed again

    installs: list[Path] = []
    monkeypatch.setattr(web, "install_img2dataset", lambda tools: installs.append(tools) or script)
    folder = tmp_path / "other" / "cc3m"
    folder.mkdir(parents=True)
    (folder / "list.tsv").write_text("a dog\thttp://x/1.jpg\n", encoding="utf-8")
    result = web.fetch_web(source(header=("caption", "url")), folder, install_tool=True, poll_s=0.05)
    assert installs == [tmp_path / "other" / ".tools"] and result.successes == 1


def write_stats(out: Path, shard: int, count: int, successes: int, resize: int = 0, **reasons: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stats = {
        "count": count,
        "successes": successes,
        "failed_to_download": count - successes - resize,
        "failed_to_resize": resize,
        "status_dict": {"success": successes, **reasons},
    }
    (out / f"{shard:05d}_stats.json").write_text(json.dumps(stats))


def test_rates_count_each_row_once_when_retries_added_shards(tmp_path: Path) -> None:
    folder = tmp_path / "cc3m"
    write_stats(folder, 0, 10, 7, resize=1, **{"HTTP Error 404": 2})
    write_stats(folder, 1, 5, 3, **{"HTTP Error 404": 1, "timed out": 1})
    write_stats(folder, 2, 4, 2, **{"HTTP Error 404": 2})  # a retry of shard 0 and 1's four failed downloads
    (folder / "00003_stats.json").write_text("{not json")  # a shard cut mid-write: not counted
    (folder / web.STATE).mkdir()
    (folder / web.STATE / web.RETRIES_FILE).write_text(json.dumps({"shards": [2]}))

    result = web.summarise(folder, folder)
    assert (result.rows, result.successes, result.failed_to_resize, result.failed_to_download) == (
        15,
        12,
        1,
        2,
    )
    assert result.success_rate == pytest.approx(12 / 15)
    assert result.shards == 3
    assert result.reasons == (("HTTP Error 404", 5), ("timed out", 1))
    assert web.summarise(folder, folder / "empty").success_rate == 0.0


def test_a_list_without_a_header_and_a_json_object_are_rewritten_as_json_lines(tmp_path: Path) -> None:
    tsv = tmp_path / "cc3m.tsv"
    tsv.write_text('a "quoted" dog\thttp://x/1.jpg\ncat, sitting\thttp://x/2.jpg\n', encoding="utf-8")
    lst = web.prepare_list(source(header=("caption", "url")), tsv, tmp_path / "state")
    assert (lst.input_format, lst.url_col, lst.caption_col) == ("jsonl", "url", "caption")
    rows = [json.loads(line) for line in lst.path.read_text(encoding="utf-8").splitlines()]
    assert rows == [
        {"url": "http://x/1.jpg", "caption": 'a "quoted" dog'},
        {"url": "http://x/2.jpg", "caption": "cat, sitting"},
    ]

    with_header = tmp_path / "sbu.tsv"
    with_header.write_text("url\tcaption\nhttp://x/1.jpg\ta dog\n", encoding="utf-8")
    assert web.prepare_list(source(), with_header, tmp_path / "state").path == with_header  # as it comes

    book = tmp_path / "dataset.json"
    book.write_text(json.dumps({"0001": {"imageURL": "http://x/c.gif", "title": "T", "split": 1}}))
    covers = source(url_col="imageURL", caption_col="title", input_format="json", output_format="files")
    lst = web.prepare_list(covers, book, tmp_path / "state")
    assert lst.extra == (web.KEY_COLUMN,) and lst.path == tmp_path / "state" / "dataset.jsonl"
    assert json.loads(lst.path.read_text()) == {
        "imageURL": "http://x/c.gif",
        "title": "T",
        "source_key": "0001",
    }
    lst.path.write_text("kept\n")  # newer than the list: a resumed run reads the same file
    assert web.prepare_list(covers, book, tmp_path / "state").path.read_text() == "kept\n"

    sbu = tmp_path / "sbu-captions-all.json"  # columns -> values: read by pandas as it is
    sbu.write_text(json.dumps({"image_urls": ["http://x/1.jpg"], "captions": ["a dog"]}))
    sbu_source = source(url_col="image_urls", caption_col="captions", input_format="json")
    assert web.prepare_list(sbu_source, sbu, tmp_path / "state").path == sbu


#: Writes one shard as img2dataset does (tar of key.jpg/.txt/.json + NNNNN_stats.json) from a
#: JSON-lines list, and its argv beside it; exits 2 when the list names a URL "fail".
STAND_IN = """
import io, json, sys, tarfile
args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
out = args["output_folder"]
open(out + "/argv.txt", "w").write("\\n".join(sys.argv[1:]))
rows = [json.loads(line) for line in open(args["url_list"])]
if any(r["url"] == "fail" for r in rows):
    print("Traceback: the stand-in failed", file=sys.stderr)
    sys.exit(2)
with tarfile.open(out + "/00000.tar", "w") as tar:
    for i, row in enumerate(rows):
        for ext, data in (("jpg", b"\\xff\\xd8 not decoded here"), ("txt", row["caption"].encode())):
            info = tarfile.TarInfo(f"{i:09d}.{ext}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
stats = {"count": len(rows) + 1, "successes": len(rows), "failed_to_download": 1, "failed_to_resize": 0,
         "status_dict": {"success": len(rows), "HTTP Error 404: Not Found": 1}}
open(out + "/00000_stats.json", "w").write(json.dumps(stats))
"""


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "bin" / "img2dataset"
    script.parent.mkdir()
    script.write_text(f"#!{PYTHON}\n{STAND_IN}")
    monkeypatch.setenv(web.ENV_VAR, str(script))
    return script


def test_fetch_web_fetches_the_list_runs_the_tool_and_reports_its_stats(
    stand_in: Path, tmp_path: Path
) -> None:
    served, folder = tmp_path / "served", tmp_path / "data" / "cc3m"
    served.mkdir()
    (served / "list.tsv").write_text("a dog\thttp://x/1.jpg\na cat\thttp://x/2.jpg\n", encoding="utf-8")
    seen: list[web.WebResult] = []
    with servers.file_server(served) as server:
        result = web.fetch_web(
            source(header=("caption", "url")),
            folder,
            processes=3,
            mirrors={HOST: server.base},
            on_stats=seen.append,
            poll_s=0.05,
        )
    assert (folder / "list.tsv").is_file()  # fetched through http.fetch_file, mirrored to 127.0.0.1
    assert (result.rows, result.successes, result.failed_to_download, result.shards) == (3, 2, 1, 1)
    assert result.reasons == (("HTTP Error 404: Not Found", 1),) and seen[-1] == result

    argv = set((folder / "argv.txt").read_text().splitlines())
    assert {"--output_format=webdataset", "--input_format=jsonl", "--incremental_mode=incremental"} <= argv
    assert {
        "--image_size=224",
        "--processes_count=3",
        "--caption_col=caption",
        "--enable_wandb=False",
    } <= argv
    assert f"--output_folder={folder}" in argv and f"--resize_mode={web.RESIZE_MODE}" in argv

    shards = WebShards(WebDatasetConfig(root=str(folder), index_workers=1))
    assert [shards[i].captions for i in range(len(shards))] == [("a dog",), ("a cat",)]
    assert shards.expected_count() == 2 and shards.summary()["download_failures"] == 1


def test_a_failing_run_raises_with_the_end_of_its_log(stand_in: Path, tmp_path: Path) -> None:
    folder = tmp_path / "data" / "cc3m"
    folder.mkdir(parents=True)
    (folder / "list.tsv").write_text("boom\tfail\n", encoding="utf-8")  # on disk: not fetched
    with pytest.raises(MicroVLMError, match="img2dataset exited 2") as raised:
        web.fetch_web(source(header=("caption", "url")), folder, poll_s=0.05)
    assert "Traceback: the stand-in failed" in str(raised.value)
    assert str(folder / web.STATE / "img2dataset.log") in str(raised.value)


def test_a_json_list_beside_the_shards_is_refused(stand_in: Path, tmp_path: Path) -> None:
    folder = tmp_path / "data" / "laion"
    folder.mkdir(parents=True)
    (folder / "urls.json").write_text("[]")
    urls = RemoteFile(url=f"{HOST}/urls.json", path="urls.json", size=None, cite=CITE)
    with pytest.raises(MicroVLMError, match="cannot sit in the output folder"):
        web.fetch_web(source(urls=urls, input_format="json"), folder)
    assert not (folder / "argv.txt").exists()


def test_the_web_extra_installs_what_the_tool_env_installs() -> None:
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["optional-dependencies"]["web"] == [web.REQUIREMENT]
