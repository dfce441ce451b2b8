"""Fake installed distributions for tests: a ``.dist-info`` folder and plugin modules in a folder.

Put the folder on ``sys.path`` (``monkeypatch.syspath_prepend``) or on ``PYTHONPATH`` of a
subprocess, and :mod:`importlib.metadata` finds the distribution and its ``microvlm`` entry
points exactly as it finds a pip-installed one::

    site = write_distribution(tmp_path, "aaa-evil", {"encoders": "aaa_evil"}, {"aaa_evil": "..."})
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path

from microvlm.plugins.manager import ENTRY_POINT_GROUP


def write_distribution(
    site: Path,
    name: str,
    entry_points: Mapping[str, str],
    modules: Mapping[str, str] | None = None,
    *,
    version: str = "1.0",
) -> Path:
    """Write distribution ``name`` (entry point name -> ``module[:attr]``) and its modules into ``site``.

    :param modules: module name -> source text, written as ``site/<module>.py``.
    :returns: ``site``, for ``sys.path`` or ``PYTHONPATH``.
    """
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = [f"[{ENTRY_POINT_GROUP}]", *(f"{ep} = {value}" for ep, value in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for module, source in (modules or {}).items():
        (site / f"{module}.py").write_text(source)
    importlib.invalidate_caches()  # importlib.metadata caches folder listings too
    return site
