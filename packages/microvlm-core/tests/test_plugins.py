"""The registry rules: duplicates, unknown names, broken plugins, the allow-list."""

import attrs
import pytest

from microvlm import hookimpl, load_plugins
from microvlm.errors import DuplicateComponentError, UnknownComponentError
from microvlm.plugins import allowed_distributions, normalize_dist
from microvlm.toys import ToyEncoderConfig, ToyPlugin


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
    assert component.build() == ("built", _Cfg())
    assert plugins.build("encoder", "my_vit", _Cfg(size=3)) == ("built", _Cfg(size=3))


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
    assert [len(g) for g in plugins.duplicates()] == [2]


def test_unknown_name_lists_registered_names_and_suggests():
    plugins = load_plugins(entry_points=False, extra=[("toys", ToyPlugin())])
    with pytest.raises(UnknownComponentError) as err:
        plugins.get("encoder", "toy_encodr")
    message = str(err.value)
    assert "did you mean 'toy_encoder'" in message
    assert "Available encoders: toy_encoder" in message


def test_unknown_builtin_of_missing_package_says_pip_install(monkeypatch):
    monkeypatch.setattr("microvlm.plugins._installed", lambda dist: False)
    plugins = load_plugins(entry_points=False)
    with pytest.raises(UnknownComponentError, match="pip install microvlm-datasets"):
        plugins.get("dataset", "vqav2")


def test_unknown_builtin_of_unloaded_package_points_at_allow_list(monkeypatch):
    monkeypatch.setattr("microvlm.plugins._installed", lambda dist: True)
    plugins = load_plugins(entry_points=False)
    with pytest.raises(UnknownComponentError, match="MICROVLM_LOAD_PLUGINS"):
        plugins.get("task", "vqa")


def test_name_of_another_kind_is_pointed_out():
    plugins = load_plugins(entry_points=False, extra=[("toys", ToyPlugin())])
    with pytest.raises(UnknownComponentError, match="'toy_dataset' is a dataset, not a encoder"):
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
