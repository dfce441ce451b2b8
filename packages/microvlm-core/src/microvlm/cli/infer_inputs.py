"""What ``microvlm infer`` (and ``eval`` / ``demo``) read from the user, checked before the model loads.

Images (refused over PIL's pixel limit), ``--input`` folders and JSONL files, the writability
of ``--output`` / ``--output-dir``, prompt text and the generation numbers. Every problem is a
:class:`MicroVLMError` (one line, no traceback, through the CLI) or a click usage error,
naming the file, line, field or option and what to do. Nothing here needs the model.
"""

from __future__ import annotations

import codecs
import json
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from microvlm.errors import MicroVLMError

if TYPE_CHECKING:
    from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
JSONL_ROW = '{"image": PATH, "prompt": TEXT}'
MAX_BEAMS = 32  # --num-beams above this multiplies memory past what a CLI run should take


def read_image(path: str) -> Image.Image:
    """Decode ``path`` to an RGB image; a :class:`MicroVLMError` names the file and the reason.

    Images over PIL's ``Image.MAX_IMAGE_PIXELS`` are refused (where PIL only warns, too):
    the model sees a few hundred pixels a side, and such files are how decompression bombs look.
    """
    from PIL import Image, UnidentifiedImageError

    if os.path.exists(path) and not os.path.isdir(path) and not os.path.isfile(path):
        raise MicroVLMError(f"{path}: not a regular file (a pipe or device would block)")  # as ImageRef
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")  # e.g. corrupt EXIF
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                rgb = image.convert("RGB")
    except FileNotFoundError:
        raise MicroVLMError(f"{path}: no such image file") from None
    except IsADirectoryError:
        raise MicroVLMError(f"{path}: a folder, not an image file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MicroVLMError(
            f"{path}: image too large ({exc}); resize it below {Image.MAX_IMAGE_PIXELS} pixels"
        ) from None
    except UnidentifiedImageError:
        raise MicroVLMError(f"{path}: cannot read image: not an image (no format PIL knows)") from None
    except Exception as exc:  # PIL's decoders raise OSError, SyntaxError, ValueError, struct.error, ...
        raise MicroVLMError(f"{path}: cannot read image: {exc or type(exc).__name__}") from None
    if rgb.width < 1 or rgb.height < 1:
        raise MicroVLMError(f"{path}: cannot read image: it has no pixels ({rgb.width} x {rgb.height})")
    return rgb


def check_text(text: str, what: str) -> str:
    """``text`` if it can be tokenized (UTF-8 encodable: no lone surrogates); else an error."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MicroVLMError(
            f"{what} is not valid text (character {exc.start + 1} is a lone surrogate "
            f"{text[exc.start]!r}); pass UTF-8 text"
        ) from None
    return text


def batch_inputs(source: str, prompt: str | None) -> list[tuple[str, str]]:
    """``(image path, prompt)`` pairs of an ``--input`` folder (each image with ``prompt``) or JSONL."""
    path = Path(source)
    if path.is_dir():
        if prompt is None:
            raise click.UsageError("--input FOLDER needs --prompt (the question for every image)")
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise MicroVLMError(f"{source}: no images here (files ending in {', '.join(IMAGE_SUFFIXES)})")
        return [(str(p), prompt) for p in files]
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MicroVLMError(f"{source}: cannot read the --input file: {exc.strerror or exc}") from None
    pairs = []
    for n, raw in enumerate(data.removeprefix(codecs.BOM_UTF8).splitlines(), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MicroVLMError(
                f"{source}:{n}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                "save it as UTF-8"
            ) from None
        if line.strip():
            pairs.append(_jsonl_row(line, prompt, f"{source}:{n}"))
    if not pairs:
        raise MicroVLMError(f"{source}: no lines; write one {JSONL_ROW} per line")
    return pairs


def _jsonl_row(line: str, prompt: str | None, where: str) -> tuple[str, str]:
    try:
        row = json.loads(line)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, over-long integers, deep nesting
        raise MicroVLMError(f"{where}: not JSON ({_short(exc)}); each line is {JSONL_ROW}") from None
    if not isinstance(row, dict):
        raise MicroVLMError(f"{where}: expected an object {JSONL_ROW}, got {type(row).__name__}")
    image = row.get("image")
    if not isinstance(image, str) or not image.strip():
        raise MicroVLMError(f'{where}: "image" must be a file path (a non-empty string), got {_short(image)}')
    question = row.get("prompt", prompt)
    if question is None:
        raise MicroVLMError(f'{where}: no "prompt", and no --prompt to use instead')
    if not isinstance(question, str):
        raise MicroVLMError(f'{where}: "prompt" must be a string, got {_short(question)}')
    return check_text(image, f'{where}: "image"'), check_text(question, f'{where}: "prompt"')


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value) if not isinstance(value, Exception) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_output_file(path: str, what: str = "--output") -> None:
    """Fail now, before the model loads, if the file ``path`` cannot be written (nothing is changed)."""
    target = Path(path)
    try:
        if target.is_dir():
            raise MicroVLMError(f"{what} {path}: a folder; name a file, e.g. {target / 'answers.jsonl'}")
        if not target.parent.is_dir():
            missing = "is a file" if target.parent.exists() else "does not exist"
            raise MicroVLMError(
                f"{what} {path}: the folder {target.parent} {missing}; name a folder that exists"
            )
        if target.exists():
            with target.open("a", encoding="utf-8"):  # opens for writing without truncating
                pass
        else:
            with tempfile.TemporaryFile(dir=target.parent):
                pass
    except (OSError, ValueError) as exc:
        raise MicroVLMError(f"{what} {path}: cannot write there: {_os_reason(exc)}") from None


def check_output_dir(path: str, what: str = "--output-dir") -> None:
    """Create the folder ``path`` and fail now, before the model loads, if it cannot be written to."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except (OSError, ValueError) as exc:
        raise MicroVLMError(f"{what} {path}: cannot write there: {_os_reason(exc)}") from None


def _os_reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def max_new_tokens_option(default: int) -> Any:
    """The ``--max-new-tokens`` option of ``infer`` and ``demo``."""
    return click.option(
        "--max-new-tokens",
        default=default,
        show_default=True,
        type=click.IntRange(1),
        help="Answer length limit, lowered to what the LLM's context leaves after the image and prompt.",
    )


class FiniteFloatRange(click.FloatRange):
    """click's ``FloatRange`` that also refuses ``nan`` and ``inf`` (which compare as in range)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_BEAMS",
    "FiniteFloatRange",
    "batch_inputs",
    "check_output_dir",
    "check_output_file",
    "check_text",
    "max_new_tokens_option",
    "read_image",
]
