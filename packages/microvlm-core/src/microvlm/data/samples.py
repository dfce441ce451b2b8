"""Typed samples: what a dataset builder yields and a task consumes.

A builder reads a dataset's real files and yields :class:`Sample` objects; a task turns a
sample into an :class:`Example` (text segments, some of them training targets) and, at
evaluation, predictions into metrics. The types import nothing heavy; images are decoded
only when :meth:`ImageRef.open` is called (in DataLoader workers).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs

if TYPE_CHECKING:
    from PIL import Image


@attrs.frozen
class ImageRef:
    """Where a sample's image is: a file path, or the encoded bytes (web shards)."""

    path: str = ""  # file on disk; "" when the bytes are inline
    data: bytes = attrs.field(default=b"", repr=False, eq=False)  # encoded image (JPEG/PNG) from a shard
    size: tuple[int, int] | None = None  # (width, height) in pixels, when the annotation says

    def __attrs_post_init__(self) -> None:
        if not self.path and not self.data:
            raise ValueError("ImageRef needs a path or encoded bytes")

    def open(self) -> Image.Image:
        """Decode to an RGB PIL image; errors name the file."""
        from PIL import Image, UnidentifiedImageError

        try:
            image = Image.open(io.BytesIO(self.data) if self.data else self.path)
            return image.convert("RGB")
        except (OSError, UnidentifiedImageError) as exc:
            where = self.path or f"<{len(self.data)} inline bytes>"
            raise OSError(f"cannot read image {where}: {exc}") from exc


@attrs.frozen
class Box:
    """An axis-aligned box in pixels of the original image; (x1, y1) top-left, inclusive."""

    x1: float
    y1: float
    x2: float
    y2: float

    def __attrs_post_init__(self) -> None:
        if self.x2 < self.x1 or self.y2 < self.y1:
            raise ValueError(f"box corners out of order: {self}")

    @classmethod
    def from_xywh(cls, x: float, y: float, w: float, h: float) -> Box:
        """COCO / RefCOCO ``bbox = [x, y, width, height]``."""
        return cls(x, y, x + w, y + h)

    @property
    def area(self) -> float:
        return (self.x2 - self.x1) * (self.y2 - self.y1)


@attrs.frozen
class Turn:
    """One message of a conversation."""

    role: Literal["system", "user", "assistant"]
    text: str  # LLaVA's "<image>" placeholder removed; the image goes first in the sequence


@attrs.frozen
class Sample:
    """One record of a dataset. Fields a dataset does not have keep their empty default."""

    id: str  # unique within its dataset and split (question id, annotation id, shard key)
    image: ImageRef
    dataset: str = ""  # registered name of the builder that produced it
    captions: tuple[str, ...] = ()  # captioning / pre-training texts (COCO has ~5)
    question: str = ""  # VQA question
    answers: tuple[str, ...] = ()  # VQA answers as given by annotators (VQAv2: 10, repeats kept)
    answer_type: str = ""  # VQAv2 "yes/no" | "number" | "other"; other datasets may leave it empty
    choices: tuple[str, ...] = ()  # multiple-choice options (A-OKVQA)
    expression: str = ""  # referring expression (RefCOCO family)
    box: Box | None = None  # the referred region, pixels
    conversation: tuple[Turn, ...] = ()  # instruction data (LLaVA)
    meta: Mapping[str, Any] = attrs.field(factory=dict, eq=False)  # dataset-specific extras (ids, split)


@attrs.frozen
class Segment:
    """A piece of the text sequence; ``target`` pieces carry the loss."""

    text: str
    target: bool = False


@attrs.frozen
class Example:
    """What a task makes of a sample for training: text segments after the image tokens.

    Captioning: ``[Segment(prompt), Segment(caption + eos, target=True)]``. Instructions:
    the chat-formatted turns, assistant replies as targets.
    """

    segments: tuple[Segment, ...]

    @property
    def prompt(self) -> str:
        """The text before the first target segment (what generation is conditioned on)."""
        out = []
        for s in self.segments:
            if s.target:
                break
            out.append(s.text)
        return "".join(out)

    @property
    def target(self) -> str:
        return "".join(s.text for s in self.segments if s.target)
