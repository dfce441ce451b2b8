"""Recipe files as tables: reading (encodings, size and nesting limits), ``extends``,
merging, ``--set`` overrides and where each key came from.

:func:`load_table` is the first of the two steps in :mod:`microvlm.recipes.load`. Files are UTF-8,
with or without a byte-order mark, or UTF-16/UTF-32 with one (as Windows editors save).
Tables and arrays nest at most :data:`MAX_NESTING` levels, ``extends`` chains at most
:data:`MAX_EXTENDS_DEPTH` files, and one recipe reads at most :data:`MAX_EXTENDS_FILES`
files; ``extends`` cannot be set with ``--set``.
"""

from __future__ import annotations

import codecs
import copy
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from microvlm.errors import RecipeError
from microvlm.recipes.structure import describe_value

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

Path_ = tuple[str, ...]

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
        raise RecipeError(f"{path}: {shorten('.'.join(deep))}: {_NESTED}")
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


def shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_table(path: str | Path, overrides: Iterable[str] = ()) -> Table:
    """Read ``path`` with its ``extends`` chain merged in and ``overrides`` applied."""
    table = _load_with_extends(Path(path), (), _Reads())
    table.source = str(path)
    apply_overrides(table, overrides)
    return table


def apply_overrides(table: Table, overrides: Iterable[str]) -> None:
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
    own = Table(data, origins(data, (), str(path)), str(path))
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
        if not is_file(parent_path):
            raise RecipeError(f"{path}: extends: file not found: {shorten(str(parent_path), 300)}")
        merge_into(merged, _load_with_extends(parent_path, (*chain, resolved), reads))
    own.origin.pop(("extends",), None)
    merge_into(merged, own)
    return merged


def is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long, a NUL in it
        return False


def origins(value: Any, prefix: Path_, source: str) -> dict[Path_, str]:
    out: dict[Path_, str] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out[(*prefix, k)] = source
            out.update(origins(v, (*prefix, k), source))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.update(origins(v, (*prefix, str(i)), source))
    return out


def merge_into(base: Table, top: Table) -> None:
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
        raise RecipeError(f"--set {shorten(key)}: a number too long to read (integers are 64-bit)") from None
    parts = key.split(".")
    if value is None or len(parts) > MAX_NESTING or too_deep(value, MAX_NESTING - len(parts)):
        raise RecipeError(f"--set {shorten(key)}: {_NESTED}")
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
