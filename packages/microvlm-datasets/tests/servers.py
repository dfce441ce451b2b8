"""Local servers on 127.0.0.1 for the download tests: a file server with Range and failure knobs,
and a fake Hugging Face hub good enough for ``huggingface_hub.snapshot_download``.

Tests load this module by path (the suite runs with ``--import-mode=importlib``)::

    servers = load_servers()  # see test_download_http.py

:class:`FileServer` serves a folder (``server.url("a/b.zip")``) and counts requests per path.
Knobs, each keyed by the URL path relative to the folder (``"a/b.zip"``):

- ``missing``: answer 404;
- ``cut``: ``{path: n}`` sends the headers of the whole file, then ``n`` body bytes, then
  closes the connection, on the first request for that path only;
- ``corrupt``: serve the file with its bytes changed (same size: a checksum mismatch);
- ``slow``: ``{path: seconds}`` waits that long after the headers before the body;
- ``flaky``: ``{path: n}`` answers 503 to the first ``n`` requests;
- ``ignore_range``: always answers 200 with the whole file;
- ``stall``: ``{path: n}`` sends ``n`` body bytes on the first request, then holds the
  connection open until the server stops (a transfer in flight, for the kill -9 test).

:class:`FakeHub` implements the endpoints ``snapshot_download`` calls in huggingface_hub 2.x
(read from the installed source, ``_snapshot_download.py``, ``hf_api.py`` and
``file_download.py``): ``GET /api/{type}s/{repo}/revision/{rev}`` (``repo_info``: the commit
``sha``), ``GET /api/{type}s/{repo}/tree/{rev}?recursive=...`` (``list_repo_tree``: ``type``,
``path``, ``size``, ``oid``) and ``HEAD``/``GET /{datasets/}{repo}/resolve/{rev}/{file}``
(``X-Repo-Commit``, ``ETag``, ``Content-Length``). A gated repo answers 401 with
``X-Error-Code: GatedRepo`` to requests without the expected token, as the hub does.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import attrs


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[_Server, int]:
    """A threaded server on a free port of 127.0.0.1, serving from a daemon thread."""
    httpd = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    return httpd, httpd.server_address[1]


def _shutdown(httpd: _Server | None) -> None:
    if httpd is not None:
        httpd.shutdown()
        httpd.server_close()


@attrs.define
class FileServer:
    """A folder served over HTTP on 127.0.0.1 with Range support and failure knobs."""

    root: Path
    missing: set[str] = attrs.Factory(set)
    cut: dict[str, int] = attrs.Factory(dict)
    corrupt: set[str] = attrs.Factory(set)
    slow: dict[str, float] = attrs.Factory(dict)
    flaky: dict[str, int] = attrs.Factory(dict)
    ignore_range: set[str] = attrs.Factory(set)
    stall: dict[str, int] = attrs.Factory(dict)
    stall_all: bool = False  # stall the retries too (sending nothing more) until this is turned off
    requests: Counter[str] = attrs.Factory(Counter)  # GETs per path
    ranges: list[tuple[str, str | None]] = attrs.Factory(list)  # (path, Range header) per GET
    port: int = 0
    _lock: threading.Lock = attrs.Factory(threading.Lock)
    _stopping: threading.Event = attrs.Factory(threading.Event)
    _httpd: _Server | None = None

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
                with server._lock:
                    server.requests[path] += 1
                    count = server.requests[path]
                    server.ranges.append((path, self.headers.get("Range")))
                file = server.root / path
                if path in server.missing or ".." in Path(path).parts or not file.is_file():
                    return self._status(404)
                if count <= server.flaky.get(path, 0):
                    return self._status(503)
                data = file.read_bytes()
                if path in server.corrupt:
                    data = bytes(b ^ 0xFF for b in data)
                start, status = self._range(len(data), path)
                if start is None:
                    return self._status(416, {"Content-Range": f"bytes */{len(data)}"})
                body = data[start:]
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if path in server.slow:
                    time.sleep(server.slow[path])
                if path in server.stall and (count == 1 or server.stall_all):
                    self.wfile.write(body[: server.stall[path]] if count == 1 else b"")
                    self.wfile.flush()
                    server._stopping.wait(60)
                    self.close_connection = True
                    return
                if path in server.cut and count == 1:
                    self.wfile.write(body[: server.cut[path]])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def _range(self, size: int, path: str) -> tuple[int | None, int]:
                header = self.headers.get("Range")
                if not header or path in server.ignore_range:
                    return 0, 200
                start = int(header.removeprefix("bytes=").split("-")[0])
                return (start, 206) if start < size else (None, 416)

            def _status(self, code: int, headers: Mapping[str, str] | None = None) -> None:
                self.send_response(code)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler

    def start(self) -> FileServer:
        self._httpd, self.port = _serve(self._handler())
        return self

    def stop(self) -> None:
        self._stopping.set()
        _shutdown(self._httpd)


@contextmanager
def file_server(root: Path, **knobs: Any) -> Iterator[FileServer]:
    """``with file_server(folder, missing={"x"}) as server: ...`` (stopped on exit)."""
    server = FileServer(root, **knobs).start()
    try:
        yield server
    finally:
        server.stop()


@attrs.frozen
class HubRepo:
    """One repository on the fake hub."""

    files: Mapping[str, bytes]  # path in the repo -> content
    gated: bool = False  # 401 unless the request carries ``token``
    token: str = "hf_test_token"  # the token that opens a gated repo

    @property
    def sha(self) -> str:
        digest = hashlib.sha1()
        for path in sorted(self.files):
            digest.update(path.encode() + b"\0" + self.files[path])
        return digest.hexdigest()


@attrs.define
class FakeHub:
    """``repos``: ``("dataset", "user/name")`` -> :class:`HubRepo`; point ``HF_ENDPOINT`` at :attr:`base`."""

    repos: dict[tuple[str, str], HubRepo]
    requests: list[tuple[str, str]] = attrs.Factory(list)  # (method, path)
    port: int = 0
    _httpd: _Server | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self._answer(head=True)

            def do_GET(self) -> None:
                self._answer(head=False)

            def _answer(self, *, head: bool) -> None:
                split = urllib.parse.urlsplit(self.path)
                path = urllib.parse.unquote(split.path)
                hub.requests.append((self.command, path))
                found = self._route(path)
                if found is None:
                    return self._send(404, b'{"error": "not found"}', {"X-Error-Code": "RepoNotFound"}, head)
                repo, kind, rest = found
                if repo.gated and self.headers.get("Authorization") != f"Bearer {repo.token}":
                    headers = {
                        "X-Error-Code": "GatedRepo",
                        "X-Error-Message": "Access to this repo is restricted.",
                    }
                    return self._send(401, b'{"error": "gated"}', headers, head)
                if kind == "revision":
                    body = {
                        "id": "",
                        "sha": repo.sha,
                        "siblings": [{"rfilename": p} for p in sorted(repo.files)],
                    }
                    return self._send(
                        200, json.dumps(body).encode(), {"Content-Type": "application/json"}, head
                    )
                if kind == "tree":
                    entries = [
                        {"type": "file", "path": p, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                        for p, data in sorted(repo.files.items())
                    ]
                    return self._send(
                        200, json.dumps(entries).encode(), {"Content-Type": "application/json"}, head
                    )
                data = repo.files.get(rest)
                if data is None:
                    return self._send(404, b"", {"X-Error-Code": "EntryNotFound"}, head)
                etag = f'"{hashlib.sha1(data).hexdigest()}"'
                return self._send(200, data, {"X-Repo-Commit": repo.sha, "ETag": etag}, head)

            def _route(self, path: str) -> tuple[HubRepo, str, str] | None:
                """(repo, "revision" | "tree" | "resolve", file) for a hub URL path."""
                for (repo_type, repo_id), repo in hub.repos.items():
                    api = f"/api/{repo_type}s/{repo_id}/"
                    if path.startswith(api + "revision/"):
                        return repo, "revision", ""
                    if path.startswith(api + "tree/"):
                        return repo, "tree", ""
                    prefix = "" if repo_type == "model" else f"/{repo_type}s"
                    resolve = f"{prefix}/{repo_id}/resolve/"
                    if path.startswith(resolve):
                        _revision, _, file = path[len(resolve) :].partition("/")
                        return repo, "resolve", file
                return None

            def _send(self, code: int, body: bytes, headers: Mapping[str, str], head: bool) -> None:
                self.send_response(code)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

        return Handler

    def start(self) -> FakeHub:
        self._httpd, self.port = _serve(self._handler())
        return self

    def stop(self) -> None:
        _shutdown(self._httpd)


@contextmanager
def fake_hub(repos: dict[tuple[str, str], HubRepo]) -> Iterator[FakeHub]:
    """``with fake_hub({("dataset", "u/r"): HubRepo({...})}) as hub: ...`` (stopped on exit)."""
    hub = FakeHub(repos).start()
    try:
        yield hub
    finally:
        hub.stop()


__all__ = ["FakeHub", "FileServer", "HubRepo", "fake_hub", "file_server"]
