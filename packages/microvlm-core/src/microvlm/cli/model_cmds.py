"""``microvlm eval`` and ``microvlm infer``: a trained checkpoint at work."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from microvlm.cli.infer_inputs import (
    MAX_BEAMS,
    FiniteFloatRange,
    batch_inputs,
    check_output_dir,
    check_output_file,
    check_text,
    max_new_tokens_option,
    read_image,
)
from microvlm.errors import MicroVLMError
from microvlm.plugins.manager import Plugins

__all__ = ["Answerer", "eval_command", "infer_command", "load_model", "read_image"]

logger = logging.getLogger(__name__)


def _model_overrides(pairs: tuple[str, ...]) -> dict[str, Any]:
    from microvlm.recipes.load import parse_override

    return dict(parse_override(p) for p in pairs)


def load_model(checkpoint: str, plugins: Plugins, overrides: tuple[str, ...] = ()) -> Any:
    from microvlm.models.vlm import MicroVLM

    return MicroVLM.from_pretrained(checkpoint, plugins, **_model_overrides(overrides))


def _model_set_option(f):  # type: ignore[no-untyped-def]
    return click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override the checkpoint's model table, e.g. llm.model=/path/to/Qwen2.5-0.5B.",
    )(f)


# -- eval --------------------------------------------------------------------------------


def _eval_entries(plugins: Plugins, checkpoint: str, recipe_path: str | None) -> tuple[list, str]:
    from microvlm.io.layout import load_meta, resolve_checkpoint
    from microvlm.models.exports import is_export, training_recipe
    from microvlm.recipes.config import Pipeline
    from microvlm.recipes.load import load_recipe

    if recipe_path is None:
        directory = resolve_checkpoint(checkpoint)
        recorded = training_recipe(directory) if is_export(directory) else load_meta(directory).get("recipe")
        if not isinstance(recorded, str) or not recorded or not Path(recorded).is_file():
            raise MicroVLMError(
                f"{checkpoint}: cannot tell which data to evaluate on (the training recipe "
                f"{recorded!r} is not here); name it with --recipe RECIPE"
            )
        if Path(recorded).resolve().is_relative_to(directory.resolve()):  # came with the checkpoint
            raise MicroVLMError(
                f"{checkpoint}: its trainer.json names a recipe inside the checkpoint ({recorded}); a "
                "checkpoint's own files are not trusted to choose data: name it with --recipe RECIPE"
            )
        logger.info("evaluating on the data of %s (the checkpoint's training recipe)", recorded)
        recipe_path = recorded
    recipe = load_recipe(recipe_path, plugins)
    if isinstance(recipe, Pipeline):
        recipe = recipe.stages[-1].recipe
    return list(recipe.eval.data or recipe.data), recipe_path


@click.command("eval")
@click.option(
    "--checkpoint", required=True, help="A checkpoint directory (e.g. output/stage4/checkpoint_final)."
)
@click.option(
    "--recipe",
    "recipe_path",
    help="Recipe whose [[eval.data]] (else [[data]]) to evaluate on; "
    "default: the recipe the checkpoint was trained with.",
)
@click.option("--tasks", multiple=True, help="Only these tasks, e.g. --tasks vqa captioning grounding.")
@click.option("--datasets", multiple=True, help="Only these datasets, e.g. --datasets vqav2 refcoco.")
@click.option("--split", help="Dataset split to evaluate (default: as in the recipe).")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(1))
@click.option(
    "--limit", default=0, show_default=True, type=click.IntRange(0), help="Samples per entry (0 = all)."
)
@click.option(
    "--max-new-tokens", default=0, type=click.IntRange(0), help="Generation budget (0 = the task's)."
)
@click.option(
    "--output-dir", type=click.Path(file_okay=False), help="Write metrics.json and predictions_*.jsonl here."
)
@_model_set_option
@click.pass_obj
def eval_command(
    plugins: Plugins,
    checkpoint: str,
    recipe_path: str | None,
    tasks: tuple[str, ...],
    datasets: tuple[str, ...],
    split: str | None,
    batch_size: int,
    limit: int,
    max_new_tokens: int,
    output_dir: str | None,
    overrides: tuple[str, ...],
) -> None:
    """Evaluate a checkpoint: batched greedy generation, task metrics, predictions JSONL.

    \b
      microvlm eval --checkpoint output/stage4/checkpoint_final --tasks vqa captioning grounding \
        --output-dir eval/
    """
    from microvlm.eval.evaluate import evaluate, with_split

    entries, source = _eval_entries(plugins, checkpoint, recipe_path)
    tasks = tuple(t for group in tasks for t in group.split())  # "--tasks vqa captioning" works too
    entries = [
        with_split(e, split)
        for e in entries
        if (not tasks or e.task.name in tasks) and (not datasets or e.dataset.name in datasets)
    ]
    if not entries:
        raise MicroVLMError(
            f"{source}: no evaluation entry matches --tasks {list(tasks)} --datasets {list(datasets)}"
        )
    if output_dir:
        check_output_dir(output_dir)  # before the model loads
    model = load_model(checkpoint, plugins, overrides)
    results = evaluate(
        model,
        entries,
        plugins,
        batch_size=batch_size,
        limit=limit,
        max_new_tokens=max_new_tokens,
        output_dir=output_dir,
    )
    print_metrics(results)
    if output_dir:
        click.echo(f"wrote {Path(output_dir) / 'metrics.json'}")


def print_metrics(results: dict[str, dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    from microvlm.cli.literal import add_literal_row

    table = Table("data", "metric", "value")
    for name, metrics in results.items():
        for key, value in metrics.items():
            shown = f"{value:.4f}" if isinstance(value, float) else str(value)
            add_literal_row(table, name, key, shown)
    Console().print(table)


# -- infer -------------------------------------------------------------------------------


class Answerer:
    """A loaded model plus its processor and generation settings."""

    def __init__(self, model: Any, settings: dict[str, Any]) -> None:
        from microvlm.models.processors import ImageEvalProcessor

        self.model = model
        self.processor = ImageEvalProcessor.from_data_config(model.encoder.data_config)
        self.settings = settings

    def answer(self, images: list[Any], prompts: list[str], stream: bool = False) -> list[str]:
        """Answers to ``prompts`` about ``images``; ``stream`` echoes one answer as it is generated
        (with beam search, once it is complete: beams cannot stream)."""
        import torch

        batch = torch.stack([self.processor(im) for im in images])  # (B, 3, H, W)
        on_text = None
        if stream:

            def on_text(piece: str) -> None:
                click.echo(piece, nl=False)
                sys.stdout.flush()

        answers = self.model.generate({"image": batch, "prompt": prompts}, on_text=on_text, **self.settings)
        if stream:
            click.echo()
        return answers


def _answer_all(answerer: Answerer, pairs: list[tuple[str, str]], output_path: str, batch_size: int) -> None:
    """Answer every readable image into ``output_path``; unreadable ones are skipped and reported."""
    skipped = written = 0
    try:
        with Path(output_path).open("w", encoding="utf-8") as f:
            for start in range(0, len(pairs), batch_size):
                chunk = []
                for path, question in pairs[start : start + batch_size]:
                    try:
                        chunk.append((path, question, read_image(path)))
                    except MicroVLMError as exc:
                        click.echo(f"skipped {exc}", err=True)
                        skipped += 1
                if not chunk:
                    continue
                answers = answerer.answer([im for _, _, im in chunk], [q for _, q, _ in chunk])
                for (path, question, _), answer in zip(chunk, answers, strict=True):
                    row = {"image": path, "prompt": question, "answer": answer}
                    f.write(json.dumps(row) + "\n")  # ASCII: file names need not be UTF-8
                    written += 1
                f.flush()
    except OSError as exc:
        reason = exc.strerror or exc
        raise MicroVLMError(
            f"{output_path}: cannot write the answers: {reason} ({written} written)"
        ) from None
    if not written:
        raise MicroVLMError(f"none of the {len(pairs)} images could be read (reasons above); no answers")
    note = f"; skipped {skipped} of {len(pairs)} images that could not be read" if skipped else ""
    click.echo(f"wrote {written} answers to {output_path}{note}", err=True)


def _interactive(answerer: Answerer, image: Any) -> None:
    """Questions about ``image`` (a decoded image or None) and those loaded with 'load PATH'."""
    click.echo("Interactive mode: 'load PATH' loads an image, any other line asks about it, 'quit' exits.")
    while True:
        try:
            line = input("> ").strip()
        except EOFError:
            break
        except UnicodeDecodeError as exc:
            click.echo(f"Error: that line is not UTF-8 text ({exc.reason}); type it again", err=True)
            continue
        if not line:
            continue
        if line in ("quit", "exit"):
            break
        try:
            if line.startswith("load "):
                image = read_image(line[5:].strip())
                click.echo(f"loaded {line[5:].strip()}")
            elif image is None:
                click.echo("Error: no image yet; load one with: load PATH", err=True)
            else:
                answerer.answer([image], [check_text(line, "the question")], stream=True)
        except MicroVLMError as exc:
            click.echo(f"Error: {exc}", err=True)


@click.command("infer")
@click.option(
    "--checkpoint", required=True, help="A checkpoint directory (e.g. output/stage4/checkpoint_final)."
)
@click.option("--image", help="Image file to ask about.")
@click.option("--prompt", help="The question or instruction.")
@click.option("--interactive", is_flag=True, help="Ask several questions: 'load PATH', questions, 'quit'.")
@click.option(
    "--input",
    "input_path",
    type=click.Path(exists=True),
    help="A folder of images (with --prompt) or a JSONL of {image, prompt}; answers go to --output. "
    "Unreadable images are skipped and reported; the exit status is 1 only when none could be read.",
)
@click.option(
    "--output", "output_path", type=click.Path(dir_okay=False), help="JSONL to write (with --input)."
)
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(1), help="With --input.")
@max_new_tokens_option(default=256)
@click.option(
    "--temperature",
    default=0.7,
    show_default=True,
    type=FiniteFloatRange(min=0.0),
    help="With --do-sample; 0 = greedy.",
)
@click.option("--top-p", default=0.9, show_default=True, type=FiniteFloatRange(0.0, 1.0, min_open=True))
@click.option(
    "--do-sample", is_flag=True, help="Sample (with temperature / top-p) instead of greedy decoding."
)
@click.option(
    "--num-beams",
    default=1,
    show_default=True,
    type=click.IntRange(1, MAX_BEAMS),
    help="Beam search above 1 (answers then print when complete, not streamed).",
)
@_model_set_option
@click.pass_obj
def infer_command(
    plugins: Plugins,
    checkpoint: str,
    image: str | None,
    prompt: str | None,
    interactive: bool,
    input_path: str | None,
    output_path: str | None,
    batch_size: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    do_sample: bool,
    num_beams: int,
    overrides: tuple[str, ...],
) -> None:
    """Answer questions about images with a trained checkpoint (answers stream as generated).

    \b
      microvlm infer --checkpoint output/stage4/checkpoint_final --image cat.jpg --prompt "What is this?"
      microvlm infer --checkpoint output/stage4/checkpoint_final --interactive
      microvlm infer --checkpoint CKPT --input images/ --prompt "Describe." --output answers.jsonl
    """
    if not (interactive or input_path) and (image is None or prompt is None):
        raise click.UsageError("give --image and --prompt, or --interactive, or --input")
    if input_path and not output_path:
        raise click.UsageError("--input needs --output FILE.jsonl")
    # Everything the user gave is checked before the model loads (which can take minutes).
    if prompt is not None:
        check_text(prompt, "--prompt")
    picture = None
    if input_path:
        pairs = batch_inputs(input_path, prompt)
        check_output_file(str(output_path))
    elif image:
        picture = read_image(image)
    settings = {
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "do_sample": do_sample and temperature > 0,  # temperature 0 is greedy decoding
        "num_beams": num_beams,
    }
    answerer = Answerer(load_model(checkpoint, plugins, overrides), settings)
    if interactive:
        _interactive(answerer, picture)
    elif input_path:
        _answer_all(answerer, pairs, str(output_path), batch_size)
    else:
        answerer.answer([picture], [str(prompt)], stream=True)
