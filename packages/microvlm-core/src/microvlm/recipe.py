"""Recipes: TOML files -> merged tables -> validated, typed :class:`~microvlm.config.Recipe`.

Two steps. :func:`load_table` reads a file, follows ``extends`` (relative to the file's
folder; tables merge, later wins; arrays are replaced; cycles are errors) and applies
``--set path=value`` overrides, remembering which file set each key. :func:`load_recipe`
then structures the core sections into core's config classes and each component section
into the config class its plugin registered. Every problem is reported, not just the
first, each as ``FILE: dotted.path: what was expected, what was found`` (the first
:data:`MAX_LISTED`, then how many more).

Files are UTF-8, with or without a byte-order mark, or UTF-16/UTF-32 with one (as Windows
editors save). Tables and arrays nest at most :data:`MAX_NESTING` levels, ``extends``
chains at most :data:`MAX_EXTENDS_DEPTH` files, and one recipe reads at most
:data:`MAX_EXTENDS_FILES` files; ``extends`` cannot be set with ``--set``.
"""

from __future__ import annotations

import codecs
import copy
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from microvlm.config import (
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
from microvlm.errors import PluginError, RecipeError, did_you_mean
from microvlm.structure import MAX_HINTS, ConfigErrors, describe_value, structure, unstructure

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

if TYPE_CHECKING:
    from microvlm.plugins import Plugins

Path_ = tuple[str, ...]

RECIPE_KEYS = ("extends", "run", "model", "data", "eval", "loggers")
PIPELINE_KEYS = ("extends", "stages")
MODEL_COMPONENTS = {"encoder": "encoder", "bridge": "bridge", "llm": "llm"}
DEFAULT_LOGGERS = ({"name": "console"}, {"name": "jsonl"})

MAX_NESTING = 32  # levels of tables and arrays in a file or a --set value (recipes use ~5)
MAX_EXTENDS_DEPTH = 64  # files in one extends chain, below the recipe itself
MAX_EXTENDS_FILES = 1024  # files one recipe reads, counting a file extended twice twice
MAX_LISTED = 20  # problems in an error, and paths per problem, before "and N more"

#: Byte-order marks -> codec; UTF-32 first, as its little-endian mark starts like UTF-16's.
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

#: The seed's train.py option keys (LAVIS-style) -> where they live now.
LEGACY_KEYS: Mapping[str, str] = {
    "model.ckpt": "run.init_from",
    "model.vision_encoder": "model.encoder.name",
    "model.freeze_vit": "model.encoder.freeze",
    "model.image_size": "model.encoder.image_size",
    "model.num_query_token": "model.bridge.num_queries",
    "model.qformer_hidden_size": "model.bridge.hidden_size",
    "model.qformer_num_layers": "model.bridge.num_layers",
    "model.llm_model": "model.llm.model",
    "model.lora_r": "model.llm.lora_r",
    "model.lora_alpha": "model.llm.lora_alpha",
    "model.lora_dropout": "model.llm.lora_dropout",
    "run.init_lr": "run.lr",
    "run.max_epoch": "run.epochs",
    "run.batch_size_train": "run.batch_size",
    "run.accum_grad_iters": "run.grad_accum_steps",
}


# -------------------------------------------------------------------------------------
# Tables: reading, extends, merging, overrides
# -------------------------------------------------------------------------------------


@attrs.define
class Table:
    """A merged recipe table plus, for every key path, the file (or ``--set``) that set it."""

    data: dict[str, Any]
    origin: dict[Path_, str]  # key path -> file that set it
    source: str  # the recipe file that was asked for

    def where(self, path: Sequence[str]) -> str:
        """The file that set ``path`` (or its nearest parent), else the recipe itself."""
        path = tuple(path)
        for n in range(len(path), 0, -1):
            if path[:n] in self.origin:
                return self.origin[path[:n]]
        return self.source


def read_toml(path: Path) -> dict[str, Any]:
    """Parse one TOML file; errors name the file and the line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RecipeError(f"{path}: file not found") from None
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:  # a NUL in the name
        raise RecipeError(f"{path!r}: cannot read: {exc}") from None
    table = parse_toml(decode_recipe(path, data), str(path))
    deep = too_deep(table, MAX_NESTING)
    if deep is not None:
        raise RecipeError(f"{path}: {_shorten('.'.join(deep))}: {_NESTED}")
    return table


_NESTED = f"nested deeper than {MAX_NESTING} levels of tables and arrays (a recipe needs a few)"


def decode_recipe(path: Path, data: bytes) -> str:
    """Bytes -> text: UTF-8 with or without a BOM, UTF-16/UTF-32 with a BOM."""
    encoding = next((codec for bom, codec in BOMS if data.startswith(bom)), "utf-8")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        where = f"line {line}, " if encoding.startswith("utf-8") else ""
        kind = "UTF-8" if encoding.startswith("utf-8") else f"{encoding.upper()} (it starts with its mark)"
        raise RecipeError(
            f"{path}: not {kind} text: byte {data[exc.start]:#04x} at {where}offset {exc.start}; "
            "save the recipe as UTF-8"
        ) from None
    if "\0" in text:  # TOML allows no NUL anywhere; UTF-16 without its mark is full of them
        raise RecipeError(
            f"{path}: not UTF-8 text: it holds NUL bytes (UTF-16 without a byte-order mark?); "
            "save the recipe as UTF-8"
        )
    return text


def parse_toml(text: str, where: str) -> dict[str, Any]:
    """``tomllib.loads`` whose every failure is a :class:`RecipeError` starting with ``where``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{where}: invalid TOML: {exc}") from None
    except RecursionError:
        raise RecipeError(f"{where}: {_NESTED}") from None
    except ValueError:  # int() refuses numbers of thousands of digits
        raise RecipeError(f"{where}: invalid TOML: a number too long to read (integers are 64-bit)") from None


def too_deep(value: Any, limit: int) -> Path_ | None:
    """The key path of a value nested more than ``limit`` levels deep, else ``None``."""
    stack: list[tuple[Any, Path_]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if len(path) > limit:
            return path
        if isinstance(node, dict):
            stack.extend((v, (*path, str(k))) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, (*path, str(i))) for i, v in enumerate(node))
    return None


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_table(path: str | Path, overrides: Iterable[str] = ()) -> Table:
    """Read ``path`` with its ``extends`` chain merged in and ``overrides`` applied."""
    table = _load_with_extends(Path(path), (), _Reads())
    table.source = str(path)
    _apply_overrides(table, overrides)
    return table


def _apply_overrides(table: Table, overrides: Iterable[str]) -> None:
    for text in overrides:
        key, value = parse_override(text)
        if key.split(".")[0] == "extends":
            raise RecipeError(
                "--set extends: extends cannot be set with --set: it chooses the files that --set "
                "applies on top of; write a recipe with extends = [...] and run that instead"
            )
        set_path(table, key.split("."), value, origin="--set")


@attrs.define
class _Reads:
    """Counts the files one recipe reads: ``extends = ["b", "b"]`` at every level doubles them."""

    count: int = 0

    def take(self, path: Path, chain: tuple[Path, ...]) -> None:
        self.count += 1
        if len(chain) > MAX_EXTENDS_DEPTH:
            raise RecipeError(
                f"{chain[0]}: extends: a chain of more than {MAX_EXTENDS_DEPTH} files "
                f"(the {MAX_EXTENDS_DEPTH + 1}th is {path}); recipes extend at most {MAX_EXTENDS_DEPTH} deep"
            )
        if self.count > MAX_EXTENDS_FILES:
            raise RecipeError(
                f"{chain[0] if chain else path}: extends: more than {MAX_EXTENDS_FILES} files to read "
                "(is a file extended many times over?)"
            )


def _load_with_extends(path: Path, chain: tuple[Path, ...], reads: _Reads) -> Table:
    reads.take(path, chain)
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a NUL in the name
        raise RecipeError(f"{path!r}: cannot read: {exc}") from None
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in (*chain, resolved))
        raise RecipeError(f"{chain[-1]}: extends: cycle: {cycle}")
    data = read_toml(path)
    own = Table(data, _origins(data, (), str(path)), str(path))
    extends = data.pop("extends", None)
    if extends is None:
        return own
    parents = [extends] if isinstance(extends, str) else extends
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise RecipeError(
            f"{path}: extends: expected a file name or an array of them, got {describe_value(extends)}"
        )
    merged = Table({}, {}, str(path))
    for parent in parents:
        parent_path = path.parent / parent
        if not _is_file(parent_path):
            raise RecipeError(f"{path}: extends: file not found: {_shorten(str(parent_path), 300)}")
        _merge_into(merged, _load_with_extends(parent_path, (*chain, resolved), reads))
    own.origin.pop(("extends",), None)
    _merge_into(merged, own)
    return merged


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long, a NUL in it
        return False


def _origins(value: Any, prefix: Path_, source: str) -> dict[Path_, str]:
    out: dict[Path_, str] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out[(*prefix, k)] = source
            out.update(_origins(v, (*prefix, k), source))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.update(_origins(v, (*prefix, str(i)), source))
    return out


def _merge_into(base: Table, top: Table) -> None:
    """Deep-merge ``top`` into ``base``: tables merge key by key, anything else is replaced."""

    def merge(b: dict[str, Any], t: dict[str, Any], prefix: Path_) -> None:
        for key, value in t.items():
            path = (*prefix, key)
            if isinstance(value, dict) and isinstance(b.get(key), dict):
                merge(b[key], value, path)
            else:
                if isinstance(b.get(key), (dict, list)):  # forget where its parts came from
                    _forget(base.origin, path)
                base.origin.pop(path, None)
                b[key] = copy.deepcopy(value)

    merge(base.data, top.data, ())
    base.origin.update(top.origin)


def _forget(origin: dict[Path_, str], path: Path_) -> None:
    for p in [p for p in origin if p[: len(path)] == path]:
        del origin[p]


def parse_override(text: str) -> tuple[str, Any]:
    """``"run.lr=2e-4"`` -> ``("run.lr", 0.0002)``; values are TOML, else plain strings."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise RecipeError(f"--set {text!r}: expected KEY=VALUE with a dotted key, e.g. run.lr=2e-4")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # bare words and paths: --set model.encoder.name=diet_small
    except RecursionError:
        value = None
    except ValueError:  # int() refuses numbers of thousands of digits
        raise RecipeError(f"--set {_shorten(key)}: a number too long to read (integers are 64-bit)") from None
    parts = key.split(".")
    if value is None or len(parts) > MAX_NESTING or too_deep(value, MAX_NESTING - len(parts)):
        raise RecipeError(f"--set {_shorten(key)}: {_NESTED}")
    return key, value


def set_path(table: Table, path: Sequence[str], value: Any, origin: str) -> None:
    """Set a dotted path in the table, creating tables; numeric parts index arrays."""
    node: Any = table.data
    for i, part in enumerate(path[:-1]):
        where = ".".join(path[: i + 1])
        if isinstance(node, list):
            node = _index(node, part, where)
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise RecipeError(f"--set {'.'.join(path)}: {'.'.join(path[:i])} is not a table")
        if not isinstance(node, (dict, list)):
            raise RecipeError(f"--set {'.'.join(path)}: {where} is a value, not a table")
    last = path[-1]
    if isinstance(node, list):
        _index(node, last, ".".join(path))  # validates the index
        node[int(last)] = value
    else:
        node[last] = value
    _forget(table.origin, tuple(path))
    table.origin[tuple(path)] = origin


def _index(items: list[Any], part: str, where: str) -> Any:
    if not part.isdigit() or int(part) >= len(items):
        raise RecipeError(f"--set {where}: no item {part} in an array of {len(items)}")
    return items[int(part)]


def translate_legacy(key: str) -> str | None:
    """The current key for a seed-era option key, or ``None`` if it is not one."""
    return LEGACY_KEYS.get(key)


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
    shown = ", ".join(_shorten(p) for p in paths[:MAX_LISTED])
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
    _apply_overrides(table, overrides)
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
    p.raise_if_any()
    return Recipe(table.source, run, model, entries, evaluation, loggers, copy.deepcopy(data))


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
    return None if config is None else ComponentSpec(name, config)


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
        return f"{_shorten(repr(str(path)))} is not a usable folder name: {exc}"
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
            else f".recipe: file not found: {_shorten(str(stage_file), 300)}"
            if not _is_file(stage_file)
            else None
        )
        if problem:
            errors.append((i + 1, f"{table.where(path)}: {'.'.join(path)}{problem}"))
            continue
        try:
            stage_table = load_table(stage_file)
            stage_overrides = item.get("overrides", {})
            _merge_into(
                stage_table,
                Table(
                    copy.deepcopy(stage_overrides),
                    _origins(stage_overrides, (), table.where(path)),
                    table.source,
                ),
            )
            _apply_overrides(stage_table, overrides)
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
    if recipe.eval.data:
        table["eval"]["data"] = [_entry_table(e) for e in recipe.eval.data]
    return table
