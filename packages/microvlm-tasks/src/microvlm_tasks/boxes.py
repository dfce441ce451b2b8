"""Boxes written as text, and read back from generated text.

The one format the grounding task writes: ``[x1,y1,x2,y2]`` — four integers in 0..999, no
spaces, (x1, y1) the top-left and (x2, y2) the bottom-right corner, each coordinate
normalised to the image: ``q = round(x / width * 999)`` for x, ``round(y / height * 999)``
for y, clamped to 0..999. Reading back maps ``q`` to ``q / 999 * width`` pixels.

:func:`parse_box` is lenient, because a small model's output is not always tidy:

- the whole text is read, not only its first line (``"Sure!\n[100,200,300,400]"``);
- spaces anywhere, brackets missing, parentheses instead of brackets, other words around
  (``"box: (12, 30, 400, 500)"``). Which four numbers: the first bracketed group of exactly
  four numbers anywhere in the text; without one, the first four numbers of the first line
  that has four (``"There are 2 dogs.\n100, 200, 300, 400"``); without such a line, the
  first four numbers anywhere (one coordinate per line). Digits inside words such as
  ``x1=`` are not numbers;
- several boxes (``"[10,20,30,40] and [50,60,70,80]"``, or a generation that runs on into
  a second answer): the first one is read, the rest ignored;
- floats are rounded by the caller's arithmetic (kept as floats); four numbers all in
  [0, 1] with at least one decimal point are taken as fractions of the image and scaled
  by 999 (``[0.1,0.2,0.5,0.9]``);
- swapped corners are put in order; values outside 0..999 are clamped;
- fewer than four numbers: ``None`` (the evaluation counts it as a miss).
"""

from __future__ import annotations

import io
import re

from microvlm.data import Box, ImageRef
from microvlm.errors import MicroVLMError

COORD_MAX = 999  # normalised coordinates are integers 0..COORD_MAX
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_NUMBER_RE = re.compile(rf"(?<![A-Za-z0-9_.]){_NUMBER}")
_SEP = r"\s*[,;\s]\s*"
_GROUP_RE = re.compile(rf"[\[(]\s*({_NUMBER}){_SEP}({_NUMBER}){_SEP}({_NUMBER}){_SEP}({_NUMBER})\s*[\])]")

NormBox = tuple[float, float, float, float]  # (x1, y1, x2, y2) in 0..COORD_MAX


def _quantize(value: float, extent: int) -> int:
    return min(COORD_MAX, max(0, round(value / extent * COORD_MAX)))


def format_box(box: Box, size: tuple[int, int]) -> str:
    """``Box`` in pixels of an image of ``size = (width, height)`` -> ``"[x1,y1,x2,y2]"``."""
    width, height = size
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {size}")
    q = (
        _quantize(box.x1, width),
        _quantize(box.y1, height),
        _quantize(box.x2, width),
        _quantize(box.y2, height),
    )
    return "[" + ",".join(str(v) for v in q) + "]"


def _loose_numbers(text: str) -> list[str] | None:
    """Four numbers without brackets: the first line holding four, else the first four anywhere."""
    for line in text.splitlines():
        numbers = _NUMBER_RE.findall(line)
        if len(numbers) >= 4:
            return numbers[:4]
    numbers = _NUMBER_RE.findall(text)
    return numbers[:4] if len(numbers) >= 4 else None


def parse_box(text: str) -> NormBox | None:
    """Read a box in normalised coordinates (0..999) from generated text; ``None`` if none."""
    group = _GROUP_RE.search(text)
    raw = list(group.groups()) if group is not None else _loose_numbers(text)
    if raw is None:
        return None
    values = [float(v) for v in raw]
    if all(0.0 <= v <= 1.0 for v in values) and any("." in v for v in raw):
        values = [v * COORD_MAX for v in values]  # fractions of the image
    x1, x2 = sorted(values[0::2])
    y1, y2 = sorted(values[1::2])
    clamp = lambda v: min(float(COORD_MAX), max(0.0, v))  # noqa: E731
    return (clamp(x1), clamp(y1), clamp(x2), clamp(y2))


def to_pixels(box: NormBox, size: tuple[int, int]) -> Box:
    """Normalised box -> ``Box`` in pixels of an image of ``size = (width, height)``."""
    width, height = size
    x1, y1, x2, y2 = box
    return Box(
        x1 / COORD_MAX * width, y1 / COORD_MAX * height, x2 / COORD_MAX * width, y2 / COORD_MAX * height
    )


def image_size(image: ImageRef) -> tuple[int, int]:
    """``(width, height)``: from the annotation when it has it, else read from the image header."""
    if image.size is not None:
        return image.size
    from PIL import Image, UnidentifiedImageError

    where = image.path or f"<{len(image.data)} inline bytes>"
    try:
        with Image.open(io.BytesIO(image.data) if image.data else image.path) as opened:
            return opened.size  # header only: PIL decodes pixels lazily
    except (OSError, UnidentifiedImageError) as exc:
        raise MicroVLMError(
            f"cannot read image {where} to find its size for the box coordinates: {exc}"
        ) from exc
