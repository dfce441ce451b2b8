"""One HTTP(S) file: resumed with ``Range``, verified, renamed into place atomically.

A file is fetched into ``<path>.part``; a later run sends ``Range: bytes=<part size>-`` and
appends when the server answers ``206 Partial Content`` with the matching ``Content-Range``,
or starts again from zero when it answers ``200`` (a server that ignores ``Range``, RFC 9110
§14.2: "a server MAY ignore the Range header field"). Only a part file whose size and checksum
match the catalogue is renamed to its final name, so a file under its final name is a verified
one and a rerun does not fetch it again. 5xx answers, 429, timeouts and cut connections are
retried with exponential backoff (the sleep is injectable so tests do not wait); a 404 or 410 is
a clear failure naming the URL and where the catalogue got it (``cite``).

References: RFC 9110 §14 (range requests: ``Range``, ``Content-Range``, 206, 416),
https://www.rfc-editor.org/rfc/rfc9110#name-range-requests; the standard library's
``urllib.request`` (https://docs.python.org/3/library/urllib.request.html).
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Literal

import attrs

from microvlm.errors import MicroVLMError
from microvlm.io.layout import file_digest
from microvlm_datasets.download.sources import RemoteFile

log = logging.getLogger(__name__)

#: ``on_bytes(done, total)``: bytes of the file on disk so far and its total (``None`` unknown).
OnBytes = Callable[[int, "int | None"], None]

USER_AGENT = "microvlm-datasets (https://github.com/; issue 17 downloader)"
CHUNK = 1 << 16  # bytes read per call
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(MicroVLMError):
    """A download that cannot complete; the message names the URL and what to do."""


@attrs.frozen
class FetchResult:
    """What :func:`fetch_file` did for one file."""

    path: Path  # the verified file under its final name
    url: str  # the URL fetched (after the mirrors)
    status: Literal["downloaded", "resumed", "present"]  # "present": already there, nothing sent
    fetched: int  # bytes received in this call
    requests: int  # HTTP requests made in this call


def apply_mirrors(url: str, mirrors: Mapping[str, str]) -> str:
    """Replace the longest matching URL prefix: ``{"http://images.cocodataset.org": "http://127.0.0.1:8765/coco"}``."""
    for prefix in sorted(mirrors, key=len, reverse=True):
        if url.startswith(prefix):
            return mirrors[prefix] + url[len(prefix) :]
    return url


def destination(folder: Path, relative: str) -> Path:
    """``folder / relative``, refusing absolute paths and ``..`` (a catalogue entry cannot write outside)."""
    rel = PurePosixPath(relative)
    if not relative or rel.is_absolute() or ".." in rel.parts or "\\" in relative:
        raise DownloadError(f"catalogue path {relative!r} must be a relative path without '..'")
    return folder.joinpath(*rel.parts)


def _expected_digests(file: RemoteFile) -> list[tuple[str, str]]:
    return [(name, value.lower()) for name, value in (("sha256", file.sha256), ("md5", file.md5)) if value]


def fetch_file(
    file: RemoteFile,
    folder: Path,
    *,
    mirrors: Mapping[str, str] | None = None,
    progress: OnBytes | None = None,
    retries: int = 5,
    timeout: float = 30.0,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> FetchResult:
    """Fetch ``file`` to ``folder / file.path``, resuming a ``.part`` file, verified before the rename.

    :param mirrors: URL prefix -> replacement prefix (how tests point the catalogue at 127.0.0.1).
    :param progress: called as ``progress(done, total)`` while bytes arrive.
    :param retries: attempts after the first that made no progress before giving up.
    :param timeout: seconds to wait for a connection or for the next bytes.
    :param backoff: first retry delay in seconds, doubled each failed attempt (capped at 60 s).
    :param sleep: how to wait between attempts (tests pass a no-op).
    :returns: a :class:`FetchResult`; status ``"present"`` when the final file already exists
        with the catalogue's size (it was verified before its rename), and no request is sent.
    :raises DownloadError: 404/410 and other client errors, a size or checksum mismatch (the part
        file is deleted), or the retries exhausted.
    """
    dest = destination(folder, file.path)
    url = apply_mirrors(file.url, mirrors or {})
    if dest.is_file() and (file.size is None or dest.stat().st_size == file.size):
        log.debug("%s is present, not fetched again", dest)
        return FetchResult(dest, url, "present", 0, 0)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    resumed_from = part.stat().st_size if part.is_file() else 0
    state = _Transfer(url=url, part=part, expected=file.size, timeout=timeout, progress=progress)
    failures = 0
    while True:
        before = state.on_disk()
        try:
            if state.attempt(cite=file.cite):
                break
            error: str = "the connection closed before the end of the file"
        except _Retryable as exc:
            error = str(exc)
        made_progress = state.on_disk() > before
        failures = 0 if made_progress else failures + 1
        if failures > retries:
            raise DownloadError(f"{url}: gave up after {retries + 1} attempts without progress: {error}")
        delay = min(backoff * 2 ** max(failures - 1, 0), 60.0)
        log.info("%s: %s; retrying in %.1f s", url, error, delay)
        sleep(delay)
    _verify(file, url, part)
    os.replace(part, dest)
    status: Literal["downloaded", "resumed"] = "resumed" if resumed_from and state.resumed else "downloaded"
    return FetchResult(dest, url, status, state.fetched, state.requests)


class _Retryable(Exception):
    """A transient failure: a 5xx or 429 answer, a timeout, a cut connection."""


@attrs.define
class _Transfer:
    """The state of one file's transfer across attempts."""

    url: str
    part: Path
    expected: int | None  # bytes, from the catalogue
    timeout: float
    progress: OnBytes | None
    fetched: int = 0  # bytes received, all attempts
    requests: int = 0
    resumed: bool = False  # some attempt appended to an existing part file (a 206)

    def on_disk(self) -> int:
        return self.part.stat().st_size if self.part.is_file() else 0

    def attempt(self, *, cite: str) -> bool:
        """One request; True when the part file holds the whole body."""
        offset = self.on_disk()
        if self.expected is not None and offset > self.expected:
            self.part.unlink()
            offset = 0
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        request = urllib.request.Request(self.url, headers=headers)
        self.requests += 1
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            return self._http_error(exc, offset, cite)
        except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
            raise _Retryable(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}") from exc
        with response:
            total, mode = self._plan(response, offset)
            return self._copy(response, mode, total)

    def _http_error(self, exc: urllib.error.HTTPError, offset: int, cite: str) -> bool:
        exc.close()
        if exc.code == 416 and offset:
            # Range Not Satisfiable: the part file is already whole (or the file changed).
            if self.expected is not None and offset == self.expected:
                return True
            self.part.unlink()
            raise _Retryable("416 for the part file's range; starting again from zero")
        if exc.code in _RETRY_STATUS:
            raise _Retryable(f"HTTP {exc.code} {exc.reason}")
        if exc.code in (404, 410):
            raise DownloadError(
                f"{self.url}: HTTP {exc.code} {exc.reason} - the file has moved or been withdrawn; "
                f"the catalogue took this URL from {cite}"
            )
        raise DownloadError(
            f"{self.url}: HTTP {exc.code} {exc.reason} (the catalogue took this URL from {cite})"
        )

    def _plan(self, response: http.client.HTTPResponse, offset: int) -> tuple[int | None, str]:
        """(total size, "ab" to append or "wb" to start again) from a 200 or 206 answer."""
        length = response.headers.get("Content-Length")
        if response.status == 206 and offset:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if match is None or int(match.group(1)) != offset:
                raise _Retryable(
                    f"a 206 answer for the wrong range ({response.headers.get('Content-Range')})"
                )
            self.resumed = True
            total = None if match.group(3) == "*" else int(match.group(3))
            return total, "ab"
        if offset:
            log.info(
                "%s: the server ignored Range (status %s); starting again from zero",
                self.url,
                response.status,
            )
        return (int(length) if length is not None else None), "wb"

    def _copy(self, response: http.client.HTTPResponse, mode: str, total: int | None) -> bool:
        total = total if total is not None else self.expected
        try:
            with self.part.open(mode) as handle:
                done = handle.tell()
                while block := response.read(CHUNK):
                    handle.write(block)
                    done += len(block)
                    self.fetched += len(block)
                    if self.progress is not None:
                        self.progress(done, total)
                handle.flush()
                os.fsync(handle.fileno())
        except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
            raise _Retryable(f"{type(exc).__name__} after {self.on_disk()} bytes") from exc
        return total is None or self.on_disk() >= total


def _verify(file: RemoteFile, url: str, part: Path) -> None:
    """Size, then checksums; a mismatch deletes the part file (a resume would keep the bad bytes)."""
    size = part.stat().st_size
    if file.size is not None and size != file.size:
        part.unlink()
        raise DownloadError(f"{url}: expected {file.size} bytes, got {size}; the partial file was deleted")
    for algorithm, expected in _expected_digests(file):
        got = file_digest(part, algorithm)
        if got != expected:
            part.unlink()
            raise DownloadError(
                f"{url}: {algorithm} mismatch: expected {expected}, got {got}; the file was deleted "
                f"(the checksum comes from {file.cite})"
            )


__all__ = [
    "DownloadError",
    "FetchResult",
    "OnBytes",
    "apply_mirrors",
    "destination",
    "fetch_file",
]
