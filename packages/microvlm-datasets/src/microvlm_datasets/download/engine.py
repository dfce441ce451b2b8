"""``download(sources, root)``: every file of every source in parallel, with a summary per source.

Each catalogue file, hub repository and web image list is one job on a thread pool (transfers
wait on the network, not the GIL); an archive is extracted by the job that fetched it. A failed
job is recorded against its source and the rest go on, so one dead link does not stop a
``--all``. Before anything is sent, :func:`disk_check` compares what is still to fetch (the
catalogue's sizes, counted twice for archives still to extract) with the free space under the
root. Progress is a ``rich`` bar per file in flight and one overall, off with ``progress=False``.

References: https://docs.python.org/3/library/concurrent.futures.html#threadpoolexecutor,
https://rich.readthedocs.io/en/stable/progress.html (a Progress may be updated from threads).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs

from microvlm_datasets.download.extract import extract_archive, is_extracted
from microvlm_datasets.download.http import DownloadError, OnBytes, destination, fetch_file
from microvlm_datasets.download.hub import fetch_hub
from microvlm_datasets.download.sources import DatasetSource, HubFiles, RemoteFile

if TYPE_CHECKING:
    from microvlm_datasets.download.wandb_log import ProgressLog

log = logging.getLogger(__name__)

Status = Literal["complete", "failed", "manual"]


@attrs.frozen
class SourceSummary:
    """How one source's download went."""

    name: str  # the source's name
    status: Status  # "complete": everything there; "failed": see errors; "manual": steps to follow
    fetched: int = 0  # files (and hub repositories) transferred in this run
    present: int = 0  # files already there, not fetched again
    bytes: int = 0  # bytes received in this run
    errors: tuple[str, ...] = ()  # one line per failed file or repository
    manual_steps: str = ""  # what the user must do by hand (printed by the CLI)
    web: Any = None  # the web-image result (``download.web.WebResult``) when the source has one


def _free_bytes(path: Path) -> int:
    """Free space of the file system holding ``path`` (its nearest existing parent)."""
    probe = path.resolve()
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free


def disk_check(root: Path, needed_bytes: int, *, free: Callable[[Path], int] = _free_bytes) -> None:
    """Raise :class:`DownloadError` when ``root``'s file system has less than ``needed_bytes`` free."""
    available = free(root)
    if needed_bytes > available:
        raise DownloadError(
            f"{root}: the download needs about {needed_bytes / 1e9:.2f} GB but only "
            f"{available / 1e9:.2f} GB is free; free some space or choose another --root"
        )


def needed_bytes(sources: Sequence[DatasetSource], root: Path) -> int:
    """Bytes still to write: missing files less their part files, archives twice until extracted.

    Hub and web-image sources count their ``size_bytes`` less their files' sizes (their own files
    are not listed in the catalogue); a source without sizes counts nothing.
    """
    total = 0
    for source in sources:
        folder = root / source.folder
        listed = 0
        for file in source.files:
            size = file.size or 0
            listed += size
            dest = destination(folder, file.path)
            if dest.is_file():
                extracted = not file.extract or is_extracted(dest, _extract_dir(file, folder))
                total += 0 if extracted else size
                continue
            part = dest.with_name(dest.name + ".part")
            total += max(size - (part.stat().st_size if part.is_file() else 0), 0) * (
                2 if file.extract else 1
            )
        if (source.hub or source.web) and source.size_bytes:
            total += max(source.size_bytes - listed, 0)
    return total


def _extract_dir(file: RemoteFile, folder: Path) -> Path:
    return destination(folder, file.extract_to) if file.extract_to else folder


@attrs.define
class _Tally:
    """A source's results, filled from the worker threads."""

    name: str  # the source's name
    fetched: int = 0
    present: int = 0
    bytes: int = 0
    errors: list[str] = attrs.Factory(list)
    web: Any = None


def download(
    sources: Sequence[DatasetSource],
    root: Path,
    *,
    jobs: int = 4,
    mirrors: Mapping[str, str] | None = None,
    retry_failed: bool = False,
    progress: bool = True,
    token: str | None = None,
    retries: int = 5,
    timeout: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    check_disk: bool = True,
    wandb_project: str | None = None,
    log_to: ProgressLog | None = None,
) -> list[SourceSummary]:
    """Download ``sources`` under ``root`` (each into ``root / source.folder``), ``jobs`` at a time.

    :param mirrors: URL prefix -> replacement prefix, applied to every HTTP file.
    :param retry_failed: web images: fetch again the rows a previous run failed on.
    :param progress: show ``rich`` progress bars (tests pass False).
    :param token: Hugging Face token (default ``HF_TOKEN``, then the stored login).
    :param retries, timeout, sleep: passed to :func:`~microvlm_datasets.download.http.fetch_file`.
    :param check_disk: run :func:`disk_check` first.
    :param wandb_project: log progress and per-source results to this W&B project
        (:class:`~microvlm_datasets.download.wandb_log.DownloadLog`; ``""`` = ``WANDB_PROJECT``
        or the default); None = no W&B.
    :param log_to: where progress and results go instead (a ``ProgressLog``; tests pass a fake).
    :returns: one :class:`SourceSummary` per source, in the order given.
    :raises DownloadError: only for the disk check; a failing file fails its source, not the call.
    """
    root = Path(root)
    if check_disk:
        disk_check(root, needed_bytes(sources, root))
    if log_to is None and wandb_project is not None:
        from microvlm_datasets.download.wandb_log import DownloadLog

        config = {"sources": [s.name for s in sources], "jobs": jobs, "retry_failed": retry_failed}
        log_to = DownloadLog(root, config=config, project=wandb_project)
    run = _Run(threading.Lock(), None, log_to, mirrors, retries, timeout, sleep, token, retry_failed)
    try:
        with _progress(progress, sum(f.size or 0 for s in sources for f in s.files)) as bars:
            summaries = _run_all(sources, root, attrs.evolve(run, bars=bars), jobs)
    finally:
        if log_to is not None:
            log_to.close()
    return summaries


def _run_all(sources: Sequence[DatasetSource], root: Path, run: _Run, jobs: int) -> list[SourceSummary]:
    """Every job on the pool; then one summary per source (and to the log)."""
    tallies = {source.name: _Tally(source.name) for source in sources}
    work: list[tuple[DatasetSource, Callable[[], None]]] = []
    for source in sources:
        folder, tally = root / source.folder, tallies[source.name]
        work += [(source, partial(run.file, f, folder, tally)) for f in source.files]
        work += [(source, partial(run.hub, h, folder, tally)) for h in source.hub]
        if source.web is not None:
            work.append((source, partial(run.web, source, folder, tally)))
    with ThreadPoolExecutor(max_workers=max(jobs, 1), thread_name_prefix="download") as pool:
        futures = {pool.submit(job): source for source, job in work}
        for future in as_completed(futures):
            source = futures[future]
            error = future.exception()
            if error is not None:
                if not isinstance(error, DownloadError):
                    log.error("%s: unexpected error", source.name, exc_info=error)
                with run.lock:
                    tallies[source.name].errors.append(_line(error))
    summaries = [_summary(source, tallies[source.name]) for source in sources]
    if run.log_to is not None:
        for s in summaries:
            rate = getattr(s.web, "success_rate", None)
            error = s.errors[0] if s.errors else ""
            run.log_to.dataset_done(
                s.name,
                status=s.status,
                files=s.fetched + s.present,
                size=s.bytes,
                success_rate=rate,
                error=error,
            )
    return summaries


def _line(error: BaseException) -> str:
    return str(error) if isinstance(error, DownloadError) else f"{type(error).__name__}: {error}"


def _summary(source: DatasetSource, tally: _Tally) -> SourceSummary:
    nothing = not (source.files or source.hub or source.web)
    status: Status = "failed" if tally.errors else "manual" if nothing and source.manual_steps else "complete"
    return SourceSummary(
        source.name,
        status,
        tally.fetched,
        tally.present,
        tally.bytes,
        tuple(tally.errors),
        source.manual_steps,
        tally.web,
    )


@attrs.frozen
class _Run:
    """The settings every job of one :func:`download` call shares; the jobs are its methods."""

    lock: threading.Lock  # guards the tallies
    bars: _Bars | None
    log_to: ProgressLog | None
    mirrors: Mapping[str, str] | None
    retries: int
    timeout: float
    sleep: Callable[[float], None]
    token: str | None
    retry_failed: bool

    def file(self, file: RemoteFile, folder: Path, tally: _Tally) -> None:
        """Fetch one file, then extract it when the catalogue says it is an archive. A file the
        catalogue marks ``manual`` is placed by hand: only checked for, never fetched (its ``url``
        is the page to get it from, and fetching it would save that page under its name)."""
        if file.manual:
            if not (folder / file.path).exists():
                where = folder / file.path
                raise DownloadError(
                    f"{where}: placed by hand, not downloaded; get it from {file.url} (see {file.cite})"
                )
            with self.lock:
                tally.present += 1
            return
        bar = self.bars.file(file.path, file.size) if self.bars is not None else nullcontext()
        with bar as on_bar:
            result = fetch_file(
                file,
                folder,
                mirrors=self.mirrors,
                progress=self._on_bytes(tally.name, file.path, on_bar),
                retries=self.retries,
                timeout=self.timeout,
                sleep=self.sleep,
            )
        with self.lock:
            if result.status == "present":
                tally.present += 1
            else:
                tally.fetched += 1
            tally.bytes += result.fetched
        if file.extract:
            extract_archive(result.path, _extract_dir(file, folder))

    def _on_bytes(self, name: str, path: str, on_bar: OnBytes | None) -> OnBytes | None:
        """The bar's callback and the log's, as one."""
        log_to = self.log_to
        if log_to is None:
            return on_bar

        def on_bytes(done: int, total: int | None) -> None:
            if on_bar is not None:
                on_bar(done, total)
            log_to.file_progress(name, path, done, total)

        return on_bytes

    def hub(self, hub: HubFiles, folder: Path, tally: _Tally) -> None:
        """Fetch one hub repository (its patterns)."""
        fetch_hub(hub, folder, token=self.token)
        with self.lock:
            tally.fetched += 1

    def web(self, source: DatasetSource, folder: Path, tally: _Tally) -> None:
        """The URL list first (a catalogue file or a hub repo), then img2dataset on it."""
        web = source.web
        assert web is not None
        if isinstance(web.urls, RemoteFile):
            self.file(web.urls, folder, tally)
        else:
            self.hub(web.urls, folder, tally)
        try:
            from microvlm_datasets.download.web import fetch_web
        except ImportError as exc:  # pragma: no cover - web.py ships with this package
            raise DownloadError(
                f"{source.name}: web images need microvlm_datasets.download.web ({exc})"
            ) from exc
        log_to = self.log_to
        kw: dict[str, Any] = {} if log_to is None else {"on_stats": partial(log_to.web_stats, source.name)}
        result = fetch_web(web, folder, retry_failed=self.retry_failed, mirrors=self.mirrors, **kw)
        with self.lock:
            tally.web = result


class _Bars:
    """A rich Progress: one overall bar (bytes of the catalogue's known sizes), one per file in flight."""

    def __init__(self, progress: Any, total: int) -> None:
        self._progress = progress
        self._overall = progress.add_task("all files", total=total or None)
        self._lock = threading.Lock()

    @contextmanager
    def file(self, name: str, size: int | None) -> Iterator[Callable[[int, int | None], None]]:
        task = self._progress.add_task(name, total=size)
        last = 0

        def on_bytes(done: int, total: int | None) -> None:
            nonlocal last
            with self._lock:
                self._progress.update(task, completed=done, total=total)
                self._progress.advance(self._overall, max(done - last, 0))
                last = done

        try:
            yield on_bytes
        finally:
            self._progress.remove_task(task)


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[_Bars | None]:
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as progress:
        yield _Bars(progress, total)


__all__ = ["SourceSummary", "disk_check", "download", "needed_bytes"]
