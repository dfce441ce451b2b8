"""Conformance checks of the model's parts: encoders, bridges, language models, exporters.

Each check builds the component as core does and runs it on a small batch, holding the result
to the shapes :mod:`microvlm.contracts.model` and :mod:`microvlm.contracts.quant` promise.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from microvlm.testing.conformance_base import build_checked, finite, label_of, require, shape

BATCH = 2  # images per test batch


def check_encoder(factory: Callable[..., Any], config: Any, *, name: str | None = None) -> Any:
    """Build an encoder and run it on a ``[2, 3, H, W]`` batch sized by its ``data_config``.

    Checks ``[2, N, out_dim]`` finite features and a ``patch_grid`` of at most ``N`` tokens.
    :returns: the encoder, for further checks of the plugin's own.
    """
    import torch

    label = label_of("encoder", factory, name)
    encoder = build_checked("encoder", factory, config, label)
    require(
        isinstance(encoder, torch.nn.Module), label, f"is a {type(encoder).__name__}, not a torch.nn.Module"
    )
    out_dim, data_config = encoder.out_dim, encoder.data_config
    require(
        isinstance(out_dim, int) and out_dim > 0, label, f"out_dim must be a positive int, got {out_dim!r}"
    )
    require(isinstance(data_config, Mapping), label, f"data_config must be a mapping, got {data_config!r}")
    for key in ("input_size", "mean", "std"):
        require(key in data_config, label, f"data_config has no {key!r} (it has {sorted(data_config)})")
    channels, height, width = (int(v) for v in data_config["input_size"])
    require(
        channels == 3, label, f"data_config input_size must be (3, H, W), got {data_config['input_size']}"
    )
    for key in ("mean", "std"):
        require(len(data_config[key]) == 3, label, f"data_config[{key!r}] needs 3 values per channel")
    with torch.no_grad():
        features = encoder(torch.rand(BATCH, 3, height, width))  # (B, 3, H, W) -> (B, N, D_v)
    require(isinstance(features, torch.Tensor), label, f"forward returned {type(features).__name__}")
    require(
        features.ndim == 3 and shape(features)[::2] == (BATCH, out_dim),
        label,
        f"forward of [{BATCH}, 3, {height}, {width}] gave {shape(features)}, "
        f"expected [{BATCH}, N, {out_dim}]",
    )
    require(finite(features), label, "forward gave NaN or infinite features")
    grid = encoder.patch_grid
    if grid is not None:
        tokens = features.shape[1]
        require(
            len(grid) == 2 and all(isinstance(v, int) and v > 0 for v in grid),
            label,
            f"patch_grid must be None or (rows, cols) of positive ints, got {grid!r}",
        )
        require(
            grid[0] * grid[1] <= tokens,
            label,
            f"patch_grid {tuple(grid)} has {grid[0] * grid[1]} patches but forward gave only {tokens} tokens",
        )
    return encoder


def check_bridge(
    factory: Callable[..., Any], config: Any, *, encoder_dim: int, tokens: int = 16, name: str | None = None
) -> Any:
    """Build a bridge for ``encoder_dim``-wide features and run it on ``[2, tokens, encoder_dim]``.

    Checks ``queries`` ``[2, num_queries, out_dim]``; with ``return_attentions=True``, each
    layer's ``[2, heads, Q, tokens]`` weights have rows that sum to 1 (or are ``None``).
    """
    import torch

    label = label_of("bridge", factory, name)
    bridge = build_checked("bridge", factory, config, label, encoder_dim=encoder_dim)
    require(
        isinstance(bridge, torch.nn.Module), label, f"is a {type(bridge).__name__}, not a torch.nn.Module"
    )
    bridge.eval()
    queries, out_dim = bridge.num_queries, bridge.out_dim
    features = torch.randn(BATCH, tokens, encoder_dim)  # (B, N, D_v)
    with torch.no_grad():
        plain = bridge(features)
        with_maps = bridge(features, return_attentions=True)
    for output in (plain, with_maps):
        got = shape(output.queries)
        require(
            got == (BATCH, queries, out_dim),
            label,
            f"queries of [{BATCH}, {tokens}, {encoder_dim}] are {got}, "
            f"expected [{BATCH}, {queries}, {out_dim}]",
        )
        require(finite(output.queries), label, "queries hold NaN or infinite values")
    require(plain.cross_attentions is None, label, "cross_attentions must be None unless asked for")
    for i, maps in enumerate(with_maps.cross_attentions or ()):
        got = shape(maps)
        require(
            len(got) == 4 and (got[0], got[2], got[3]) == (BATCH, queries, tokens),
            label,
            f"cross_attentions[{i}] is {got}, expected [{BATCH}, heads, {queries}, {tokens}]",
        )
        sums = maps.float().sum(-1)
        require(
            bool(torch.allclose(sums, torch.ones_like(sums), atol=1e-4)),
            label,
            f"cross_attentions[{i}] rows do not sum to 1 (they sum to {sums.min():.4f}..{sums.max():.4f})",
        )
    return bridge


def check_llm(factory: Callable[..., Any], config: Any, *, name: str | None = None, **context: Any) -> Any:
    """Build a language model (``context``: ``plugins=``, ``device=``) and run embed, hidden
    states, loss, generate and the adapter round trip on a short prompt. Use a tiny model,
    e.g. ``microvlm.testing.fixtures.tiny_llm_path()``."""
    import torch

    label = label_of("llm", factory, name)
    llm = build_checked("llm", factory, config, label, **context)
    hidden_size = llm.hidden_size
    require(isinstance(hidden_size, int) and hidden_size > 0, label, f"hidden_size is {hidden_size!r}")
    require(isinstance(llm.dtype, torch.dtype), label, f"dtype is {llm.dtype!r}, not a torch.dtype")
    positions = llm.max_positions
    require(
        positions is None or (isinstance(positions, int) and positions > 0),
        label,
        f"max_positions {positions!r}",
    )
    require(
        llm.quantization is None or isinstance(llm.quantization, Mapping),
        label,
        "quantization: not a mapping",
    )
    ids = torch.as_tensor([llm.tokenizer("a red square").input_ids])  # (1, T)
    steps = ids.shape[1]
    require(steps >= 2, label, f"the tokenizer gave {steps} token(s) for 'a red square'")
    embeds = llm.embed(ids)
    require(shape(embeds) == (1, steps, hidden_size), label, f"embed of {shape(ids)} gave {shape(embeds)}")
    mask = torch.ones_like(ids)
    hidden, _ = llm.hidden_states(embeds, attention_mask=mask)
    require(shape(hidden) == (1, steps, hidden_size), label, f"hidden_states gave {shape(hidden)}")
    loss = llm.loss(hidden[0, :-1], ids[0, 1:])  # next-token loss of positions 0..T-2
    require(loss.ndim == 0 and finite(loss), label, f"loss is {loss!r}, expected a finite scalar")
    with torch.no_grad():
        new = llm.generate(embeds, mask, max_new_tokens=3, do_sample=False)
    require(
        new.ndim == 2 and new.shape[0] == 1 and new.shape[1] <= 3,
        label,
        f"generate with max_new_tokens=3 gave {shape(new)}, expected [1, <=3] new token ids",
    )
    adapter = llm.adapter_state_dict()
    require(isinstance(adapter, dict), label, "adapter_state_dict must return a dict of tensors")
    if adapter:  # without an adapter there is nothing to load back
        llm.load_adapter_state_dict(adapter)
        with tempfile.TemporaryDirectory() as tmp:
            saved = Path(llm.save_adapter(tmp))
            require(saved.exists(), label, f"save_adapter returned {saved}, which does not exist")
    return llm


def check_exporter(
    factory: Callable[..., Any],
    config: Any,
    *,
    model: Any,
    plugins: Any,
    directory: str | Path | None = None,
    name: str | None = None,
) -> Any:
    """Export ``model`` (a small :class:`~microvlm.models.vlm.MicroVLM`) into an empty folder,
    load it back and generate from the loaded model; ``estimate`` of ``model``, and of the same
    architecture built on the ``meta`` device, must list the export report's groups (names,
    parameters, bytes). ``directory``: where (a temporary folder by default). :returns: the
    loaded model."""
    import torch

    from microvlm.contracts.quant import ExportReport, TensorGroup

    label = label_of("exporter", factory, name)
    exporter = build_checked("exporter", factory, config, label)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(directory) if directory is not None else Path(tmp) / "export"
        folder.mkdir(parents=True, exist_ok=True)
        require(not any(folder.iterdir()), label, f"the export folder {folder} must start empty")
        report = exporter.export(model, folder)
        require(
            isinstance(report, ExportReport),
            label,
            f"export returned {type(report).__name__}, not an ExportReport",
        )
        require(report.groups, label, "the export report lists no tensor groups")
        for group in report.groups:
            require(isinstance(group, TensorGroup), label, f"report group {group!r} is not a TensorGroup")
            require(group.parameters >= 0 and group.bytes >= 0, label, f"group {group.name}: negative counts")
        require(any(folder.iterdir()), label, f"export wrote nothing into {folder}")
        _check_estimate(exporter, model, report, plugins, label)
        loaded = exporter.load(folder, plugins=plugins)
        _, height, width = (int(v) for v in loaded.encoder.data_config["input_size"])
        answers = loaded.generate({"image": torch.rand(1, 3, height, width), "prompt": "a"}, max_new_tokens=2)
    require(
        isinstance(answers, list) and len(answers) == 1 and isinstance(answers[0], str),
        label,
        f"the loaded model's generate gave {answers!r}, expected one string",
    )
    return loaded


def _check_estimate(exporter: Any, model: Any, report: Any, plugins: Any, label: str) -> None:
    """``exporter.estimate`` on ``model`` and on its meta-device twin equals ``report``'s groups."""
    from microvlm.contracts.quant import ExportReport
    from microvlm.models.info import counting_config
    from microvlm.models.vlm import MicroVLM

    def rows(r: Any) -> list[tuple[str, int, int]]:
        return [(g.name, g.parameters, g.bytes) for g in r.groups]

    meta = MicroVLM.from_config(counting_config(model.config), plugins, device="meta")
    for where, subject in (("the model", model), ("its meta-device twin", meta)):
        estimate = exporter.estimate(subject)
        require(
            isinstance(estimate, ExportReport),
            label,
            f"estimate of {where} returned {type(estimate).__name__}, not an ExportReport",
        )
        require(
            rows(estimate) == rows(report),
            label,
            f"estimate of {where} lists groups {rows(estimate)}, but export wrote {rows(report)}",
        )


def check_qat(factory: Callable[..., Any], config: Any, *, model: Any, name: str | None = None) -> Any:
    """Prepare ``model`` (a small :class:`~microvlm.models.vlm.MicroVLM` WITHOUT an adapter; it
    is changed in place), then step the schedule and finish: parameter names must not change,
    the metrics must be numbers, and the model must still compute a finite loss and take
    gradients. :returns: the built scheme."""
    import torch

    label = label_of("qat", factory, name)
    scheme = build_checked("qat", factory, config, label)
    before = [n for n, _ in model.named_parameters()]
    swapped = scheme.prepare(model)
    require(isinstance(swapped, int) and swapped >= 0, label, f"prepare returned {swapped!r}, not a count")
    after = [n for n, _ in model.named_parameters()]
    require(before == after, label, "prepare changed the parameter names: step checkpoints would not resume")
    for step in (0, 1, 10_000):
        metrics = scheme.set_step(model, step)
        require(
            all(isinstance(k, str) and isinstance(v, (int, float)) for k, v in dict(metrics).items()),
            label,
            f"set_step({step}) returned {metrics!r}, expected names -> numbers",
        )
    scheme.finish(model)
    _, height, width = (int(v) for v in model.encoder.data_config["input_size"])
    ids = torch.randint(3, 20, (2, 5))
    model.requires_grad_(True)
    out = model(torch.rand(2, 3, height, width), ids, torch.ones_like(ids), ids)
    require(bool(torch.isfinite(out.loss)), label, f"the fake-quantised model's loss is {out.loss}")
    out.loss.backward()  # the straight-through estimator must let gradients reach the weights
    llm = [p for n, p in model.named_parameters() if n.startswith("llm.")]
    require(
        any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in llm),
        label,
        "no gradient reaches the LLM",
    )
    return scheme


__all__ = ["check_bridge", "check_encoder", "check_exporter", "check_llm", "check_qat"]
