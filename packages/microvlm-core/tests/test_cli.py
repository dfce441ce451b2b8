"""The microvlm command line, driven through click's runner and as a real process."""

import json
import subprocess
import sys
import textwrap

import click
import pytest
from click.testing import CliRunner

from microvlm import hookimpl, load_plugins
from microvlm.cli import build_cli, info_cmd, plugins_cmd, recipe_cmd
from microvlm.cli.app import expand_multi_value
from microvlm.plugins.manager import Plugins, make_plugin_manager
from microvlm.testing.toys import TOY_RECIPE, ToyPlugin, ToyTaskConfig


@pytest.fixture(scope="module")
def cli():
    return build_cli(load_plugins(extra=[("toys", ToyPlugin())]))


def invoke(cli, *args):
    return CliRunner().invoke(cli, list(expand_multi_value(args)), catch_exceptions=False)


def test_help_lists_commands_and_seed_mapping(cli):
    result = invoke(cli, "--help")
    assert result.exit_code == 0
    for command in ("plugins", "recipe", "run"):
        assert command in result.output
    assert "train.py --cfg-path X --options k=v" in result.output


def test_version_lists_core(cli):
    result = invoke(cli, "--version")
    assert result.exit_code == 0
    assert result.output.startswith("microvlm-core ") or "\nmicrovlm-core " in result.output


def test_plugins_json_has_the_documented_keys(cli):
    result = invoke(cli, "plugins", "--json")
    rows = json.loads(result.output)
    assert {"kind", "name", "distribution", "version", "status"} <= set(rows[0])
    names = {(r["kind"], r["name"]) for r in rows}
    assert ("logger", "jsonl") in names and ("encoder", "toy_encoder") in names


def test_plugins_table(cli):
    result = invoke(cli, "plugins")
    assert result.exit_code == 0
    assert "toy_bridge" in result.output and "microvlm-core" in result.output


def test_recipe_check_ok_and_print(cli, tmp_path):
    path = tmp_path / "r.toml"
    path.write_text(TOY_RECIPE)
    result = invoke(cli, "recipe", "check", str(path), "--print", "--set", "run.seed=3")
    assert result.exit_code == 0, result.output
    assert f"ok   {path}" in result.output
    assert "seed = 3" in result.output and "num_queries = 4" in result.output  # default shown


def test_bad_recipe_is_one_clear_message_no_traceback(cli, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(TOY_RECIPE.replace("lr = 1e-3", "lr = 1e-3\nepochz = 2"))
    result = invoke(cli, "recipe", "check", str(path))
    assert result.exit_code == 1
    assert f"{path}: run.epochz: unknown key (did you mean 'epochs'?)" in result.output
    assert "Traceback" not in result.output


def test_run_missing_extends_fails_cleanly(cli, tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('extends = "missing.toml"\n')
    result = invoke(cli, "run", str(path))
    assert result.exit_code == 1
    assert f"Error: {path}: extends: file not found" in result.output
    assert "Traceback" not in result.output


def test_run_dry_run_applies_seed_options_and_shorthands(cli, tmp_path):
    path = tmp_path / "r.toml"
    path.write_text(TOY_RECIPE)
    result = invoke(
        cli,
        "run",
        "--cfg-path",
        str(path),
        "--options",
        "model.lora_r=32",
        "run.init_lr=3e-4",
        "--use-lora",
        "--dry-run",
    )
    assert result.exit_code == 0, result.output
    assert "note: 'model.lora_r' is now 'model.llm.lora_r'" in result.output
    assert "lora_r = 32" in result.output and 'adapter = "lora"' in result.output
    assert "lr = 0.0003" in result.output


def test_train_alias_and_exclusive_flags(cli, tmp_path):
    path = tmp_path / "r.toml"
    path.write_text(TOY_RECIPE)
    result = invoke(cli, "train", str(path), "--use-lora", "--use-qlora")
    assert result.exit_code == 2 and "exclusive" in result.output


def test_yaml_config_points_to_toml_recipe(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "stage1_alignment.toml").write_text(TOY_RECIPE)
    result = invoke(cli, "run", "--cfg-path", "train_configs/stage1_alignment.yaml")
    assert result.exit_code == 1
    assert "Try: microvlm run recipes/stage1_alignment.toml" in result.output


# -- short recipe names (issue 14, item 7) ---------------------------------------------


@pytest.fixture
def stage_dir(tmp_path, monkeypatch):
    """A working directory whose recipes/ holds the shipped names, each a toy recipe."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").mkdir()
    for name in ("stage1_alignment", "stage4_multitask", "qlora_training"):
        (tmp_path / "recipes" / f"{name}.toml").write_text(TOY_RECIPE)
    return tmp_path


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("recipes/stage4.toml", "recipes/stage4_multitask.toml"),  # the design card's example
        ("recipes/stage1.toml", "recipes/stage1_alignment.toml"),
        ("recipes/stage4", "recipes/stage4_multitask.toml"),
        ("recipes/qlora.toml", "recipes/qlora_training.toml"),
    ],
)
def test_short_recipe_names_resolve_for_run_and_check(cli, stage_dir, typed, meant):
    note = f"note: {typed} does not exist; using {meant}"
    run = invoke(cli, "run", typed, "--dry-run")
    assert run.exit_code == 0, run.output
    assert note in run.output and "lr = 0.001" in run.output
    check = invoke(cli, "recipe", "check", typed)
    assert check.exit_code == 0, check.output
    assert note in check.output and f"ok   {meant}" in check.output


def test_an_existing_recipe_is_never_renamed(cli, stage_dir):
    (stage_dir / "recipes" / "stage4.toml").write_text(TOY_RECIPE.replace("lr = 1e-3", "lr = 5e-3"))
    result = invoke(cli, "run", "recipes/stage4.toml", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "note:" not in result.output and "lr = 0.005" in result.output


def test_an_ambiguous_short_name_lists_the_candidates(cli, stage_dir):
    (stage_dir / "recipes" / "stage4_other.toml").write_text(TOY_RECIPE)
    result = invoke(cli, "recipe", "check", "recipes/stage4.toml")
    assert result.exit_code == 1
    assert (
        "recipes/stage4.toml: file not found; it could mean recipes/stage4_multitask.toml "
        "or recipes/stage4_other.toml" in result.output
    )


def test_an_unknown_short_name_is_still_not_found(cli, stage_dir):
    result = invoke(cli, "run", "recipes/stage9.toml")
    assert result.exit_code == 1 and "recipes/stage9.toml: file not found" in result.output


def test_expand_multi_value():
    assert expand_multi_value(["run", "x.toml", "--options", "a=1", "b=2", "--dry-run"]) == [
        "run",
        "x.toml",
        "--options",
        "a=1",
        "--options",
        "b=2",
        "--dry-run",
    ]
    assert expand_multi_value(["--set", "a=1", "x.toml"]) == ["--set", "a=1", "x.toml"]
    assert expand_multi_value(["--set"]) == ["--set"]
    assert expand_multi_value(["eval", "--tasks", "vqa", "captioning", "--limit", "5"]) == [
        "eval",
        "--tasks",
        "vqa",
        "--tasks",
        "captioning",
        "--limit",
        "5",
    ]


def test_help_and_plugins_do_not_import_torch():
    code = textwrap.dedent("""
        import sys
        from click.testing import CliRunner
        from microvlm.cli import build_cli
        cli = build_cli()
        for args in (["--help"], ["plugins"], ["plugins", "--json"]):
            result = CliRunner().invoke(cli, args)
            assert result.exit_code == 0, result.output
        heavy = sorted(m for m in ("torch", "transformers", "timm", "peft", "bitsandbytes") if m in sys.modules)
        print(",".join(heavy))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported at CLI start: {out.stdout}"


# -- a fast start (issue 14, item 8): what --help imports is what makes it slow ----------

HEAVY = ("torch", "transformers", "PIL", "numpy", "timm", "peft", "safetensors", "matplotlib")
RECIPE_MACHINERY = (
    "cattrs",
    "microvlm.recipes.load",
    "microvlm.recipes.config",
    "microvlm.recipes.structure",
)


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has imported after running ``code``."""
    report = "\nimport sys; print(','.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code + report], capture_output=True, text=True, check=True)
    return set(out.stdout.strip().splitlines()[-1].split(","))


def test_the_console_script_help_imports_nothing_heavy():
    # what the installed `microvlm` script runs, plugins from the entry points included
    code = textwrap.dedent("""
        import sys
        from microvlm.cli import main
        sys.argv = ["microvlm", "--help"]
        try:
            main()
        except SystemExit as exc:
            assert exc.code in (0, None), exc.code
    """)
    loaded = _modules_after(code)
    from importlib.metadata import entry_points

    from microvlm.plugins.manager import OUR_ENTRY_POINTS

    ours = {  # our plugin packages installed here (core's own session has core alone)
        ep.module.split(".")[0]
        for ep in entry_points(group="microvlm")
        if ep.dist is not None and ep.dist.name in OUR_ENTRY_POINTS.values()
    }
    assert "microvlm" in ours and ours <= loaded  # the installed plugins did load
    assert sorted(loaded & {*HEAVY, *RECIPE_MACHINERY}) == []


def test_import_microvlm_is_only_errors_and_hookimpl():
    loaded = _modules_after("import microvlm")
    assert (
        sorted(loaded & {*HEAVY, *RECIPE_MACHINERY, "importlib.metadata", "microvlm.plugins.manager"}) == []
    )
    names = _modules_after("import microvlm; microvlm.load_recipe; microvlm.__version__")
    assert {"microvlm.recipes.load", "importlib.metadata"} <= names and not names & set(HEAVY)


# -- plugin commands and plugin text (issue 13, items 5, 6 and 14) -----------------------


class _CommandPlugin:
    """Adds one command per name; each prints which plugin it came from."""

    def __init__(self, *names):
        self.names = names

    @hookimpl
    def register_commands(self, cli):
        for name in self.names:
            cli.add_command(click.Command(name, callback=lambda: click.echo("from the plugin")))


class _HalfCommandsPlugin:
    @hookimpl
    def register_commands(self, cli):
        cli.add_command(click.Command("half", callback=lambda: None))
        sys.exit(4)


def _installed(**plugins):
    """A Plugins of the given plugins, each as if installed by the distribution ``dist-<name>``."""
    pm = make_plugin_manager()
    for name, plugin in plugins.items():
        pm.register(plugin, name=name)
    return Plugins(pm, {name: (f"dist-{name}", "6.6.6") for name in plugins})


def test_a_plugin_cannot_replace_a_builtin_command(caplog):
    cli = build_cli(_installed(evil=_CommandPlugin("run", "plugins", "evil-extra")))
    assert cli.commands["run"] is recipe_cmd.run_command
    assert cli.commands["plugins"] is plugins_cmd.plugins_command
    assert "from the plugin" in invoke(cli, "evil-extra").output  # its other commands work
    assert "Run RECIPE: one training stage" in invoke(cli, "run", "--help").output
    assert "dist-evil" in caplog.text and "'run'" in caplog.text and "refused" in caplog.text
    rows = json.loads(invoke(cli, "plugins", "--json").output)
    refused = [(r["name"], r["distribution"], r["status"]) for r in rows if r["kind"] == "command"]
    assert refused == [
        ("plugins", "dist-evil", "refused: 'plugins' is a command of microvlm-core (built-in)"),
        ("run", "dist-evil", "refused: 'run' is a command of microvlm-core (built-in)"),
    ]


def test_a_plugin_cannot_replace_another_plugins_command():
    cli = build_cli(_installed(first=_CommandPlugin("shared"), second=_CommandPlugin("shared")))
    rows = json.loads(invoke(cli, "plugins", "--json").output)
    refused = [(r["name"], r["distribution"], r["status"]) for r in rows if r["kind"] == "command"]
    assert refused == [
        ("shared", "dist-second", "refused: 'shared' is a command of plugin 'first' (dist-first)")
    ]


def test_register_commands_that_exits_leaves_none_of_its_commands():
    cli = build_cli(_installed(half=_HalfCommandsPlugin()))
    assert "half" not in cli.commands
    rows = json.loads(invoke(cli, "plugins", "--json").output)
    assert [(r["name"], r["status"]) for r in rows if r["kind"] == "plugin"] == [
        ("half", "broken: SystemExit: the plugin called sys.exit(4)")
    ]


class _BracketsPlugin:
    @hookimpl
    def register_loggers(self, register):
        register("tracker", lambda config, **_: None, ToyTaskConfig, description="needs the [bold] extra")


class _BracketsErrorPlugin:
    @hookimpl
    def register_tasks(self, register):
        raise RuntimeError("bad [/] [red]")


def test_plugins_table_shows_brackets_literally():
    cli = build_cli(load_plugins(extra=[("brackets", _BracketsPlugin()), ("error", _BracketsErrorPlugin())]))
    result = invoke(cli, "plugins")
    assert result.exit_code == 0, result.output
    assert "Weights & Biases (the [wandb] extra)" in result.output  # core's own description
    assert "needs the [bold] extra" in result.output
    assert "broken: RuntimeError: bad [/] [red]" in result.output  # was a MarkupError


def test_model_info_table_shows_brackets_literally(capsys):
    part = {"component": "[wandb]", "parameters": 1, "trainable": 1, "dtype": "float32", "bytes": 4}
    total = {"parameters": 1, "trainable": 1, "bytes": 4}
    info_cmd._print_table({"run": "[/]run", "train": ["[bold]"], "parts": {"encoder": part}, "total": total})
    out = capsys.readouterr().out
    assert "[/]run: trains [bold]" in out and "[wandb]" in out


class _FullDiskPlugin:
    @hookimpl
    def register_commands(self, cli):
        import errno

        def write():
            raise OSError(errno.ENOSPC, "No space left on device", "out/metrics.jsonl")

        def other():
            raise OSError(errno.EACCES, "Permission denied", "out/x")

        cli.add_command(click.Command("fill", callback=write))
        cli.add_command(click.Command("deny", callback=other))


def test_a_full_disk_anywhere_is_one_clear_message():
    cli = build_cli(_installed(disk=_FullDiskPlugin()))
    result = CliRunner().invoke(cli, ["fill"])
    assert result.exit_code == 1, result.output
    assert "writing out/metrics.jsonl: the disk is full" in result.output
    assert "Traceback" not in result.output
    other = CliRunner().invoke(cli, ["deny"])
    assert isinstance(other.exception, PermissionError)  # only a full disk is translated
