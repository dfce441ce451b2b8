"""The registry rules: duplicates, unknown names, broken plugins, the allow-list."""

import sys

import attrs
import pytest

from microvlm import hookimpl, load_plugins
from microvlm.errors import DuplicateComponentError, PluginError, UnknownComponentError
from microvlm.plugins.manager import (
    OUR_ENTRY_POINTS,
    allowed_distributions,
    entry_points_in_load_order,
    normalize_dist,
)
from microvlm.testing.fake_dist import write_distribution
from microvlm.testing.toys import ToyEncoderConfig, ToyPlugin


@attrs.frozen
class _Cfg:
    size: int = 1  # a size


class _EncoderPlugin:
    def __init__(self, name):
        self.name = name

    @hookimpl
    def register_encoders(self, register):
        register(self.name, lambda config, **_: ("built", config), _Cfg, description="test encoder")


class _RaisingPlugin:
    @hookimpl
    def register_datasets(self, register):
        register("good_before_error", lambda c: c, _Cfg)
        raise RuntimeError("boom in hook")

    @hookimpl
    def register_encoders(self, register):
        register("from_broken", lambda c: c, _Cfg)


def test_throwaway_plugin_registers_and_builds():
    plugins = load_plugins(entry_points=False, extra=[("mine", _EncoderPlugin("my_vit"))])
    component = plugins.get("encoder", "my_vit")
    assert component.config_cls is _Cfg
    assert component.distribution == "<local>"
    assert component.factory(_Cfg()) == ("built", _Cfg())
    with pytest.raises(
        PluginError, match=r"encoder 'my_vit' of plugin 'mine'.*lacks __call__, data_config, out_dim"
    ):
        plugins.build("encoder", "my_vit", _Cfg(size=3))  # a tuple is no encoder: refused when built


def test_plugin_can_be_unregistered():
    plugins = load_plugins(entry_points=False)
    plugin = _EncoderPlugin("temp")
    plugins.pm.register(plugin, name="temp")
    try:
        assert plugins.pm.has_plugin("temp")
    finally:
        plugins.pm.unregister(plugin)
    assert not plugins.pm.has_plugin("temp")


def test_core_builtins_come_through_entry_points():
    plugins = load_plugins()
    console = plugins.get("logger", "console")
    assert console.distribution == "microvlm-core"
    assert console.plugin == "core"
    assert "microvlm-core" in plugins.distributions()


def test_duplicate_name_is_an_error_naming_both():
    plugins = load_plugins(
        entry_points=False, extra=[("a", _EncoderPlugin("dup")), ("b", _EncoderPlugin("dup"))]
    )
    with pytest.raises(DuplicateComponentError) as err:
        plugins.get("encoder", "dup")
    message = str(err.value)
    assert "plugin 'a'" in message and "plugin 'b'" in message
    assert message.index("plugin 'a'") < message.index("plugin 'b'")  # in load order
    assert [len(g) for g in plugins.duplicates()] == [2]


def test_unknown_name_lists_registered_names_and_suggests():
    plugins = load_plugins(entry_points=False, extra=[("toys", ToyPlugin())])
    with pytest.raises(UnknownComponentError) as err:
        plugins.get("encoder", "toy_encodr")
    message = str(err.value)
    assert "did you mean 'toy_encoder'" in message
    assert "Available encoders: toy_encoder" in message


def test_unknown_builtin_of_missing_package_says_pip_install(monkeypatch):
    monkeypatch.setattr("microvlm.plugins.manager._installed", lambda dist: False)
    plugins = load_plugins(entry_points=False)
    with pytest.raises(UnknownComponentError, match="pip install microvlm-datasets"):
        plugins.get("dataset", "vqav2")


def test_unknown_builtin_of_unloaded_package_points_at_allow_list(monkeypatch):
    monkeypatch.setattr("microvlm.plugins.manager._installed", lambda dist: True)
    plugins = load_plugins(entry_points=False)
    with pytest.raises(UnknownComponentError, match="MICROVLM_LOAD_PLUGINS"):
        plugins.get("task", "vqa")


def test_name_of_another_kind_is_pointed_out():
    plugins = load_plugins(entry_points=False, extra=[("toys", ToyPlugin())])
    with pytest.raises(UnknownComponentError, match="'toy_dataset' is a dataset, not an encoder"):
        plugins.get("encoder", "toy_dataset")


def test_broken_hook_is_reported_and_others_keep_working():
    plugins = load_plugins(entry_points=False, extra=[("bad", _RaisingPlugin()), ("toys", ToyPlugin())])
    assert [(b.plugin, b.error) for b in plugins.broken] == [("bad", "RuntimeError: boom in hook")]
    # nothing the broken plugin registered survives, in any hook
    assert "good_before_error" not in plugins.names("dataset")
    assert "from_broken" not in plugins.names("encoder")
    assert plugins.get("encoder", "toy_encoder").config_cls is ToyEncoderConfig


def test_register_rejects_non_attrs_config():
    class Bad:
        @hookimpl
        def register_tasks(self, register):
            register("t", lambda c: c, dict)

    plugins = load_plugins(entry_points=False, extra=[("bad", Bad())])
    assert "must be an attrs class" in plugins.broken[0].error


def test_allow_list_parsing():
    assert allowed_distributions("") == frozenset()
    assert allowed_distributions("MicroVLM_Encoders, microvlm-tasks") == {
        "microvlm-encoders",
        "microvlm-tasks",
    }
    assert normalize_dist("a.b_c") == "a-b-c"


def test_allow_list_restricts_to_core(monkeypatch):
    monkeypatch.setenv("MICROVLM_LOAD_PLUGINS", "")
    plugins = load_plugins()
    assert set(plugins.distributions()) == {"microvlm-core"}


def test_unknown_kind_is_a_value_error():
    with pytest.raises(ValueError, match="unknown component kind"):
        load_plugins(entry_points=False).names("gizmo")


# -- plugins that exit, impostors (issue 13, items 6 and 7) -----------------------------


@pytest.fixture
def install(tmp_path, monkeypatch):
    """Install fake distributions into a folder on sys.path; forget their modules afterwards."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    modules: list[str] = []

    def install_(name, entry_points, sources=None):
        modules.extend(sources or {})
        return write_distribution(site, name, entry_points, sources)

    yield install_
    for module in modules:
        sys.modules.pop(module, None)


EXITING_AT_IMPORT = {
    "sys.exit": "import sys\nsys.exit(3)\n",
    "argparse": (
        "import argparse\n"
        "parser = argparse.ArgumentParser()\n"
        "parser.add_argument('--only-mine', required=True)\n"
        "parser.parse_args()\n"
    ),
}


@pytest.mark.parametrize("source", EXITING_AT_IMPORT.values(), ids=list(EXITING_AT_IMPORT))
def test_plugin_that_exits_at_import_is_listed_broken(install, source):
    install("exiting-plugin", {"exits": "exiting_plugin"}, {"exiting_plugin": source})
    plugins = load_plugins()
    broken = {b.plugin: b for b in plugins.broken}
    assert broken["exits"].distribution == "exiting-plugin"
    assert broken["exits"].error.startswith("SystemExit: the plugin called sys.exit(")
    assert plugins.get("logger", "console").distribution == "microvlm-core"  # the rest works


class _ExitingHook:
    @hookimpl
    def register_encoders(self, register):
        sys.exit("no encoders today")


def test_hook_that_exits_is_listed_broken():
    plugins = load_plugins(entry_points=False, extra=[("bad", _ExitingHook()), ("toys", ToyPlugin())])
    assert [(b.plugin, b.error) for b in plugins.broken] == [
        ("bad", "SystemExit: the plugin called sys.exit('no encoders today')")
    ]
    assert "toy_encoder" in plugins.names("encoder")


class _InterruptedHook:
    @hookimpl
    def register_tasks(self, register):
        raise KeyboardInterrupt


def test_ctrl_c_in_a_plugin_is_not_swallowed(install):
    with pytest.raises(KeyboardInterrupt):
        load_plugins(entry_points=False, extra=[("ctrl_c", _InterruptedHook())])
    install("ctrl-c-plugin", {"ctrl_c": "ctrl_c_plugin"}, {"ctrl_c_plugin": "raise KeyboardInterrupt\n"})
    with pytest.raises(KeyboardInterrupt):
        load_plugins()


@pytest.mark.parametrize("value", ["aaa_evil", "microvlm_encoders.plugin"], ids=["own-module", "our-module"])
def test_impostor_of_our_entry_point_name_is_refused(install, value):
    evil = "from microvlm import hookimpl\n\n@hookimpl\ndef register_encoders(register):\n    raise AssertionError\n"
    install("aaa-evil", {"encoders": value}, {"aaa_evil": evil})
    plugins = load_plugins()
    impostor = [b for b in plugins.broken if b.distribution == "aaa-evil"]
    assert [b.plugin for b in impostor] == ["encoders"]
    assert "belongs to microvlm-encoders" in impostor[0].error and "aaa-evil" in impostor[0].error
    assert "aaa_evil" not in sys.modules  # its code never ran
    assert plugins.origin("encoders")[0] != "aaa-evil"
    assert all(c.distribution != "aaa-evil" for c in plugins.components())
    assert not [b for b in plugins.broken if normalize_dist(b.distribution) in OUR_ENTRY_POINTS.values()]


def test_our_distributions_load_first_and_others_by_name(install):
    install("aaa-first", {"zzz": "aaa_first"}, {"aaa_first": ""})
    order = [normalize_dist(ep.dist.name) for ep in entry_points_in_load_order()]
    assert order[0] == "microvlm-core"
    ours = [i for i, d in enumerate(order) if d in OUR_ENTRY_POINTS.values()]
    assert ours == list(range(len(ours)))  # ours before any third party
    assert order.index("aaa-first") == len(ours)
