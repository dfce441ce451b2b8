"""The plugin as a whole: registration, configs, recipes, clear errors, light imports."""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

import microvlm
import microvlm_datasets
from microvlm.errors import MicroVLMError
from microvlm.plugins.known import KNOWN_BUILTINS
from microvlm.recipes.load import build_recipe, load_table
from microvlm.recipes.structure import ConfigErrors, structure, unstructure
from microvlm_datasets.builders.base import MissingDataError

DIST = "microvlm-datasets"
OURS = sorted(name for (kind, name), dist in KNOWN_BUILTINS.items() if kind == "dataset" and dist == DIST)
RECIPES = sorted((Path(__file__).parents[3] / "recipes").glob("*.toml"))


def test_version_matches_the_distribution() -> None:
    assert microvlm_datasets.__version__ == md.version(DIST)


@pytest.mark.parametrize("name", OURS)
def test_every_known_dataset_is_registered_by_us(plugins: microvlm.Plugins, name: str) -> None:
    component = plugins.get("dataset", name)
    assert component.distribution == DIST and component.description


@pytest.mark.parametrize("name", OURS)
def test_configs_are_frozen_defaulted_and_round_trip(plugins: microvlm.Plugins, name: str) -> None:
    cls = plugins.get("dataset", name).config_cls
    config = structure({}, cls)
    assert attrs.has(cls) and config.root
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.root = "elsewhere"  # type: ignore[misc]
    assert structure(unstructure(config), cls) == config
    with pytest.raises(ConfigErrors, match="unknown key"):
        structure({"roots": "data/x"}, cls)
    with pytest.raises(ConfigErrors, match="root"):
        structure({"root": ""}, cls)


@pytest.mark.parametrize("name", OURS)
def test_missing_files_name_the_path_and_the_way_out(
    plugins: microvlm.Plugins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.chdir(tmp_path)  # the default roots (data/...) do not exist here
    with pytest.raises(MissingDataError) as error:
        plugins.build("dataset", name)
    message = str(error.value)
    assert message.startswith(f"{name}: ") and "data/" in message
    assert "microvlm datasets shapes" in message
    assert isinstance(error.value, MicroVLMError)


def test_malformed_json_names_file_line_and_column(tmp_path: Path, build: Any) -> None:
    (tmp_path / "v2_OpenEnded_mscoco_val2014_questions.json").write_text(
        '{"questions": [\n  {"question_id": 1,}\n]}'
    )
    (tmp_path / "v2_mscoco_val2014_annotations.json").write_text('{"annotations": []}')
    (tmp_path / "val2014").mkdir()
    builder = build("vqav2", root=tmp_path, split="val", image_root=tmp_path)
    with pytest.raises(MicroVLMError, match=r"questions.json: invalid JSON at line 2, column 21"):
        len(builder)


def test_missing_field_names_the_record_and_key(tmp_path: Path, build: Any) -> None:
    (tmp_path / "v2_OpenEnded_mscoco_val2014_questions.json").write_text(
        '{"questions": [{"question_id": 1, "image_id": 2, "question": "q?"}, {"question_id": 3, "image_id": 2}]}'
    )
    (tmp_path / "v2_mscoco_val2014_annotations.json").write_text(
        '{"annotations": [{"question_id": 1, "answers": []}, {"question_id": 3, "answers": []}]}'
    )
    (tmp_path / "val2014").mkdir()
    with pytest.raises(MicroVLMError, match=r"questions\[1\]: missing key 'question'"):
        len(build("vqav2", root=tmp_path, split="val", image_root=tmp_path))


def test_wrong_image_root_names_the_expected_folders(tmp_path: Path, build: Any) -> None:
    (tmp_path / "v2_OpenEnded_mscoco_train2014_questions.json").write_text('{"questions": []}')
    (tmp_path / "v2_mscoco_train2014_annotations.json").write_text('{"annotations": []}')
    with pytest.raises(MissingDataError, match=r"train2014.*train2017"):
        build("vqav2", root=tmp_path, split="train", image_root=tmp_path / "nowhere")


def _data_entries(path: Path) -> list[dict[str, Any]]:
    table = load_table(path)
    entries = list(table.data.get("data", []))
    entries += list(table.data.get("eval", {}).get("data", []))
    return entries


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_data_entries_validate(plugins: microvlm.Plugins, recipe: Path) -> None:
    entries = _data_entries(recipe)
    for entry in entries:
        settings = {k: v for k, v in entry.items() if k not in ("dataset", "task", "weight")}
        config = structure(settings, plugins.get("dataset", entry["dataset"]).config_cls)
        assert config.root == entry["root"]


@pytest.mark.parametrize("recipe", [r for r in RECIPES if _data_entries(r)], ids=lambda p: p.name)
def test_recipes_build_when_every_plugin_is_installed(plugins: microvlm.Plugins, recipe: Path) -> None:
    try:
        result = build_recipe(load_table(recipe), plugins)
    except microvlm.RecipeError as exc:
        if any("unknown" in line and "dataset" not in line for line in exc.problems):
            pytest.skip(f"another component is not installed yet: {exc.problems[0]}")
        raise
    assert all(entry.dataset.config.root for entry in result.data)


def test_plugin_and_cli_import_nothing_heavy() -> None:
    code = (
        "import sys, microvlm_datasets.plugin, microvlm_datasets.config, microvlm_datasets.cli\n"
        "from microvlm.cli import build_cli\n"
        "build_cli()\n"
        "print(sorted(m for m in ('torch', 'numpy', 'PIL', 'webdataset') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
