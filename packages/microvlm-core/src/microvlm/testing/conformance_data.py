"""Conformance checks of the data side and the rest: dataset builders, tasks, quantizers, loggers.

Each check builds the component as core does and exercises what
:mod:`microvlm.contracts.data`, :mod:`microvlm.contracts.quant` and
:mod:`microvlm.contracts.logger` promise.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from microvlm.testing.conformance_base import ConformanceError, build_checked, label_of, require


def check_dataset(
    factory: Callable[..., Any], config: Any, *, limit: int = 8, name: str | None = None
) -> Any:
    """Build a dataset builder and read its first ``limit`` samples.

    Checks ``len``, that ``builder[i]`` is a :class:`~microvlm.data.Sample` whose image opens,
    and the types of ``skipped``, ``skipped_examples`` and ``records_read``.
    :returns: the builder.
    """
    from microvlm.data import ImageRef, Sample

    label = label_of("dataset", factory, name)
    builder = build_checked("dataset", factory, config, label)
    size = len(builder)
    require(isinstance(size, int) and size >= 0, label, f"len() is {size!r}")
    for i in range(min(size, limit)):
        sample = builder[i]
        require(isinstance(sample, Sample), label, f"builder[{i}] is a {type(sample).__name__}, not a Sample")
        require(isinstance(sample.image, ImageRef), label, f"builder[{i}].image is not an ImageRef")
        require(isinstance(sample.id, str) and sample.id, label, f"builder[{i}] has no id")
    if size:
        image = builder[0].image.open()
        require(min(image.size) > 0, label, f"the image of builder[0] is {image.size}")
    skipped, examples, records = builder.skipped, builder.skipped_examples, builder.records_read
    require(
        isinstance(skipped, Mapping), label, f"skipped must be a mapping reason -> count, got {skipped!r}"
    )
    for reason, count in skipped.items():
        require(
            isinstance(reason, str) and isinstance(count, int) and count >= 0, label, f"skipped[{reason!r}]"
        )
    require(isinstance(examples, Mapping), label, f"skipped_examples must be a mapping, got {examples!r}")
    for reason, where in examples.items():
        require(
            isinstance(where, Sequence) and all(isinstance(w, str) for w in where),
            label,
            f"skipped_examples[{reason!r}] must be a sequence of strings, got {where!r}",
        )
    require(
        isinstance(records, int) and records >= 0, label, f"records_read must be an int >= 0, got {records!r}"
    )
    return builder


def check_task(
    factory: Callable[..., Any],
    config: Any,
    *,
    samples: Sequence[Any],
    tokenizer: Any = None,
    name: str | None = None,
) -> Any:
    """Build a task and run it on ``samples`` (of the kind it reads: captions, questions...).

    Checks ``example`` (deterministic for one seed, with a target segment), ``eval_prompt``,
    ``references``, ``score`` and ``per_sample`` on the references as predictions (JSON-able),
    ``summarize`` and ``training_samples``. :returns: the task.
    """
    from microvlm.contracts.data import TaskSummary
    from microvlm.data import Example, Sample

    label = label_of("task", factory, name)
    task = build_checked("task", factory, config, label)
    samples = list(samples)
    require(samples, label, "check_task needs at least one sample")
    require(isinstance(task.name, str) and task.name, label, f"name is {task.name!r}")
    budget = task.max_new_tokens
    require(
        isinstance(budget, int) and budget > 0,
        label,
        f"max_new_tokens must be a positive int, got {budget!r}",
    )
    predictions = []
    for sample in samples:
        example = task.example(sample, random.Random(0), tokenizer)
        require(
            isinstance(example, Example), label, f"example() gave a {type(example).__name__}, not an Example"
        )
        require(
            any(s.target for s in example.segments), label, f"example of {sample.id} has no target segment"
        )
        again = task.example(sample, random.Random(0), tokenizer)
        require(again == example, label, f"example of {sample.id} differs between two runs with one seed")
        prompt = task.eval_prompt(sample, tokenizer)
        require(isinstance(prompt, str), label, f"eval_prompt gave {prompt!r}, not a string")
        references = task.references(sample)
        require(
            isinstance(references, list) and all(isinstance(r, str) for r in references),
            label,
            f"references of {sample.id} must be a list of strings, got {references!r}",
        )
        predictions.append(references[0] if references else "")
    metrics = task.score(predictions, samples)
    require(
        isinstance(metrics, dict) and metrics, label, f"score gave {metrics!r}, expected a non-empty dict"
    )
    for key, value in metrics.items():
        require(
            isinstance(key, str) and (value is None or isinstance(value, (int, float, str))),
            label,
            f"metric {key!r} = {value!r} is not a number, a string or None",
        )
    rows = task.per_sample(predictions, samples)
    require(
        isinstance(rows, list) and len(rows) == len(samples), label, "per_sample must give one row per sample"
    )
    _json(rows, label, "per_sample rows")
    summary = task.summarize(metrics)
    require(
        isinstance(summary, TaskSummary), label, f"summarize gave {type(summary).__name__}, not a TaskSummary"
    )
    _json(summary.results, label, "summarize(...).results")
    kept = task.training_samples(samples)
    require(
        isinstance(kept, Sequence) and all(isinstance(s, Sample) for s in kept),
        label,
        "training_samples must return a sequence of Samples",
    )
    return task


def check_quantizer(factory: Callable[..., Any], config: Any, *, name: str | None = None) -> Any:
    """Build a quantizer; check ``describe``, ``storage_bytes`` and ``quantization_config``, and
    quantise a two-layer model, which must still run. :returns: the quantizer."""
    import torch
    from torch import nn

    label = label_of("quantizer", factory, name)
    quantizer = build_checked("quantizer", factory, config, label)
    _json(quantizer.describe(), label, "describe()")
    require(isinstance(quantizer.describe(), dict), label, "describe() must return a dict")
    sizes = [quantizer.storage_bytes(n) for n in (0, 4096, 8192)]
    require(all(isinstance(s, int) and s >= 0 for s in sizes), label, f"storage_bytes gave {sizes}")
    require(
        sizes[0] <= sizes[1] <= sizes[2] and sizes[2] > 0, label, f"storage_bytes(0, 4096, 8192) = {sizes}"
    )
    quantizer.quantization_config(torch.float32)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64))
    model = quantizer.quantize_model(model, compute_dtype=torch.float32)
    require(isinstance(model, nn.Module), label, "quantize_model must return the model")
    with torch.no_grad():
        out = model(torch.randn(2, 64))
    require(
        tuple(out.shape) == (2, 64) and bool(torch.isfinite(out).all()), label, "the quantised model fails"
    )
    return quantizer


def check_logger(
    factory: Callable[..., Any],
    config: Any,
    tmp_path: str | Path,
    *,
    run_config: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> Any:
    """Build a logger for the run folder ``tmp_path``, log two steps and close it."""
    label = label_of("logger", factory, name)
    sink = build_checked(
        "logger", factory, config, label, run_dir=Path(tmp_path), run_config=dict(run_config or {})
    )
    sink.log({"loss": 1.5, "lr": 1e-3}, step=1)
    sink.log({"loss": 1.25}, step=2)
    rows = getattr(sink, "rows", None)
    require(rows is None or (isinstance(rows, int) and rows >= 0), label, f"rows is {rows!r}")
    sink.close()
    return sink


#: What a source's ``login`` may say (see :class:`microvlm.contracts.data.DataSource`).
SOURCE_LOGINS = ("", "huggingface", "kaggle", "manual")


def check_source(factory: Callable[..., Any], config: Any, *, name: str | None = None) -> Any:
    """Build a dataset source and check what core and ``datasets status`` read from it.

    Checks that ``name`` is the registered name (when given), ``folder`` a relative path
    inside the data root (no ``..``, not absolute, ``/``-separated), ``description`` and
    ``licence`` non-empty strings, and ``login`` one of :data:`SOURCE_LOGINS`.
    :returns: the source.
    """
    from pathlib import PurePosixPath

    label = label_of("source", factory, name)
    source = build_checked("source", factory, config, label)
    for field in ("name", "folder", "description", "licence"):
        value = getattr(source, field)
        require(
            isinstance(value, str) and value.strip(),
            label,
            f"{field} must be a non-empty string, got {value!r}",
        )
    require(
        name is None or source.name == name, label, f"its name is {source.name!r}, registered as {name!r}"
    )
    folder = PurePosixPath(source.folder)
    require(
        not folder.is_absolute() and ".." not in folder.parts and "\\" not in source.folder,
        label,
        f"folder {source.folder!r} must be a relative path inside the data root",
    )
    require(
        source.login in SOURCE_LOGINS,
        label,
        f"login {source.login!r} is not one of {', '.join(repr(x) for x in SOURCE_LOGINS)}",
    )
    return source


def _json(value: Any, label: str, what: str) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ConformanceError(f"{label}: {what} is not JSON-able ({exc})") from exc


__all__ = ["SOURCE_LOGINS", "check_dataset", "check_logger", "check_quantizer", "check_source", "check_task"]
