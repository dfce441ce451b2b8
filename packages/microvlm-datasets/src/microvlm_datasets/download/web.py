"""Web-scale images (CC3M, LAION-COCO, SBU, OCR-VQA's covers) through img2dataset.

:func:`fetch_web` fetches a source's URL list (:func:`.http.fetch_file` or
:func:`.hub.fetch_hub`), runs img2dataset on it and reports img2dataset's ``*_stats.json``
success rates. What lands is the layout the builders read (:mod:`..builders.web`): with
``output_format = "webdataset"``, ``{folder}/{output}/00000.tar``, ``00000_stats.json``,
``00000.parquet``, ... (``output = ""``: the shards sit in the dataset's folder, which is where
``dataset = "cc3m"`` looks); with ``"files"`` (OCR-VQA) one image per row named
``{key}{extension of the URL}`` as :func:`..builders.ocrvqa.image_file_name` names it. Images are
resized with img2dataset's ``keep_ratio`` to ``image_size`` on their short side (the encoder's
processor crops); failed rows are absent from the output and counted in the stats.

**Resume.** img2dataset's ``incremental`` mode: a shard whose ``_stats.json`` exists is done and
not fetched again; a shard cut by a kill is written anew. The shard a row lands in depends on the
list and ``samples_per_shard``, so both stay as they were between runs.
**Retry.** ``retry_failed`` re-runs the rows whose latest attempt failed to download (a failed
resize is the image's fault and is not retried) in img2dataset's ``extend`` mode, which numbers
the new shards after the last one; their numbers are kept in ``.img2dataset/retries.json`` so the
rates count each row of the list once.

**How img2dataset is installed: its own environment.** Measured 2026-12 (Python 3.11, PyPI
wheels): ``python3 -m venv /tmp/i2d && /tmp/i2d/bin/pip install img2dataset`` took 63 s and
780 MB on disk (about 760 MB past an empty venv), 52 packages: img2dataset 1.47.0 pins
``webdataset<0.3`` (0.2.111), ``pandas<3``, ``fire<0.8``, ``albumentations<2`` and needs
opencv-python-headless, pyarrow, scipy and wandb (a hard dependency: ``img2dataset/logger.py``
imports it at the top, with opentelemetry). A ``pip install --dry-run`` of microvlm-core and
microvlm-datasets[parquet,test] beside it, and of img2dataset into our development venv, replaced
nothing either way: no conflict today. Chosen all the same: **a venv of its own,
``{root}/.tools/img2dataset``, called as a subprocess** — the training environment stays free
of 760 MB, of a forced wandb and of pins that would hold back webdataset 1.x and pandas 3 the day
they matter, and img2dataset's process pool and SIGINT handler stay in their own process.
:func:`install_img2dataset` creates it (``fetch_web(install_tool=True)`` on first use); without
it, and without that flag, the error gives the one-line command (:func:`install_command`). The
extra ``microvlm-datasets[web]`` exists for one-environment setups and for the nox sessions that
run the real img2dataset tests: the same subprocess then runs the ``img2dataset`` script beside
the interpreter. ``MICROVLM_IMG2DATASET`` names any other ``img2dataset`` script.

Lists are used as they come (parquet, tsv/csv with a header, JSON record lists); a list without
a header row (CC3M's ``caption<TAB>url``) or a JSON object of records (OCR-VQA's ``dataset.json``,
book id -> record) is first rewritten as JSON lines under ``.img2dataset/``. Image URLs are
fetched as listed: ``mirrors`` apply to the list's own URL only.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from microvlm_datasets.download.http import DownloadError

if TYPE_CHECKING:
    from microvlm_datasets.download.sources import WebImages

log = logging.getLogger(__name__)

#: What the tool environment installs: from the release measured and tested (1.47.0, whose
#: ``download()`` takes the ``incremental_mode`` values ``incremental`` and ``extend`` used here).
REQUIREMENT = "img2dataset>=1.47,<2"
ENV_VAR = "MICROVLM_IMG2DATASET"  # path of an img2dataset script to use instead of the tool env
TOOLS = ".tools"  # under the data root: tool environments
TOOL_ENV = "img2dataset"  # under TOOLS
STATE = ".img2dataset"  # under a dataset's folder: prepared lists, retry lists, the log
RETRIES_FILE = "retries.json"  # under STATE: the shards written by retries
KEY_COLUMN = "source_key"  # the key column added to a JSON object's records
RESIZE_MODE = "keep_ratio"  # short side = image_size, aspect kept (the processor crops)

#: Called while img2dataset runs (and once at the end) with the totals so far.
OnStats = Callable[["WebResult"], None]


class ToolMissingError(DownloadError):
    """img2dataset is not installed where it is looked for; the message gives the install command."""


@attrs.frozen
class WebResult:
    """What img2dataset's ``*_stats.json`` files say about one output folder."""

    folder: Path  # where the shards (or the image files) are
    rows: int  # rows of the URL list tried (a retried row counts once)
    successes: int  # images written
    failed_to_download: int  # rows whose latest attempt failed to download
    failed_to_resize: int  # rows whose image could not be decoded or resized
    shards: int  # shards with a stats file (retries' included)
    resumed: int = 0  # shards already complete before this call, not fetched again
    retried: int = 0  # rows tried again in this call (retry_failed)
    reasons: tuple[tuple[str, int], ...] = ()  # failure reason -> rows, most frequent first (at most 5)

    @property
    def success_rate(self) -> float:
        """Share of the list's rows that became images (0 for an empty list)."""
        return self.successes / self.rows if self.rows else 0.0


# -- the tool ------------------------------------------------------------------------


def tool_env(tools: Path) -> Path:
    """The tool environment's folder: ``{tools}/img2dataset``."""
    return Path(tools) / TOOL_ENV


def _scripts(env: Path) -> Path:
    return env / ("Scripts" if sys.platform == "win32" else "bin")


def install_command(tools: Path) -> str:
    """The one-line shell command that creates the tool environment."""
    env = tool_env(tools)
    return f'python3 -m venv {env} && {_scripts(env) / "pip"} install "{REQUIREMENT}"'


def find_img2dataset(tools: Path) -> Path | None:
    """The ``img2dataset`` script to run, or None: ``$MICROVLM_IMG2DATASET``, then the tool
    environment under ``tools``, then the script beside this interpreter (the ``[web]`` extra)."""
    override = os.environ.get(ENV_VAR)
    if override:
        path = Path(override)
        if not path.is_file():
            raise ToolMissingError(f"{ENV_VAR}={override} is not a file (it names an img2dataset script)")
        return path
    for candidate in (_scripts(tool_env(tools)) / "img2dataset", Path(sys.executable).parent / "img2dataset"):
        if candidate.is_file():
            return candidate
    return None


def require_img2dataset(tools: Path) -> Path:
    """:func:`find_img2dataset`, or a :class:`ToolMissingError` with the install command."""
    script = find_img2dataset(tools)
    if script is None:
        raise ToolMissingError(
            "web-scale images are fetched with img2dataset, which is not installed. Install it "
            f"in its own environment (about 760 MB, a minute): {install_command(tools)} "
            '— or into this one: pip install "microvlm-datasets[web]"'
        )
    return script


def install_img2dataset(tools: Path, *, python: str | None = None) -> Path:
    """Create the tool environment ``{tools}/img2dataset`` with img2dataset in it; its script.

    :raises ToolMissingError: when venv or pip fails (the message has their output and the command).
    """
    env = tool_env(tools)
    script = _scripts(env) / "img2dataset"
    if script.is_file():
        return script
    base = python or getattr(sys, "_base_executable", None) or sys.executable
    log.info("creating %s with %s (about 760 MB)", env, REQUIREMENT)
    steps = (
        [base, "-m", "venv", str(env)],
        [str(_scripts(env) / "python"), "-m", "pip", "install", REQUIREMENT],
    )
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, check=False)
        except OSError as exc:
            done = subprocess.CompletedProcess(step, 127, "", str(exc))
        if done.returncode != 0:
            raise ToolMissingError(
                f"could not install img2dataset into {env} ({' '.join(step)} exited {done.returncode}: "
                f"{(done.stderr or done.stdout).strip()[-500:]}); the command is: {install_command(tools)}"
            )
    return script


def _python_beside(script: Path) -> Path:
    """The Python that runs ``script``: its ``#!`` interpreter when that is a Python, else the
    ``python`` beside it (pip writes ``#!/bin/sh`` + ``exec`` for long paths; a venv has one)."""
    try:
        first = script.read_bytes().split(b"\n", 1)[0].decode("utf-8", "replace")
    except OSError:
        first = ""
    interpreter = Path(first[2:].strip()) if first.startswith("#!") else Path()
    if interpreter.name.startswith("python") and interpreter.is_file():
        return interpreter
    return script.parent / "python"


# -- stats ---------------------------------------------------------------------------


def _shard_id(path: Path) -> int | None:
    stem = path.name.split("_", 1)[0].split(".", 1)[0]
    return int(stem) if stem.isdigit() else None


def read_stats(out: Path) -> dict[int, dict[str, Any]]:
    """Shard number -> its ``NNNNN_stats.json`` (unreadable ones left out)."""
    stats: dict[int, dict[str, Any]] = {}
    for path in sorted(Path(out).glob("*_stats.json")):
        shard = _shard_id(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log.warning("%s cannot be read; that shard is not counted", path)
            continue
        if shard is not None and isinstance(data, dict):
            stats[shard] = data
    return stats


def _retry_shards(folder: Path) -> set[int]:
    path = folder / STATE / RETRIES_FILE
    if not path.is_file():
        return set()
    return {int(s) for s in json.loads(path.read_text(encoding="utf-8")).get("shards", [])}


def summarise(folder: Path, out: Path, *, resumed: int = 0, retried: int = 0) -> WebResult:
    """The totals of the stats files in ``out``; rows counted once (retries' shards add successes only)."""
    stats = read_stats(out)
    again = _retry_shards(folder)
    rows = sum(int(s.get("count", 0)) for shard, s in stats.items() if shard not in again)
    successes = sum(int(s.get("successes", 0)) for s in stats.values())
    resize = sum(int(s.get("failed_to_resize", 0)) for s in stats.values())
    reasons: dict[str, int] = {}
    for s in stats.values():
        for reason, n in (s.get("status_dict") or {}).items():
            if reason != "success":
                reasons[reason] = reasons.get(reason, 0) + int(n)
    top = tuple(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:5])
    download = max(rows - successes - resize, 0)
    return WebResult(out, rows, successes, download, resize, len(stats), resumed, retried, top)


# -- the URL list ----------------------------------------------------------------------


@attrs.frozen
class _List:
    """The list img2dataset reads, with the column names it has there."""

    path: Path
    input_format: str
    url_col: str
    caption_col: str
    extra: tuple[str, ...] = ()  # columns saved beside each image (the key, for "files")


def fetch_list(web: WebImages, folder: Path, *, mirrors: Mapping[str, str] | None = None) -> Path:
    """The URL list on disk: fetched through :mod:`.http` / :mod:`.hub` unless it is there already."""
    from microvlm_datasets.download.sources import HubFiles

    urls = web.urls
    if isinstance(urls, HubFiles):
        target = folder / (web.list_path or urls.path)
        if not _has_list(target, web.input_format):
            from microvlm_datasets.download.hub import fetch_hub

            fetch_hub(urls, folder)
        return target
    target = folder / (web.list_path or urls.path)
    if target.exists():
        return target
    if getattr(urls, "manual", False):
        raise DownloadError(f"{target} is placed by hand (see {urls.cite}); it is not there yet")
    from microvlm_datasets.download.http import fetch_file

    fetch_file(urls, folder, mirrors=mirrors or {})
    if web.list_path and urls.extract:
        from microvlm_datasets.download.extract import extract_archive

        extract_archive(folder / urls.path, folder / urls.extract_to)
    return target


def _has_list(path: Path, input_format: str) -> bool:
    return path.is_file() or (path.is_dir() and any(path.glob(f"*.{input_format}")))


def prepare_list(web: WebImages, source: Path, state: Path) -> _List:
    """What img2dataset reads: ``source`` as it is, or rewritten as JSON lines under ``state``
    when it has no header row or is a JSON object of records."""
    extra = (web.key_col,) if web.output_format == "files" and web.key_col else ()
    fmt = web.input_format
    if fmt in ("tsv", "csv") and web.header:
        return _rewrite(web, source, state, lambda: _headerless_rows(source, fmt, web.header), extra)
    # key -> record (OCR-VQA): the key becomes a column. Column -> values (SBU's
    # {"image_urls": [...], "captions": [...]}) and record lists are what pandas reads as they are.
    if fmt == "json" and source.is_file() and _keyed_records(source):
        return _rewrite(web, source, state, lambda: _keyed_rows(source), extra or (KEY_COLUMN,))
    return _List(source, fmt, web.url_col, web.caption_col, extra)


#: The start of a JSON object whose first value is an object: ``{"0001": {...``
_KEYED = re.compile(rb'\s*\{\s*"(?:[^"\\]|\\.)*"\s*:\s*\{')


def _keyed_records(source: Path) -> bool:
    """Whether a JSON list is an object of records (read from its first bytes, not parsed whole)."""
    with source.open("rb") as f:
        return _KEYED.match(f.read(4096).removeprefix(b"\xef\xbb\xbf")) is not None


def _keyed_rows(source: Path) -> Any:
    with source.open(encoding="utf-8") as f:
        data = json.load(f)
    for key, record in data.items():
        if isinstance(record, dict):
            yield {**record, KEY_COLUMN: key}


def _headerless_rows(source: Path, fmt: str, header: tuple[str, ...]) -> Any:
    with source.open(encoding="utf-8", newline="") as f:
        for row in csv.reader(f, delimiter="\t" if fmt == "tsv" else ",", quoting=csv.QUOTE_NONE):
            yield dict(zip(header, row, strict=False))  # a short row leaves columns out


def _rewrite(
    web: WebImages, source: Path, state: Path, rows: Callable[[], Any], extra: tuple[str, ...]
) -> _List:
    """``rows()`` as JSON lines in ``state/{source's stem}.jsonl``, kept while it is newer than
    ``source`` (a resumed run reads the same rows in the same order, so the shards line up)."""
    dest = state / f"{source.stem}.jsonl"
    if not dest.is_file() or dest.stat().st_mtime < source.stat().st_mtime:
        state.mkdir(parents=True, exist_ok=True)
        keep = (web.url_col, web.caption_col, *extra)
        part = dest.with_name(dest.name + ".part")
        with part.open("w", encoding="utf-8") as f:
            for row in rows():
                f.write(json.dumps({k: _text(row.get(k)) for k in keep if k}, ensure_ascii=False) + "\n")
        os.replace(part, dest)
    return _List(dest, "jsonl", web.url_col, web.caption_col, extra)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


# -- running img2dataset ---------------------------------------------------------------


def _command(
    script: Path, lst: _List, out: Path, web: WebImages, opts: dict[str, Any], mode: str
) -> list[str]:
    args = {
        "url_list": str(lst.path),
        "output_folder": str(out),
        "output_format": web.output_format,
        "input_format": lst.input_format,
        "url_col": lst.url_col,
        "image_size": web.image_size,
        "resize_mode": RESIZE_MODE,
        "resize_only_if_bigger": True,
        "processes_count": opts["processes"],
        "thread_count": opts["threads"],
        "number_sample_per_shard": opts["samples_per_shard"],
        "timeout": opts["timeout"],
        "incremental_mode": mode,
        "enable_wandb": False,  # our own W&B logging reports the totals (wandb_log.py)
    }
    if lst.caption_col:
        args["caption_col"] = lst.caption_col
    if lst.extra:
        args["save_additional_columns"] = json.dumps(list(lst.extra))  # fire reads a Python list
    return [str(_python_beside(script)), str(script), *(f"--{k}={v}" for k, v in args.items())]


def _run(command: list[str], folder: Path, out: Path, on_stats: OnStats | None, poll_s: float) -> None:
    """Run img2dataset, its output appended to ``.img2dataset/img2dataset.log``, reporting the totals
    every ``poll_s``. It stays in this process group: a Ctrl-C reaches it too, and its own handler
    stops it (the shards done so far keep their stats files; the next run resumes after them)."""
    state = folder / STATE
    state.mkdir(parents=True, exist_ok=True)
    log_path = state / "img2dataset.log"
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            while proc.poll() is None:
                time.sleep(poll_s)
                if on_stats is not None:
                    on_stats(summarise(folder, out))
        except BaseException:
            proc.terminate()
            proc.wait()
            raise
    if proc.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
        raise DownloadError(
            f"img2dataset exited {proc.returncode} writing {out} (log: {log_path}):\n" + "\n".join(tail)
        )


_RETRY_SCRIPT = """
import glob, os, sys
import pandas as pd
out, dest, extra = sys.argv[1], sys.argv[2], [c for c in sys.argv[3].split(",") if c]
frames = []
for path in sorted(glob.glob(os.path.join(out, "*.parquet"))):
    name = os.path.basename(path).split(".")[0]
    if name.isdigit():
        frame = pd.read_parquet(path)
        frame["_shard"] = int(name)
        frames.append(frame)
rows = pd.concat(frames) if frames else pd.DataFrame(columns=["url", "status", "_shard"])
latest = rows.sort_values("_shard", kind="stable").groupby("url", sort=False).tail(1)
failed = latest[latest["status"] == "failed_to_download"]
keep = [c for c in ["url", "caption", *extra] if c in failed.columns]
failed[keep].to_parquet(dest, index=False)
print(len(failed))
"""


def _retry(
    script: Path, folder: Path, out: Path, lst: _List, web: WebImages, opts: dict[str, Any], **run: Any
) -> int:
    """Re-run the rows whose latest attempt failed to download; the number of rows retried."""
    state = folder / STATE
    state.mkdir(parents=True, exist_ok=True)
    dest = state / f"retry-{int(time.time())}.parquet"
    done = subprocess.run(
        [str(_python_beside(script)), "-c", _RETRY_SCRIPT, str(out), str(dest), ",".join(lst.extra)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise DownloadError(f"could not list the failed rows of {out}: {done.stderr.strip()[-800:]}")
    count = int(done.stdout.strip().splitlines()[-1])
    if count == 0:
        dest.unlink(missing_ok=True)
        return 0
    before = set(read_stats(out))
    retry_list = _List(dest, "parquet", "url", "caption" if lst.caption_col else "", lst.extra)
    _run(_command(script, retry_list, out, web, opts, "extend"), folder, out, **run)
    record = state / RETRIES_FILE
    shards = sorted(_retry_shards(folder) | (set(read_stats(out)) - before))
    record.write_text(json.dumps({"shards": shards}) + "\n", encoding="utf-8")
    return count


def _name_files(out: Path, key: str) -> None:
    """``files`` output: move ``{shard}/{n}.jpg`` to ``{key}{extension of the URL}`` in ``out``."""
    from microvlm_datasets.builders.ocrvqa import image_file_name

    for shard in sorted(p for p in out.iterdir() if p.is_dir() and p.name.isdigit()):
        for meta_path in sorted(shard.glob("*.json")):
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            images = [p for p in shard.glob(meta_path.stem + ".*") if p.suffix not in (".json", ".txt")]
            if meta.get("status") == "success" and images and meta.get(key):
                os.replace(images[0], out / image_file_name(str(meta[key]), str(meta.get("url", ""))))
        shutil.rmtree(shard)


def fetch_web(
    web: WebImages,
    folder: Path,
    *,
    processes: int = 0,
    retry_failed: bool = False,
    mirrors: Mapping[str, str] | None = None,
    threads: int = 64,
    samples_per_shard: int = 10_000,
    timeout: int = 10,
    tools: Path | None = None,
    on_stats: OnStats | None = None,
    poll_s: float = 2.0,
    install_tool: bool = False,
) -> WebResult:
    """Fetch ``web``'s URL list into ``folder`` and its images with img2dataset (see the module doc).

    :param folder: the dataset's folder under the data root (``data/cc3m``).
    :param processes: img2dataset's ``processes_count`` (0 = one per CPU); ``threads`` its
        ``thread_count`` in each.
    :param retry_failed: afterwards, try the rows that failed to download once more.
    :param mirrors: URL prefix -> replacement, applied to the list's URL.
    :param samples_per_shard: rows per shard; keep it between runs (resume matches shards by number).
    :param timeout: seconds img2dataset waits for one image.
    :param tools: where the tool environment is (default ``{folder}/../.tools``).
    :param on_stats: called with the totals every ``poll_s`` seconds while img2dataset runs.
    :param install_tool: create the tool environment when img2dataset is not found
        (:func:`install_img2dataset`) instead of raising.
    :returns: the totals of every stats file in the output, with what this call resumed and retried.
    :raises ToolMissingError: img2dataset is not installed (the message has the command).
    """
    folder = Path(folder)
    tools = Path(tools) if tools else folder.parent / TOOLS
    script = find_img2dataset(tools)
    if script is None:
        script = install_img2dataset(tools) if install_tool else require_img2dataset(tools)
    source = fetch_list(web, folder, mirrors=mirrors)
    out = folder / web.output if web.output else folder
    if source.resolve() == out.resolve():
        raise DownloadError(
            f"{web.urls.cite}: the URL list's folder {source} cannot also be the output folder"
        )
    if source.parent.resolve() == out.resolve() and source.suffix == ".json":
        raise DownloadError(  # img2dataset takes every *.json beside its shards for a stats file
            f"{source}: a JSON URL list cannot sit in the output folder {out}; "
            "give the source an output sub-folder"
        )
    lst = prepare_list(web, source, folder / STATE)
    out.mkdir(parents=True, exist_ok=True)
    opts = {
        "processes": processes or os.cpu_count() or 1,
        "threads": threads,
        "samples_per_shard": samples_per_shard,
        "timeout": timeout,
    }
    resumed = len(set(read_stats(out)) - _retry_shards(folder))
    run = {"on_stats": on_stats, "poll_s": poll_s}
    _run(_command(script, lst, out, web, opts, "incremental"), folder, out, **run)
    retried = _retry(script, folder, out, lst, web, opts, **run) if retry_failed else 0
    if web.output_format == "files":
        _name_files(out, lst.extra[0] if lst.extra else KEY_COLUMN)
    result = summarise(folder, out, resumed=resumed, retried=retried)
    if on_stats is not None:
        on_stats(result)
    log.info("%s: %d of %d rows (%.1f%%)", out, result.successes, result.rows, 100 * result.success_rate)
    return result


__all__ = [
    "ENV_VAR",
    "REQUIREMENT",
    "ToolMissingError",
    "WebResult",
    "fetch_list",
    "fetch_web",
    "find_img2dataset",
    "install_command",
    "install_img2dataset",
    "prepare_list",
    "read_stats",
    "require_img2dataset",
    "summarise",
]
