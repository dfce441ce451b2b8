"""Fuzzing recipes (#13): whatever the bytes of a recipe file or the text of a ``--set``
value, the recipe loader either succeeds or raises :class:`~microvlm.errors.MicroVLMError`
with a message, and ``microvlm recipe check`` exits 0 or 1 with no traceback — never
another exception, never a hang.

Bounded for CI: a few hundred examples in all (the file runs in well under a minute on
two slow cores); the deadline only catches hangs, it is far above any example's time.
No example database is written (nothing lands in the checkout).
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from microvlm import load_plugins
from microvlm.cli import build_cli
from microvlm.errors import MicroVLMError
from microvlm.recipes.load import load_recipe
from microvlm.testing.toys import TOY_RECIPE, ToyPlugin

REPO_RECIPES = Path(__file__).resolve().parents[3] / "recipes"

FUZZ = settings(
    max_examples=200,
    deadline=timedelta(seconds=30),  # a hang, not a slow machine
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Keys that exist somewhere in a recipe, so that generated values reach the validators.
KNOWN_KEYS = (
    "extends",
    "run.name",
    "run.output_dir",
    "run.init_from",
    "run.seed",
    "run.epochs",
    "run.max_steps",
    "run.batch_size",
    "run.lr",
    "run.min_lr_ratio",
    "run.weight_decay",
    "run.max_grad_norm",
    "run.precision",
    "run.device",
    "run.train",
    "run.max_bad_fraction",
    "model.encoder.name",
    "model.encoder.width",
    "model.bridge.name",
    "model.bridge.num_queries",
    "model.bridge.norm",
    "model.llm.name",
    "model.llm.adapter",
    "model.projection.dropout",
    "model.projection.activation",
    "data",
    "data.0.dataset",
    "data.0.task",
    "data.0.weight",
    "data.0.n",
    "eval.every_steps",
    "eval.data",
    "loggers",
    "loggers.0.name",
    "stages",
    "stages.0",
    "stages.0.recipe",
    "stages.0.overrides",
    "stages.1.overrides.run",
    "stages.2.overrides.run.lr",
    "stages.3.x",
)

#: TOML-looking values: numbers at and past every limit, non-finite floats, odd strings.
TOML_VALUES = st.sampled_from(
    [
        "inf",
        "-inf",
        "nan",
        "+nan",
        "1e999",
        "-1e-999",
        "0",
        "-1",
        "4294967296",
        "9223372036854775807",
        "9223372036854775808",
        "1" + "0" * 5000,
        "0x7fffffffffffffff",
        "1979-05-27T07:32:00Z",
        "true",
        "[]",
        "{}",
        "[1, 2.5, 'x']",
        "{a = {b = 1}}",
        '"cuda:01"',
        '"cuda:127"',
        '"cuda:128"',
        '"\\u0000"',
        "'''\n'''",
        "[" * 2000 + "]" * 2000,
        "{a = " * 500 + "1" + "}" * 500,
    ]
)


def _seed_recipes() -> list[tuple[str, bytes]]:
    """``(path relative to the recipes folder, bytes)`` of every shipped recipe, and the toy one."""
    seeds = [("toy.toml", TOY_RECIPE.encode())]
    if REPO_RECIPES.is_dir():
        seeds += [
            (str(p.relative_to(REPO_RECIPES)), p.read_bytes()) for p in sorted(REPO_RECIPES.rglob("*.toml"))
        ]
    return seeds


SEEDS = _seed_recipes()


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(extra=[("toys", ToyPlugin())])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, plugins):
    """A copy of recipes/ (so mutated recipes still find what they extend), warmed up."""
    pytest.importorskip("torch")  # the device check may import it: not inside a timed example
    root = tmp_path_factory.mktemp("fuzz")
    if REPO_RECIPES.is_dir():
        shutil.copytree(REPO_RECIPES, root, dirs_exist_ok=True)
    (root / "toy.toml").write_text(TOY_RECIPE)
    load_recipe(root / "toy.toml", plugins, ["run.device=xla"])  # first-use imports
    return root


@pytest.fixture(scope="module")
def cli(plugins):
    return build_cli(plugins)


def loads_or_fails_cleanly(path: Path, plugins, overrides=()) -> None:
    """The property: success, or a MicroVLMError with a message of bounded size."""
    try:
        load_recipe(path, plugins, list(overrides), check_output_dir=True)
    except MicroVLMError as exc:
        message = str(exc)
        assert message.strip(), "an error without a message"
        assert len(message) < 50_000, f"an error of {len(message)} characters"


def checks_cleanly(cli, path: Path, overrides=()) -> None:
    """``microvlm recipe check``: exit 0 or 1, no traceback, no exception escaping click."""
    args = ["recipe", "check", str(path)]
    for override in overrides:
        args += ["--set", override]
    result = CliRunner().invoke(cli, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 1:
        assert "FAIL" in result.output or "Error:" in result.output


# -------------------------------------------------------------------------------------
# Recipe text
# -------------------------------------------------------------------------------------


@FUZZ
@given(data=st.binary(max_size=2000))
@example(data=b"\xff\xfe" + TOY_RECIPE.encode("utf-16-le"))
@example(data=b"\xef\xbb\xbf" + TOY_RECIPE.encode())
@example(data=b"\xff\xfe\x00")
@example(data=TOY_RECIPE.encode("utf-16-le"))
def test_random_bytes(workdir, plugins, data):
    path = workdir / "bytes.toml"
    path.write_bytes(data)
    loads_or_fails_cleanly(path, plugins)


TOML_ALPHABET = st.sampled_from(list("[]{}=\"'.,#\n\t \\abcdenrstu0123456789-+_:eExob")) | st.characters()


@FUZZ
@given(text=st.text(TOML_ALPHABET, max_size=400))
def test_random_toml_like_text(workdir, plugins, text):
    path = workdir / "text.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    loads_or_fails_cleanly(path, plugins)


@st.composite
def mutated_recipe(draw) -> tuple[str, bytes]:
    """A shipped recipe with a few byte-level edits: flips, deletions, insertions, repeats."""
    name, data = draw(st.sampled_from(SEEDS))
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(buf)))
        op = draw(st.sampled_from(["flip", "delete", "insert", "repeat", "truncate", "value"]))
        if op == "flip" and at < len(buf):
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "delete":
            del buf[at : at + draw(st.integers(1, 40))]
        elif op == "insert":
            buf[at:at] = draw(st.binary(min_size=1, max_size=20))
        elif op == "repeat":
            buf[at:at] = buf[at : at + draw(st.integers(1, 200))] * draw(st.integers(2, 50))
        elif op == "truncate":
            del buf[at:]
        elif op == "value":  # replace the rest of a line with a TOML value at a limit
            end = buf.find(b"\n", at)
            buf[at : end if end >= 0 else len(buf)] = draw(TOML_VALUES).encode()
    return name, bytes(buf)


@FUZZ
@given(recipe=mutated_recipe())
def test_mutated_shipped_recipes(workdir, plugins, recipe):
    name, data = recipe
    path = workdir / Path(name).parent / "_mutated.toml"  # beside the original: extends resolve
    path.write_bytes(data)
    loads_or_fails_cleanly(path, plugins)


@FUZZ
@given(
    kind=st.sampled_from(["array", "inline", "dotted", "header", "array-of-tables"]),
    depth=st.integers(1, 3000),
)
def test_deep_nesting(workdir, plugins, kind, depth):
    text = {
        "array": "x = " + "[" * depth + "]" * depth,
        "inline": "x = " + "{a = " * depth + "1" + "}" * depth,
        "dotted": "x" + ".a" * depth + " = 1",
        "header": "[x" + ".a" * depth + "]\nb = 1",
        "array-of-tables": "[[x" + ".a" * depth + "]]\nb = 1",
    }[kind]
    path = workdir / "deep.toml"
    path.write_text(TOY_RECIPE + "\n" + text + "\n")
    loads_or_fails_cleanly(path, plugins)


@settings(FUZZ, max_examples=25)
@given(length=st.integers(1, 150), fan_out=st.integers(1, 3))
def test_extends_chains_and_trees(workdir, plugins, length, fan_out):
    folder = Path(tempfile.mkdtemp(dir=workdir))
    try:
        for i in range(length):
            parents = ", ".join([f'"e{i + 1}.toml"'] * fan_out)
            (folder / f"e{i}.toml").write_text(f"extends = [{parents}]\n")
        (folder / f"e{length}.toml").write_text(TOY_RECIPE)
        loads_or_fails_cleanly(folder / "e0.toml", plugins)
    finally:
        shutil.rmtree(folder)


# -------------------------------------------------------------------------------------
# Values: typed TOML in any section, and --set
# -------------------------------------------------------------------------------------

TOML_SCALARS = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.booleans()
)
TOML_TREES = st.recursive(
    TOML_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@FUZZ
@given(
    key=st.sampled_from(KNOWN_KEYS) | st.text(min_size=1, max_size=20),
    value=TOML_TREES,
    recipe=st.sampled_from(["toy.toml", "pipeline.toml"]),
)
def test_any_value_in_any_place(workdir, plugins, key, value, recipe):
    import tomli_w

    from microvlm.recipes.load import load_table, set_path

    if not (workdir / recipe).is_file():
        recipe = "toy.toml"
    table = load_table(workdir / recipe)
    try:
        set_path(table, key.split("."), value, origin="x")
    except MicroVLMError:
        return  # the path is not settable in this table: the --set tests cover that
    try:
        text = tomli_w.dumps(table.data)
    except (TypeError, ValueError):  # not representable in TOML (e.g. a key "")
        return
    path = workdir / "typed.toml"
    path.write_text(text)
    loads_or_fails_cleanly(path, plugins)


OVERRIDE_VALUES = TOML_VALUES | st.text(max_size=40) | TOML_SCALARS.map(str)


@FUZZ
@given(
    overrides=st.lists(
        st.tuples(st.sampled_from(KNOWN_KEYS) | st.text(max_size=20), OVERRIDE_VALUES).map("=".join)
        | st.text(max_size=40),
        min_size=1,
        max_size=3,
    ),
    recipe=st.sampled_from(["toy.toml", "pipeline.toml", "stage2_lora.toml"]),
)
@example(overrides=["extends=toy.toml"], recipe="toy.toml")
@example(overrides=["run.seed=" + "9" * 30], recipe="pipeline.toml")
@example(overrides=["run.epochs=1" + "0" * 5000], recipe="toy.toml")
@example(overrides=["run.train=" + "[" * 3000 + "]" * 3000], recipe="toy.toml")
@example(overrides=["run" + ".a" * 3000 + "=1"], recipe="toy.toml")
@example(overrides=["run.output_dir=toy.toml/x", "run.device=tpu"], recipe="toy.toml")
def test_set_values(workdir, plugins, overrides, recipe):
    path = workdir / recipe
    if not path.is_file():
        path = workdir / "toy.toml"
    loads_or_fails_cleanly(path, plugins, overrides)


# -------------------------------------------------------------------------------------
# Through the command line
# -------------------------------------------------------------------------------------


@settings(FUZZ, max_examples=60)
@given(
    recipe=mutated_recipe(),
    overrides=st.lists(
        st.tuples(st.sampled_from(KNOWN_KEYS), OVERRIDE_VALUES.filter(lambda v: "\0" not in v)).map("=".join),
        max_size=2,
    ),
)
def test_recipe_check_command(workdir, cli, recipe, overrides):
    name, data = recipe
    path = workdir / Path(name).parent / "_cli.toml"
    path.write_bytes(data)
    checks_cleanly(cli, path, overrides)


def test_recipe_check_command_on_the_shipped_recipes(workdir, cli):
    for name, _ in SEEDS:
        checks_cleanly(cli, workdir / name)
