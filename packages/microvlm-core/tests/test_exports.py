"""Core's side of exports (#16 item 7): the manifest, hashes, atomic writes, refusals at load.

The exporter here is a fixture that writes two files and loads them back; the real formats
(microvlm-quant's fp16 / int8 / bitnet158) have their own tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest

from microvlm import hookimpl, load_plugins
from microvlm.contracts.quant import ExportReport, TensorGroup
from microvlm.errors import MicroVLMError
from microvlm.io.layout import MANIFEST, CheckpointError, resolve_checkpoint
from microvlm.models.exports import export_model, load_export, read_manifest


@attrs.frozen
class BytesConfig:
    fail: bool = False  # raise halfway through writing


class Loaded:
    def __init__(self, weights: bytes) -> None:
        self.weights = weights
        self.evaluated = False

    def eval(self) -> Loaded:
        self.evaluated = True
        return self


class BytesExporter:
    """Writes the model's bytes to weights.bin (and a nested file); loads them back."""

    def __init__(self, config: BytesConfig) -> None:
        self.config = config

    def export(self, model: Any, directory: Path) -> ExportReport:
        (directory / "weights.bin").write_bytes(model)
        if self.config.fail:
            raise RuntimeError("exporter crashed")
        (directory / "sub").mkdir()
        (directory / "sub" / "config.json").write_text("{}")
        return self.estimate(model)

    def estimate(self, model: Any) -> ExportReport:
        return ExportReport((TensorGroup("all", len(model) * 4, len(model), "2 bits"),), ("a note",))

    def load(self, directory: Path, *, plugins: Any, options: Any = None) -> Loaded:
        return Loaded((directory / "weights.bin").read_bytes())


class Plugin:
    @hookimpl
    def register_exporters(self, register: Any) -> None:
        register("bytes", BytesExporter, BytesConfig, description="fixture")


@pytest.fixture
def plugins() -> Any:
    return load_plugins(entry_points=False, extra=[("fixture", Plugin())])


def test_export_writes_the_manifest_and_loads_back(plugins: Any, tmp_path: Path) -> None:
    source = tmp_path / "ckpt"
    source.mkdir()
    (source / "model.safetensors").write_bytes(b"source weights")
    target = export_model(b"\x01\x02\x03\x04", tmp_path / "out", "bytes", plugins, source=source)
    manifest = read_manifest(target)
    assert manifest["exporter"] == "bytes" and manifest["notes"] == ["a note"]
    assert manifest["groups"] == [
        {"name": "all", "parameters": 16, "bytes": 4, "bits_per_weight": 2.0, "storage": "2 bits"}
    ]
    assert set(manifest["files"]) == {"weights.bin", "sub/config.json"}
    assert manifest["files"]["weights.bin"]["bytes"] == 4
    assert manifest["source"]["path"] == str(source) and len(manifest["source"]["weights_sha256"]) == 64
    assert resolve_checkpoint(target) == target  # an export is a --checkpoint like any other
    loaded = load_export(target, plugins)
    assert loaded.weights == b"\x01\x02\x03\x04" and loaded.evaluated


def test_an_existing_folder_is_kept_unless_overwrite(plugins: Any, tmp_path: Path) -> None:
    target = export_model(b"old", tmp_path / "out", "bytes", plugins)
    with pytest.raises(MicroVLMError, match="already exists; pass --overwrite"):
        export_model(b"new", target, "bytes", plugins)
    export_model(b"new", target, "bytes", plugins, overwrite=True)
    assert load_export(target, plugins).weights == b"new"
    data = tmp_path / "data"
    data.mkdir()
    (data / "precious.txt").write_text("not an export")
    with pytest.raises(MicroVLMError, match="not an export"):
        export_model(b"x", data, "bytes", plugins, overwrite=True)
    assert (data / "precious.txt").read_text() == "not an export"


def test_an_interrupted_export_leaves_nothing_half_written(plugins: Any, tmp_path: Path) -> None:
    target = export_model(b"good", tmp_path / "out", "bytes", plugins)
    with pytest.raises(RuntimeError, match="exporter crashed"):
        export_model(b"bad", target, "bytes", plugins, config=BytesConfig(fail=True), overwrite=True)
    assert load_export(target, plugins).weights == b"good"  # the previous export is intact
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left
    with pytest.raises(RuntimeError):
        export_model(b"bad", tmp_path / "new", "bytes", plugins, config=BytesConfig(fail=True))
    assert not (tmp_path / "new").exists()


def test_a_changed_file_is_refused_naming_it(plugins: Any, tmp_path: Path) -> None:
    target = export_model(b"abcd", tmp_path / "out", "bytes", plugins)
    (target / "weights.bin").write_bytes(b"abce")  # same size, other bytes
    with pytest.raises(CheckpointError, match=r"weights\.bin: its sha256 does not match"):
        load_export(target, plugins)
    (target / "weights.bin").write_bytes(b"ab")
    with pytest.raises(CheckpointError, match=r"weights\.bin: 2 bytes, manifest.json says 4"):
        load_export(target, plugins)
    (target / "weights.bin").unlink()
    with pytest.raises(CheckpointError, match=r"weights\.bin: missing"):
        load_export(target, plugins)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda m: m.update(files={"../outside.bin": {"bytes": 1, "sha256": "0" * 64}}),
            "outside the export",
        ),
        (lambda m: m.update(files={"/etc/passwd": {"bytes": 1, "sha256": "0" * 64}}), "outside the export"),
        (lambda m: m.update(files={"weights.bin": {"bytes": "4", "sha256": 1}}), "needs 'bytes'"),
        (lambda m: m.update(format="something else"), "not a microvlm export manifest"),
        (lambda m: m.update(format_version=99), "upgrade microvlm-core"),
        (lambda m: m.update(exporter=""), "'exporter' must name"),
        (lambda m: m.update(exporter="nonesuch"), "unknown exporter 'nonesuch'"),
    ],
)
def test_a_hostile_manifest_is_refused(plugins: Any, tmp_path: Path, edit: Any, message: str) -> None:
    target = export_model(b"abcd", tmp_path / "out", "bytes", plugins)
    manifest = json.loads((target / MANIFEST).read_text())
    edit(manifest)
    (target / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(MicroVLMError, match=message):
        load_export(target, plugins)


def test_a_link_in_the_folder_is_refused(plugins: Any, tmp_path: Path) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"abcd")
    target = export_model(b"abcd", tmp_path / "out", "bytes", plugins)
    (target / "weights.bin").unlink()
    (target / "weights.bin").symlink_to(secret)  # same bytes, same hash, but outside the folder
    with pytest.raises(CheckpointError, match="a link, or outside"):
        load_export(target, plugins)


@pytest.mark.parametrize("text", ["", "not json", "[]", '"a string"'])
def test_a_damaged_manifest_is_a_clear_error(plugins: Any, tmp_path: Path, text: str) -> None:
    target = export_model(b"abcd", tmp_path / "out", "bytes", plugins)
    (target / MANIFEST).write_text(text)
    with pytest.raises(CheckpointError, match=r"manifest\.json"):
        load_export(target, plugins)
