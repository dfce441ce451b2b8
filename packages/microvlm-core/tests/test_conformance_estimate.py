"""The conformance kit holds an exporter's ``estimate`` to the report its ``export`` wrote."""

from __future__ import annotations

import attrs
import pytest

from microvlm import load_plugins, load_recipe
from microvlm.contracts.quant import ExportReport, TensorGroup
from microvlm.models.pretrained import all_tensors
from microvlm.models.vlm import MicroVLM
from microvlm.testing import conformance as kit
from microvlm.testing.fixtures import tiny_llm_path
from microvlm.testing.toys import ToyPlugin, toy_training_recipe


@attrs.frozen
class _Cfg:
    """No settings."""


class _Exporter:
    """Every tensor through save_pretrained; ``estimate`` off by ``drift`` bytes."""

    drift = 0

    def __init__(self, config: _Cfg) -> None:
        self.config = config

    def export(self, model, directory):
        model.save_pretrained(directory, weights="all")
        return self._report(model, 0)

    def estimate(self, model):
        return self._report(model, self.drift)

    def _report(self, model, drift):
        tensors = all_tensors(model).values()
        n = sum(t.numel() for t in tensors)
        return ExportReport(
            (TensorGroup("all", n, sum(t.numel() * t.element_size() for t in tensors) + drift, "as is"),)
        )

    def load(self, directory, *, plugins, options=None):
        return MicroVLM.from_pretrained(directory, plugins)


class _Drifting(_Exporter):
    drift = 4


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    plugins = load_plugins(extra=[("toys", ToyPlugin())])
    folder = tmp_path_factory.mktemp("r")
    (folder / "r.toml").write_text(toy_training_recipe(str(folder / "out"), str(tiny_llm_path())))
    return plugins, MicroVLM.from_config(load_recipe(folder / "r.toml", plugins).model, plugins)


def test_an_estimate_equal_to_the_export_passes(setup, tmp_path):
    plugins, model = setup
    assert isinstance(kit.check_exporter(_Exporter, _Cfg(), model=model, plugins=plugins), MicroVLM)


def test_an_estimate_that_drifts_from_the_export_fails(setup):
    plugins, model = setup
    with pytest.raises(kit.ConformanceError, match=r"exporter 'drift': estimate of the model lists groups"):
        kit.check_exporter(_Drifting, _Cfg(), model=model, plugins=plugins, name="drift")


def test_an_exporter_without_estimate_fails(setup):
    plugins, model = setup

    class Old:
        def __init__(self, config):
            pass

        export = _Exporter.export
        load = _Exporter.load

    with pytest.raises(kit.ConformanceError, match="lacks estimate"):
        kit.check_exporter(Old, _Cfg(), model=model, plugins=plugins, name="old")
