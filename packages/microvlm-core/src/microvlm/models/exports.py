"""Exports: a trained model written by an exporter plugin into a self-contained folder, and read back.

``microvlm export`` (and :func:`export_model`) hands the model and a fresh temporary folder to
the exporter (:class:`microvlm.contracts.quant.Exporter`), then writes ``manifest.json`` and
renames the folder into place, so an interrupted export never leaves a half-written folder::

    exported_models/int8/
      manifest.json      format, exporter, tensor groups (parameters, bytes, bits per weight),
                         notes, every file's size and sha256, the source checkpoint and its
                         hash, the package versions that wrote it
      ...                whatever the exporter wrote (weights, model.toml, llm/, ...)

Loading (:func:`load_export`, reached through ``MicroVLM.from_pretrained`` and every
``--checkpoint`` option) treats the folder as untrusted: the manifest must be well formed, may
name only files inside the folder, and every file must have the recorded size and hash before
the exporter named in it is asked to load it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from microvlm.errors import MicroVLMError
from microvlm.io.layout import (
    MANIFEST,
    META,
    WEIGHTS,
    CheckpointError,
    atomic_directory,
    file_digest,
    first_line,
    load_meta,
)

if TYPE_CHECKING:
    from microvlm.contracts.quant import ExportReport
    from microvlm.plugins.manager import Plugins

logger = logging.getLogger(__name__)

FORMAT = "microvlm-export"  # manifest "format"
FORMAT_VERSION = 1


def _files(directory: Path) -> dict[str, dict[str, Any]]:
    """Every regular file under ``directory`` (POSIX relative path -> size and sha256)."""
    found = {}
    for path in sorted(directory.rglob("*")):
        if path.is_symlink():
            raise MicroVLMError(f"{path}: an export may not contain links")
        if path.is_file():
            found[path.relative_to(directory).as_posix()] = {
                "bytes": path.stat().st_size,
                "sha256": file_digest(path),
            }
    return found


def check_target(target: Path, overwrite: bool) -> None:
    """Refuse an existing output folder unless ``overwrite``, and never replace a folder that is
    not a previous export (a typo must not delete someone's data)."""
    if not target.exists():
        return
    if not target.is_dir():
        raise MicroVLMError(f"{target}: exists and is not a folder; choose another output folder")
    if not any(target.iterdir()):
        return
    if not overwrite:
        raise MicroVLMError(
            f"{target}: already exists; pass --overwrite to replace it, or choose another folder"
        )
    if not (target / MANIFEST).is_file():
        raise MicroVLMError(
            f"{target}: not replaced even with --overwrite: it is not an export (no {MANIFEST}); "
            "choose a new or empty folder"
        )


def export_model(
    model: Any,
    target: str | Path,
    format: str,
    plugins: Plugins,
    *,
    source: str | Path | None = None,
    config: Any = None,
    overwrite: bool = False,
) -> Path:
    """Export ``model`` with the exporter plugin ``format`` into ``target``; returns ``target``.

    :param source: the checkpoint the model was loaded from, recorded with its weights' hash.
    :param config: the exporter's config object (its defaults when ``None``).
    """
    target = Path(target)
    component = plugins.get("exporter", format)
    exporter = plugins.build("exporter", format, config)
    check_target(target, overwrite)
    started = time.perf_counter()
    with atomic_directory(target) as tmp:
        report = exporter.export(model, tmp)
        if (tmp / MANIFEST).exists():
            raise MicroVLMError(
                f"exporter {format!r} ({component.distribution}) wrote {MANIFEST}, which is core's"
            )
        files = _files(tmp)
        manifest = _manifest(report, format, component.distribution, files, plugins, source)
        manifest["seconds"] = round(time.perf_counter() - started, 1)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    logger.info(
        "exported %s (%s, %.1f MiB) in %.0f s", target, format, manifest["bytes"] / 2**20, manifest["seconds"]
    )
    return target


def _manifest(
    report: ExportReport,
    format: str,
    distribution: str,
    files: dict[str, dict[str, Any]],
    plugins: Plugins,
    source: str | Path | None,
) -> dict[str, Any]:
    groups = [
        {
            "name": g.name,
            "parameters": g.parameters,
            "bytes": g.bytes,
            "bits_per_weight": round(g.bits_per_weight, 4),
            "storage": g.storage,
        }
        for g in report.groups
    ]
    record: dict[str, Any] = {"path": str(source)} if source is not None else {}
    weights = Path(source) / WEIGHTS if source is not None else None
    if weights is not None and weights.is_file():
        record["weights_sha256"] = file_digest(weights)
    if source is not None and (Path(source) / META).is_file():
        recipe = load_meta(Path(source)).get("recipe")
        if isinstance(recipe, str) and recipe:
            record["recipe"] = recipe  # what `microvlm eval --checkpoint EXPORT` evaluates on
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "exporter": format,
        "exporter_distribution": distribution,
        "groups": groups,
        "notes": list(report.notes),
        "bytes": sum(f["bytes"] for f in files.values()),
        "files": files,
        "source": record,
        "packages": plugins.distributions(),
    }


def read_manifest(directory: Path) -> dict[str, Any]:
    """``manifest.json`` checked for what loading relies on; :class:`CheckpointError` naming it."""
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({first_line(exc)})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a microvlm export manifest (format must be {FORMAT!r})")
    version = manifest.get("format_version")
    if type(version) is not int or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: export format version {version!r}; this microvlm-core reads up to {FORMAT_VERSION} "
            "(upgrade microvlm-core)"
        )
    if not isinstance(manifest.get("exporter"), str) or not manifest["exporter"]:
        raise CheckpointError(f"{path}: 'exporter' must name the exporter plugin that wrote it")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise CheckpointError(f"{path}: 'files' must list the export's files with their sizes and hashes")
    for name, entry in files.items():
        _check_entry(path, name, entry)
    return manifest


def _check_entry(manifest: Path, name: Any, entry: Any) -> None:
    rel = PurePosixPath(name) if isinstance(name, str) else None
    if rel is None or rel.is_absolute() or ".." in rel.parts or not rel.parts or "\\" in name:
        raise CheckpointError(f"{manifest}: file {name!r} is outside the export folder; refused")
    good = (
        isinstance(entry, dict) and type(entry.get("bytes")) is int and isinstance(entry.get("sha256"), str)
    )
    if not good:
        raise CheckpointError(f"{manifest}: the entry of {name} needs 'bytes' (an integer) and 'sha256'")


def verify_files(directory: Path, manifest: Mapping[str, Any]) -> None:
    """Every file the manifest lists is a regular file inside ``directory`` with its size and hash."""
    root = directory.resolve()
    for name, entry in manifest["files"].items():
        path = directory / name
        if path.is_symlink() or not path.resolve().is_relative_to(root):
            raise CheckpointError(f"{path}: a link, or outside the export folder; refused")
        if not path.is_file():
            raise CheckpointError(f"{path}: missing (listed in {MANIFEST}); the export is incomplete")
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise CheckpointError(
                f"{path}: {size} bytes, {MANIFEST} says {entry['bytes']}; the file is damaged or was changed"
            )
        if file_digest(path) != entry["sha256"]:
            raise CheckpointError(
                f"{path}: its sha256 does not match {MANIFEST}; the file is damaged or was changed"
            )


def is_export(directory: str | Path) -> bool:
    return (Path(directory) / MANIFEST).is_file()


def training_recipe(directory: str | Path) -> Any:
    """The recipe the export's source checkpoint was trained with, as the manifest records it
    (``None`` when it does not); a checkpoint's ``trainer.json`` says it for a checkpoint."""
    manifest = read_manifest(Path(directory))
    source = manifest.get("source")
    return source.get("recipe") if isinstance(source, dict) else None


def load_export(directory: str | Path, plugins: Plugins, options: Mapping[str, Any] | None = None) -> Any:
    """The runnable model of an export folder, after its files are verified against the manifest."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    verify_files(directory, manifest)
    exporter = plugins.build("exporter", manifest["exporter"])
    model = exporter.load(directory, plugins=plugins, options=dict(options or {}))
    return model.eval()


__all__ = [
    "FORMAT",
    "check_target",
    "export_model",
    "is_export",
    "load_export",
    "read_manifest",
    "verify_files",
]
