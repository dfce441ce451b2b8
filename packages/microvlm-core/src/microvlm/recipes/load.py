"""Recipes: TOML files -> merged tables -> validated, typed :class:`~microvlm.recipes.config.Recipe`.

Two steps. :func:`load_table` reads a file, follows ``extends`` (relative to the file's
folder; tables merge, later wins; arrays are replaced; cycles are errors) and applies
``--set path=value`` overrides, remembering which file set each key. :func:`load_recipe`
then structures the core sections into core's config classes and each component section
into the config class its plugin registered. Every problem is reported, not just the
first, each as ``FILE: dotted.path: what was expected, what was found`` (the first
:data:`MAX_LISTED`, then how many more).

The first step lives in :mod:`microvlm.recipes.tables` (encodings, nesting and ``extends``
limits); its public names are re-exported here, so ``microvlm.recipes.load`` stays the one API.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from microvlm.errors import PluginError, RecipeError, did_you_mean
from microvlm.recipes.config import (
    ComponentSpec,
    DataConfig,
    EvalConfig,
    ModelConfig,
    Pipeline,
    ProjectionConfig,
    Recipe,
    RunConfig,
    Stage,
)
from microvlm.recipes.structure import MAX_HINTS, ConfigErrors, describe_value, structure, unstructure
from microvlm.recipes.tables import (  # re-exported: the recipe API is microvlm.recipes.load
    MAX_LISTED,
    Path_,
    Table,
    apply_overrides,
    is_file,
    load_table,
    merge_into,
    origins,
    parse_override,
    set_path,
    shorten,
    translate_legacy,
)
from microvlm.recipes.validators import COMPONENT_NAME

if TYPE_CHECKING:
    from microvlm.plugins.manager import Plugins


RECIPE_KEYS = ("extends", "run", "model", "data", "eval", "loggers", "qat")
PIPELINE_KEYS = ("extends", "stages")
MODEL_COMPONENTS = {"encoder": "encoder", "bridge": "bridge", "llm": "llm"}
DEFAULT_LOGGERS = ({"name": "console"}, {"name": "jsonl"})


# -------------------------------------------------------------------------------------
# Validation: tables -> typed recipes
# -------------------------------------------------------------------------------------


class _Problems:
    """Collects problems; the same message at several paths of one file is one line."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._found: dict[tuple[str, str], list[str]] = {}  # (file, message) -> dotted paths

    def add(self, path: Sequence[str], message: str) -> None:
        dotted = ".".join(path) or "<top level>"
        self._found.setdefault((self.table.where(path), message), []).append(dotted)

    @property
    def lines(self) -> list[str]:
        return [f"{file}: {_listed(paths)}: {message}" for (file, message), paths in self._found.items()]

    def structure(self, data: Any, cls: type, path: Sequence[str]) -> Any:
        try:
            return structure(data, cls)
        except ConfigErrors as exc:
            for sub, message in exc.problems:
                self.add((*path, *sub), message)
            return None

    def raise_if_any(self) -> None:
        if self._found:
            raise RecipeError(capped(self.lines))


def _listed(paths: list[str]) -> str:
    """``a, b, c`` or, past :data:`MAX_LISTED`, ``a, b, ... and 1,234 more``."""
    shown = ", ".join(shorten(p) for p in paths[:MAX_LISTED])
    return shown if len(paths) <= MAX_LISTED else f"{shown} and {len(paths) - MAX_LISTED:,} more"


def capped(lines: list[str]) -> list[str]:
    """The first :data:`MAX_LISTED` problem lines, then ``... and N more problems``."""
    if len(lines) <= MAX_LISTED:
        return lines
    return [*lines[:MAX_LISTED], f"... and {len(lines) - MAX_LISTED:,} more problems"]


def load_recipe(
    path: str | Path, plugins: Plugins, overrides: Iterable[str] = (), *, check_output_dir: bool = False
) -> Recipe | Pipeline:
    """Load, merge, override and validate a recipe or a pipeline recipe.

    ``check_output_dir``: also refuse a ``run.output_dir`` that is a file or in a folder this
    process cannot write (``recipe check`` and ``run`` do; a recipe read for ``eval`` need not).
    """
    overrides = list(overrides)
    table = load_table(path)
    if "stages" in table.data:  # --set applies to every stage, not to the pipeline file
        return _build_pipeline(table, plugins, overrides, check_output_dir)
    apply_overrides(table, overrides)
    return build_recipe(table, plugins, check_output_dir=check_output_dir)


def build_recipe(table: Table, plugins: Plugins, *, check_output_dir: bool = False) -> Recipe:
    """Validate a merged single-stage table into a :class:`Recipe` (all problems at once)."""
    p = _Problems(table)
    data = table.data
    unknown = [key for key in data if key not in RECIPE_KEYS]
    for i, key in enumerate(unknown):
        hint = (
            " (a pipeline recipe has only 'stages')"
            if key == "stages"
            else did_you_mean(key, RECIPE_KEYS)
            if i < MAX_HINTS
            else ""
        )
        p.add((key,), f"unknown section{hint}; sections are {', '.join(RECIPE_KEYS[1:])}")

    run = p.structure(data.get("run", {}), RunConfig, ("run",))
    if check_output_dir and run is not None:
        problem = output_dir_problem(Path(run.output_dir))
        if problem:
            p.add(("run", "output_dir"), problem)
    model = _build_model(p, data.get("model"), plugins)
    entries = _build_entries(p, data.get("data", []), ("data",), plugins, required=True)
    eval_table = dict(data.get("eval", {})) if isinstance(data.get("eval", {}), dict) else None
    evaluation = None
    if eval_table is None:
        p.add(("eval",), "expected a table")
    else:
        eval_entries = _build_entries(
            p, eval_table.pop("data", []), ("eval", "data"), plugins, required=False
        )
        evaluation = p.structure(eval_table, EvalConfig, ("eval",))
        if evaluation is not None and eval_entries is not None:
            evaluation = attrs.evolve(evaluation, data=eval_entries)
    loggers = _build_loggers(p, data.get("loggers", list(DEFAULT_LOGGERS)), plugins)
    qat = _component(p, "qat", data["qat"], ("qat",), plugins) if "qat" in data else None
    p.raise_if_any()
    return Recipe(table.source, run, model, entries, evaluation, loggers, copy.deepcopy(data), qat)


def _component(
    p: _Problems, kind: str, section: Any, path: Path_, plugins: Plugins, name_key: str = "name"
) -> ComponentSpec | None:
    if not isinstance(section, dict):
        p.add(path, f"expected a table with at least '{name_key}', got {describe_value(section)}")
        return None
    settings = dict(section)
    name = settings.pop(name_key, None)
    if name is None:
        p.add(
            (*path, name_key),
            f"missing; choose a {kind}: {', '.join(plugins.names(kind)) or 'none installed'}",
        )
        return None
    if not isinstance(name, str):
        p.add((*path, name_key), f"expected a string, got {describe_value(name)}")
        return None
    try:
        component = plugins.get(kind, name)
    except PluginError as exc:
        p.add((*path, name_key), str(exc))
        return None
    config = p.structure(settings, component.config_cls, path)
    if config is None:
        return None
    _check_component_names(p, config, settings, path, plugins)
    return ComponentSpec(name, config)


def _check_component_names(
    p: _Problems, config: Any, settings: dict[str, Any], path: Path_, plugins: Plugins
) -> None:
    """Fields marked :func:`~microvlm.recipes.validators.component_name` must name a registered component."""
    for field in attrs.fields(type(config)):
        kind, used_when = field.metadata.get(COMPONENT_NAME, (None, None))
        if kind is None:
            continue
        value = getattr(config, field.name)
        chosen = field.name in settings and value != field.default  # a checkpoint's table repeats defaults
        if not (chosen or (used_when is not None and used_when(config))):
            continue
        try:
            plugins.get(kind, value)
        except PluginError as exc:
            p.add((*path, field.name), str(exc))


def _build_model(p: _Problems, section: Any, plugins: Plugins) -> ModelConfig | None:
    if not isinstance(section, dict):
        p.add(
            ("model",),
            "missing [model] table with encoder, bridge and llm" if section is None else "expected a table",
        )
        return None
    parts: dict[str, Any] = {}
    unknown = [key for key in section if key not in (*MODEL_COMPONENTS, "projection")]
    for i, key in enumerate(unknown):
        hint = did_you_mean(key, [*MODEL_COMPONENTS, "projection"]) if i < MAX_HINTS else ""
        p.add(("model", key), f"unknown key{hint}; [model] has encoder, bridge, llm and projection")
    for key, kind in MODEL_COMPONENTS.items():
        if key not in section:
            choices = ", ".join(plugins.names(kind)) or "none installed"
            p.add(("model", key), f"missing table [model.{key}] (with name = one of: {choices})")
            continue
        parts[key] = _component(p, kind, section[key], ("model", key), plugins)
    projection = p.structure(section.get("projection", {}), ProjectionConfig, ("model", "projection"))
    if any(v is None for v in parts.values()) or projection is None or len(parts) < 3:
        return None
    return ModelConfig(projection=projection, **parts)


def build_model_config(section: dict[str, Any], plugins: Plugins, source: str = "<model>") -> ModelConfig:
    """Structure a ``[model]`` table (encoder, bridge, llm, projection) on its own."""
    p = _Problems(Table({"model": section}, {}, source))
    model = _build_model(p, section, plugins)
    p.raise_if_any()
    assert model is not None
    return model


def _build_entries(
    p: _Problems, items: Any, path: Path_, plugins: Plugins, *, required: bool
) -> tuple[DataConfig, ...] | None:
    if not isinstance(items, list):
        p.add(path, f"expected an array of tables ([[{'.'.join(path)}]]), got {describe_value(items)}")
        return None
    if required and not items:
        p.add(path, "no [[data]] entries: add at least one with dataset = ..., task = ...")
    entries: list[DataConfig] = []
    ok = True
    for i, item in enumerate(items):
        entry = _build_entry(p, item, (*path, str(i)), plugins)
        ok = ok and entry is not None
        if entry is not None:
            entries.append(entry)
    return tuple(entries) if ok else None


def _build_entry(p: _Problems, item: Any, path: Path_, plugins: Plugins) -> DataConfig | None:
    if not isinstance(item, dict):
        p.add(path, f"expected a table, got {describe_value(item)}")
        return None
    settings = dict(item)
    dataset_name = settings.pop("dataset", None)
    task = settings.pop("task", None)
    raw_weight = settings.pop("weight", 1.0)
    try:
        weight: float | None = structure(raw_weight, float)  # a finite number
    except ConfigErrors:
        weight = None
    if weight is None or not weight > 0:
        p.add((*path, "weight"), f"expected a finite number > 0, got {describe_value(raw_weight)}")
        weight = None
    if dataset_name is None:
        p.add(
            (*path, "dataset"),
            f"missing; choose a dataset: {', '.join(plugins.names('dataset')) or 'none installed'}",
        )
    if task is None:
        p.add(
            (*path, "task"), f"missing; choose a task: {', '.join(plugins.names('task')) or 'none installed'}"
        )
    if dataset_name is None or task is None:
        return None
    dataset = _component(p, "dataset", {"dataset": dataset_name, **settings}, path, plugins, "dataset")
    if isinstance(task, dict):
        task_spec = _component(p, "task", task, (*path, "task"), plugins)
    else:  # task = "vqa": problems are reported at data.N.task
        task_spec = _component(p, "task", {"task": task}, path, plugins, "task")
    if dataset is None or task_spec is None or weight is None:
        return None
    return DataConfig(dataset, task_spec, weight)


def _build_loggers(p: _Problems, items: Any, plugins: Plugins) -> tuple[ComponentSpec, ...]:
    if not isinstance(items, list):
        p.add(("loggers",), f"expected an array of tables ([[loggers]]), got {describe_value(items)}")
        return ()
    specs = [_component(p, "logger", item, ("loggers", str(i)), plugins) for i, item in enumerate(items)]
    return tuple(s for s in specs if s is not None)


# -------------------------------------------------------------------------------------
# Pipelines
# -------------------------------------------------------------------------------------


def final_checkpoint(run: RunConfig) -> str:
    """Where a stage's final checkpoint is written (and the next stage reads it)."""
    return str(Path(run.output_dir) / "checkpoint_final")


def output_dir_problem(path: Path) -> str | None:
    """Why ``path`` cannot be (or become) a run's output folder, else ``None``."""
    try:
        existing = next(p for p in (path, *path.parents) if p.exists() or p.is_symlink())
        if not existing.is_dir():
            what = "a file, not a folder" if existing.is_file() else "not a folder"
            also = "" if existing == path else f", so {path} cannot be created"
            return f"{existing} is {what}{also}"
        if not os.access(existing, os.W_OK | os.X_OK):
            return f"cannot write in {existing} (permission denied)"
    except (OSError, ValueError) as exc:  # a name too long, a NUL in it
        return f"{shorten(repr(str(path)))} is not a usable folder name: {exc}"
    return None


def _build_pipeline(
    table: Table, plugins: Plugins, overrides: Sequence[str], check_output_dir: bool = False
) -> Pipeline:
    p = _Problems(table)
    for key in table.data:
        if key not in PIPELINE_KEYS:
            p.add(
                (key,),
                "a pipeline recipe has only 'stages' (and 'extends'); "
                "put settings in the stage recipes or in [stages.overrides]",
            )
    items = table.data["stages"]
    if not isinstance(items, list) or not items:
        p.add(("stages",), 'expected a non-empty array of tables ([[stages]] recipe = "...")')
    p.raise_if_any()
    stages: list[Stage] = []
    errors: list[tuple[int, str]] = []  # (stage number, problem)
    previous: Recipe | None = None
    base = Path(table.where(("stages",))).parent
    for i, item in enumerate(items):
        path = ("stages", str(i))
        if not isinstance(item, dict) or not isinstance(item.get("recipe"), str):
            errors.append(
                (
                    i + 1,
                    f"{table.where(path)}: {'.'.join(path)}.recipe: missing; name the stage's recipe file",
                )
            )
            continue
        unknown = sorted(set(item) - {"recipe", "overrides"})
        stage_file = base / item["recipe"]
        problem = (
            f": unknown keys {_listed(unknown)}; a stage has 'recipe' and 'overrides'"
            if unknown
            else f".overrides: expected a table, got {describe_value(item['overrides'])}"
            if not isinstance(item.get("overrides", {}), dict)
            else f".recipe: file not found: {shorten(str(stage_file), 300)}"
            if not is_file(stage_file)
            else None
        )
        if problem:
            errors.append((i + 1, f"{table.where(path)}: {'.'.join(path)}{problem}"))
            continue
        try:
            stage_table = load_table(stage_file)
            stage_overrides = item.get("overrides", {})
            merge_into(
                stage_table,
                Table(
                    copy.deepcopy(stage_overrides),
                    origins(stage_overrides, (), table.where(path)),
                    table.source,
                ),
            )
            apply_overrides(stage_table, overrides)
            # A stage starts from the previous stage's final checkpoint unless the pipeline
            # (the stage's overrides or --set) names a checkpoint explicitly.
            explicit = stage_table.origin.get(("run", "init_from")) in ("--set", table.where(path))
            chained = previous is not None and not explicit
            if chained:
                set_path(
                    stage_table, ["run", "init_from"], final_checkpoint(previous.run), origin=table.source
                )
            recipe = build_recipe(stage_table, plugins, check_output_dir=check_output_dir)
        except RecipeError as exc:
            errors.extend((i + 1, line) for line in exc.problems)
            previous = None
            continue
        stages.append(Stage(recipe, chained))
        previous = recipe
    if errors:
        raise RecipeError(capped(_merge_stage_lines(errors)))
    return Pipeline(table.source, tuple(stages), copy.deepcopy(table.data))


def _merge_stage_lines(lines: list[tuple[int, str]]) -> list[str]:
    """``[(stage, line)]`` -> ``"[stages 1, 2] line"``: a shared base's problem is told once."""
    stages_of: dict[str, list[int]] = {}
    for stage, line in lines:
        stages_of.setdefault(line, []).append(stage)
    out = []
    for line, stages in stages_of.items():
        label = f"stage {stages[0]}" if len(stages) == 1 else f"stages {', '.join(map(str, stages))}"
        out.append(f"[{label}] {line}")
    return out


# -------------------------------------------------------------------------------------
# Back to tables (recipe check --print, run records)
# -------------------------------------------------------------------------------------


def _component_table(spec: ComponentSpec, name_key: str = "name") -> dict[str, Any]:
    return {name_key: spec.name, **unstructure(spec.config)}


def _entry_table(entry: DataConfig) -> dict[str, Any]:
    task = _component_table(entry.task)
    return {
        **_component_table(entry.dataset, "dataset"),
        "task": task if len(task) > 1 else entry.task.name,
        "weight": entry.weight,
    }


def recipe_to_table(recipe: Recipe) -> dict[str, Any]:
    """The fully resolved recipe, defaults included, as a TOML-ready table.

    Loading the result again gives an equal :class:`Recipe`.
    """
    model = recipe.model
    evaluation = unstructure(recipe.eval)
    evaluation.pop("data", None)
    table: dict[str, Any] = {
        "run": unstructure(recipe.run),
        "model": {
            "encoder": _component_table(model.encoder),
            "bridge": _component_table(model.bridge),
            "llm": _component_table(model.llm),
            "projection": unstructure(model.projection),
        },
        "data": [_entry_table(e) for e in recipe.data],
        "eval": evaluation,
        "loggers": [_component_table(spec) for spec in recipe.loggers],
    }
    if recipe.qat is not None:
        table["qat"] = _component_table(recipe.qat)
    if recipe.eval.data:
        table["eval"]["data"] = [_entry_table(e) for e in recipe.eval.data]
    return table


__all__ = [
    "Table",
    "build_model_config",
    "build_recipe",
    "load_recipe",
    "load_table",
    "parse_override",
    "recipe_to_table",
    "set_path",
    "translate_legacy",
]
