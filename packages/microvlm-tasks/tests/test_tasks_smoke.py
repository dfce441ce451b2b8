"""microvlm-tasks as installed: version, public API, entry point, light imports."""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys

import microvlm
import microvlm_tasks
import microvlm_tasks.metrics

TASKS = {"pretrain", "captioning", "vqa", "aokvqa_da", "aokvqa_mc", "grounding", "instruct"}


def test_version_matches_installed_distribution() -> None:
    assert microvlm_tasks.__version__ == md.version("microvlm-tasks")


def test_public_api_resolves() -> None:
    for module in (microvlm_tasks, microvlm_tasks.metrics):
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"


def test_entry_point_registers_the_tasks() -> None:
    eps = {ep.name: ep for ep in md.entry_points(group="microvlm")}
    assert eps["tasks"].value == "microvlm_tasks.plugin"
    plugins = microvlm.load_plugins(allow=["microvlm-tasks"])
    assert set(plugins.names("task")) >= TASKS
    for name in TASKS:
        component = plugins.get("task", name)
        assert component.distribution == "microvlm-tasks"
        assert component.version == microvlm_tasks.__version__


def test_plugin_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, microvlm_tasks.plugin\n"
        "heavy = [m for m in ('torch', 'transformers', 'PIL', 'pycocoevalcap', 'numpy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
