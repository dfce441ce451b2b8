"""Shared fixtures: the plugin registry, a builder factory, tiny images, and one small shapes set."""

from __future__ import annotations

import importlib.util
import io
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

import microvlm
from microvlm.recipes.structure import structure
from microvlm_datasets.shapes import generate


@pytest.fixture(scope="session")
def plugins() -> microvlm.Plugins:
    return microvlm.load_plugins()


@pytest.fixture(scope="session")
def build(plugins: microvlm.Plugins) -> Callable[..., Any]:
    """``build("vqav2", root=..., split=...)``: structure the settings strictly, as a recipe would."""

    def make(name: str, **settings: Any) -> Any:
        component = plugins.get("dataset", name)
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in settings.items()}
        return component.build(structure(settings, component.config_cls))

    return make


def _sibling(name: str) -> ModuleType:
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"_formats_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def formats() -> SimpleNamespace:
    """The real-format rows of ``test_datasets_formats_{captions,vqa,ref_web}.py`` (``formats.vqa.GQA_TESTDEV``),
    loaded by path: the tests run with ``--import-mode=importlib``, so test modules cannot import each other."""
    return SimpleNamespace(
        captions=_sibling("test_datasets_formats_captions"),
        vqa=_sibling("test_datasets_formats_vqa"),
        ref_web=_sibling("test_datasets_formats_ref_web"),
    )


def _jpeg_bytes(size: tuple[int, int] = (8, 6), colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def jpeg_bytes() -> Callable[..., bytes]:
    return _jpeg_bytes


@pytest.fixture(scope="session")
def write_jpeg() -> Callable[..., Path]:
    """``write_jpeg(path, size=(w, h))``: a real (tiny) JPEG file, parents created."""

    def write(path: Path, size: tuple[int, int] = (8, 6)) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_jpeg_bytes(size))
        return path

    return write


@pytest.fixture(scope="session")
def write_json() -> Callable[[Path, Any], Path]:
    def write(path: Path, data: Any) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data), encoding="utf-8")
        return path

    return write


SHAPES_COUNTS = {"train": 12, "val": 4, "test": 4}
SHAPES_SIZE = 64


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small shapes set (12/4/4 images at 64 px, 5 per shard so train has 3 shards), made once."""
    out = tmp_path_factory.mktemp("shapes")
    generate(out, *SHAPES_COUNTS.values(), image_size=SHAPES_SIZE, seed=0, samples_per_shard=5)
    return out
