"""A download killed with SIGKILL mid-file, then the same command again: it resumes the part file
with Range and does not fetch the finished file again."""

from __future__ import annotations

import hashlib
import json
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

#: tests/servers.py, run by path (the suite uses --import-mode=importlib, so test modules cannot import it)
servers = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("servers.py"))))

SCRIPT = """
import json, sys
from pathlib import Path
from microvlm_datasets.download.engine import download
from microvlm_datasets.download.sources import DatasetSource, RemoteFile

spec = json.loads(sys.argv[1])
files = tuple(RemoteFile(**f) for f in spec["files"])
source = DatasetSource(name="blobs", datasets=(), folder="blobs", description="d", licence="l", files=files)
(summary,) = download([source], Path(spec["root"]), jobs=2, mirrors=spec["mirrors"], progress=False)
print(json.dumps({"status": summary.status, "errors": summary.errors, "fetched": summary.fetched}))
sys.exit(0 if summary.status == "complete" else 1)
"""


def wait_for(condition, what: str, limit_s: float = 60.0) -> None:
    """Poll until ``condition()``; the limit only stops a broken run from hanging the suite."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_kill_9_mid_download_then_the_same_command_completes(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    big = hashlib.sha256(b"seed").digest() * 40_000  # 1.28 MB
    small = b"a small finished file\n"
    (served / "big.bin").write_bytes(big)
    (served / "small.bin").write_bytes(small)
    root = tmp_path / "data"
    part = root / "blobs" / "big.bin.part"
    with servers.file_server(served, stall={"big.bin": 300_000}) as server:
        spec = {
            "root": str(root),
            "mirrors": {"http://data.example.org": server.base},
            "files": [
                {
                    "url": f"http://data.example.org/{name}",
                    "path": name,
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "cite": "https://example.org",
                }
                for name, data in (("big.bin", big), ("small.bin", small))
            ],
        }
        command = [sys.executable, "-c", SCRIPT, json.dumps(spec)]
        first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: part.is_file() and part.stat().st_size > 0, "the part file to have bytes")
            wait_for((root / "blobs" / "small.bin").is_file, "the small file to finish")
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.communicate()
        assert first.returncode == -signal.SIGKILL
        kept = part.stat().st_size
        assert 0 < kept < len(big) and not (root / "blobs" / "big.bin").exists()

        second = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stdout + second.stderr
        assert json.loads(second.stdout.strip().splitlines()[-1])["fetched"] == 1
        assert server.requests["small.bin"] == 1  # finished before the kill: not fetched again
        assert ("big.bin", f"bytes={kept}-") in server.ranges  # resumed, not restarted
    assert (root / "blobs" / "big.bin").read_bytes() == big and not part.exists()
