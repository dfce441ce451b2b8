"""A third-party plugin package (tests/plugins/microvlm-toy-plugin), installed like a user's,
appears in `microvlm plugins` and works from a recipe; a plugin that fails to import
(tests/plugins/microvlm-broken-plugin) is reported and takes nothing else down."""

import json
import os
import subprocess
import sys

from microvlm import load_plugins
from microvlm.recipes.load import load_recipe
from microvlm.testing.fake_dist import write_distribution
from microvlm.testing.toys import TOY_RECIPE, ToyPlugin


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "microvlm", *args], capture_output=True, text=True, env=env, check=False
    )


def test_plugins_json_lists_the_third_party_plugin_and_the_broken_one():
    result = run_cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    by_name = {(r["kind"], r["name"]): r for r in rows}
    toy = by_name[("encoder", "toy_patch")]
    assert (toy["distribution"], toy["version"], toy["status"]) == ("microvlm-toy-plugin", "0.0.1", "ok")
    assert by_name[("dataset", "toy_colours")]["distribution"] == "microvlm-toy-plugin"
    broken = by_name[("plugin", "broken")]
    assert broken["distribution"] == "microvlm-broken-plugin"
    assert broken["status"].startswith("broken: ImportError: microvlm-broken-plugin is broken on purpose")
    assert by_name[("logger", "jsonl")]["status"] == "ok"  # the rest keeps working
    for row in rows:
        assert row["version"] or row["distribution"] == "<local>", row


def test_allow_list_keeps_only_named_distributions():
    env = {**os.environ, "MICROVLM_LOAD_PLUGINS": "microvlm-toy-plugin"}
    rows = json.loads(run_cli("plugins", "--json", env=env).stdout)
    assert {r["distribution"] for r in rows} == {"microvlm-core", "microvlm-toy-plugin"}


def test_third_party_components_work_from_a_recipe(tmp_path):
    import torch

    recipe_text = TOY_RECIPE.replace('name = "toy_encoder"', 'name = "toy_patch"\nwidth = 12').replace(
        'dataset = "toy_dataset"', 'dataset = "toy_colours"\nn = 3'
    )
    (tmp_path / "r.toml").write_text(recipe_text)
    plugins = load_plugins(extra=[("toys", ToyPlugin())])
    recipe = load_recipe(tmp_path / "r.toml", plugins)
    spec = recipe.model.encoder
    encoder = plugins.build("encoder", spec.name, spec.config)
    features = encoder(torch.zeros(2, 3, 32, 32))
    assert features.shape == (2, 16, 12)  # (B, N, D_v): 4x4 patches of 8 px, width 12
    entry = recipe.data[0].dataset
    samples = list(plugins.build("dataset", entry.name, entry.config))
    assert [s.captions for s in samples] == [("a red square",), ("a green square",), ("a blue square",)]
    assert samples[1].image.open().getpixel((0, 0)) == (0, 255, 0)


def test_third_party_config_is_strict(tmp_path):
    (tmp_path / "r.toml").write_text(
        TOY_RECIPE.replace('name = "toy_encoder"', 'name = "toy_patch"\npatchsize = 4')
    )
    result = run_cli("recipe", "check", str(tmp_path / "r.toml"))
    assert result.returncode == 1
    assert "model.encoder.patchsize: unknown key (did you mean 'patch'?)" in result.stderr


def test_impostor_and_exiting_plugins_do_not_take_anything_down(tmp_path):
    """A distribution sorting before ours that claims the entry point `encoders`, and one that
    calls sys.exit() at import, are both listed as broken; ours and every command keep working."""
    site = write_distribution(
        tmp_path, "aaa-evil", {"encoders": "aaa_evil"}, {"aaa_evil": "raise SystemExit"}
    )
    write_distribution(site, "aaa-exits", {"exits": "aaa_exits"}, {"aaa_exits": "import sys\nsys.exit(2)\n"})
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
    }
    result = run_cli("plugins", "--json", env=env)
    assert result.returncode == 0, result.stderr
    by_name = {(r["kind"], r["name"], r["distribution"]): r for r in json.loads(result.stdout)}
    assert by_name[("encoder", "deit_tiny", "microvlm-encoders")]["status"] == "ok"
    impostor = by_name[("plugin", "encoders", "aaa-evil")]["status"]
    assert impostor.startswith(
        "broken: PluginError: entry point name 'encoders' belongs to microvlm-encoders"
    )
    exits = by_name[("plugin", "exits", "aaa-exits")]["status"]
    assert exits == "broken: SystemExit: the plugin called sys.exit(2)"
    assert run_cli("--help", env=env).returncode == 0


def test_third_party_components_pass_the_conformance_kit():
    from microvlm.testing.conformance import check_component

    plugins = load_plugins(allow=["microvlm-toy-plugin"])
    encoder = check_component(plugins.get("encoder", "toy_patch"))
    assert encoder.patch_grid == (4, 4)  # 32 px in 8 px patches
    builder = check_component(plugins.get("dataset", "toy_colours"))
    assert [builder[i].captions for i in range(len(builder))][:2] == [("a red square",), ("a green square",)]
