"""Contracts checked when a component is built, and the conformance kit on core's own
components, the toys, a fixture exporter, and components that break the contract."""

from __future__ import annotations

import attrs
import pytest
import torch

from microvlm import hookimpl, load_plugins, load_recipe
from microvlm.contracts.quant import ExportReport, TensorGroup
from microvlm.errors import PluginError
from microvlm.models.llm.config import HFCausalLMConfig
from microvlm.models.qformer_config import QFormerConfig
from microvlm.models.vlm import MicroVLM
from microvlm.testing import conformance as kit
from microvlm.testing.fixtures import tiny_llm_path
from microvlm.testing.toys import ToyDataset, ToyDatasetConfig, ToyPlugin, toy_training_recipe


@attrs.frozen
class _Cfg:
    width: int = 4  # feature width


class _NoOutDim(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.data_config = {"input_size": (3, 8, 8), "mean": (0.5,) * 3, "std": (0.5,) * 3}
        self.patch_grid = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(2).transpose(1, 2)  # (B, 3, H, W) -> (B, H*W, 3)


class _BadEncoderPlugin:
    @hookimpl
    def register_encoders(self, register):
        register("no_out_dim", lambda config: _NoOutDim(), _Cfg)


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(extra=[("toys", ToyPlugin()), ("bad", _BadEncoderPlugin())])


def test_a_component_missing_a_member_is_refused_when_built(plugins):
    with pytest.raises(PluginError) as err:
        plugins.build("encoder", "no_out_dim")
    message = str(err.value)
    for part in (
        "encoder 'no_out_dim'",
        "plugin 'bad'",
        "<local>",
        "lacks out_dim",
        "microvlm.contracts.model.Encoder",
    ):
        assert part in message, (part, message)
    with pytest.raises(PluginError, match="lacks out_dim"):
        plugins.get("encoder", "no_out_dim").build()  # the component's own build checks too


@pytest.mark.parametrize(
    ("kind", "name", "context"),
    [
        ("encoder", "toy_encoder", {}),
        ("bridge", "toy_bridge", {"encoder_dim": 8}),
        ("dataset", "toy_dataset", {}),
        ("quantizer", "toy_quant", {}),
    ],
)
def test_the_toys_pass_the_kit(plugins, kind, name, context):
    kit.check_component(plugins.get(kind, name), **context)


def test_the_toy_task_passes_the_kit(plugins):
    samples = list(ToyDataset(ToyDatasetConfig(n=3)))
    task = kit.check_component(plugins.get("task", "toy_task"), samples=samples)
    assert task.score(["a red square"], samples[:1]) == {"exact_match": 1.0}


def test_the_toy_llm_and_core_llm_pass_the_kit(plugins):
    torch.manual_seed(0)
    kit.check_component(plugins.get("llm", "toy_llm"), plugins=plugins)
    config = HFCausalLMConfig(model=str(tiny_llm_path()), adapter="lora", lora_r=2)
    llm = kit.check_component(plugins.get("llm", "hf_causal_lm"), config, plugins=plugins)
    assert llm.adapter_state_dict()  # LoRA on: the adapter round trip ran


def test_the_qformer_passes_the_kit(plugins):
    config = QFormerConfig(num_queries=4, num_layers=1, hidden_size=32, num_heads=2)
    kit.check_component(plugins.get("bridge", "qformer"), config, encoder_dim=8)


@pytest.mark.parametrize("name", ["console", "jsonl"])
def test_core_loggers_pass_the_kit(plugins, name, tmp_path):
    kit.check_component(plugins.get("logger", name), tmp_path=tmp_path)


class _FolderExporter:
    """A fixture exporter: every tensor through save_pretrained, loaded back with from_pretrained."""

    def __init__(self, config: _Cfg) -> None:
        self.config = config

    def export(self, model, directory):
        model.save_pretrained(directory, weights="all")
        return self.estimate(model)

    def estimate(self, model):
        n = sum(p.numel() for p in model.parameters())
        return ExportReport((TensorGroup("all", n, 4 * n, "fp32"),))

    def load(self, directory, *, plugins, options=None):
        return MicroVLM.from_pretrained(directory, plugins)


def test_a_fixture_exporter_passes_the_kit(plugins, tmp_path):
    (tmp_path / "r.toml").write_text(toy_training_recipe(str(tmp_path / "out"), str(tiny_llm_path())))
    model = MicroVLM.from_config(load_recipe(tmp_path / "r.toml", plugins).model, plugins)
    loaded = kit.check_exporter(
        _FolderExporter, _Cfg(), model=model, plugins=plugins, directory=tmp_path / "x"
    )
    assert isinstance(loaded, MicroVLM)


# -- the kit fails, naming the component and the problem ---------------------------------


class _ShortQueries(torch.nn.Module):
    out_dim, num_queries = 4, 3

    def forward(self, features, return_attentions=False):
        return attrs.make_class("Out", ["queries", "cross_attentions"])(features[:, :1, :4], None)


def test_a_bridge_with_the_wrong_query_count_fails(plugins):
    with pytest.raises(
        kit.ConformanceError, match=r"bridge 'short': queries .* are \(2, 1, 4\), expected \[2, 3, 4\]"
    ):
        kit.check_bridge(lambda config, encoder_dim: _ShortQueries(), _Cfg(), encoder_dim=8, name="short")


def test_a_dataset_giving_dicts_fails(plugins):
    class Dicts(ToyDataset):
        def __getitem__(self, index):
            return {"id": str(index)}

    with pytest.raises(kit.ConformanceError, match="dataset 'dicts': builder\\[0\\] is a dict, not a Sample"):
        kit.check_dataset(Dicts, ToyDatasetConfig(n=2), name="dicts")


def test_a_task_with_a_plain_dict_summary_fails(plugins):
    task_cls = type(plugins.build("task", "toy_task"))

    class DictSummary(task_cls):
        def summarize(self, metrics):
            return dict(metrics)

    samples = list(ToyDataset(ToyDatasetConfig(n=2)))
    with pytest.raises(kit.ConformanceError, match="task 'ds': summarize gave dict, not a TaskSummary"):
        kit.check_task(DictSummary, _toy_task_config(), samples=samples, name="ds")


def _toy_task_config():
    from microvlm.testing.toys import ToyTaskConfig

    return ToyTaskConfig()


def test_missing_members_are_all_named(plugins):
    with pytest.raises(
        kit.ConformanceError, match="quantizer 'empty': object lacks describe, quantization_config"
    ):
        kit.check_quantizer(lambda config: object(), _Cfg(), name="empty")
