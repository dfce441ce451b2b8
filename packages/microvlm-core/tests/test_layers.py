"""Core's layers: each folder imports only from the folders below it, and nothing forms a cycle.

Read from the source (every ``import`` statement, those inside functions included, since a lazy
import is still a dependency), so a new upward import fails here rather than in a review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src" / "microvlm"

#: folder (or top-level module) -> layer; a module may import only from its own layer or lower.
LAYERS = {
    "errors": 0,
    "contracts": 0,
    "io": 1,
    "loggers": 1,
    "plugins": 1,
    "recipes": 2,
    "data": 3,
    "models": 4,
    "eval": 5,
    "train": 6,
    "testing": 7,
    "cli": 7,
    "__init__": 8,  # the package's lazy public API
    "__main__": 8,
    "core_components": 8,  # core's own registrations name components from every layer
}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1] if len(parts) > 1 else parts
    return ".".join(parts)


def _type_only(tree: ast.Module) -> set[ast.AST]:
    """Nodes inside ``if TYPE_CHECKING:`` blocks: annotations, never executed."""
    skipped: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.body:
                skipped |= set(ast.walk(child))
    return skipped


def _imports(path: Path, *, runtime_only: bool = False) -> set[str]:
    """Every ``microvlm`` module ``path`` imports; ``from a import b`` counts as ``a.b`` when
    that is a module (resolved by :func:`_graph`)."""
    tree = ast.parse(path.read_text("utf-8"))
    skipped = _type_only(tree) if runtime_only else set()
    found = set()
    for node in ast.walk(tree):
        if node in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("microvlm.")}
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").startswith("microvlm")
        ):
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _graph(*, runtime_only: bool = False) -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path, runtime_only=runtime_only):
            target = imported
            while target not in modules and "." in target:  # microvlm.errors.X -> microvlm.errors
                target = target.rsplit(".", 1)[0]
            if target in modules and target != name:
                targets.add(target)
        graph[name] = targets
    return graph


def test_every_room_has_a_layer() -> None:
    rooms = {_room(m) for m in _graph()}
    assert rooms <= set(LAYERS), f"give these a layer in LAYERS: {sorted(rooms - set(LAYERS))}"


def test_imports_point_down() -> None:
    upward = [
        f"{module} (layer {LAYERS[_room(module)]}) imports {target} (layer {LAYERS[_room(target)]})"
        for module, targets in sorted(_graph().items())
        for target in sorted(targets)
        if target != "microvlm" and LAYERS[_room(target)] > LAYERS[_room(module)]
    ]
    assert not upward, "\n".join(upward)


def test_models_never_import_training_or_the_command_line() -> None:
    graph = _graph()
    bad = [
        (m, t) for m, ts in graph.items() if _room(m) == "models" for t in ts if _room(t) in ("train", "cli")
    ]
    assert not bad


def test_no_import_cycles() -> None:
    """At run time: an import under ``if TYPE_CHECKING:`` (an annotation) does not count."""
    graph = _graph(runtime_only=True)
    graph.pop("microvlm", None)  # the lazy public API imports on attribute access only
    for targets in graph.values():
        targets.discard("microvlm")
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("module", ["microvlm.errors", "microvlm.contracts.hookspecs"])
def test_the_bottom_imports_only_the_bottom(module: str) -> None:
    assert all(LAYERS[_room(t)] == 0 for t in _graph()[module])
