"""Typed samples: what a dataset builder yields and a task consumes.

A builder reads a dataset's real files and yields :class:`Sample` objects; a task turns a
sample into an :class:`Example` (text segments, some of them training targets) and, at
evaluation, predictions into metrics. The types import nothing heavy; images are decoded
only when :meth:`ImageRef.open` is called (in DataLoader workers).
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import attrs

from microvlm.errors import MicroVLMError

if TYPE_CHECKING:
    from PIL import Image

#: Why an image could not be read (:attr:`ImageError.reason`).
ImageProblem = Literal["missing", "truncated", "not_image", "unreadable"]


class ImageError(MicroVLMError, OSError):
    """An image that cannot be read; the message names the file (and the tar member).

    ``reason``: ``"missing"`` (no such file), ``"truncated"`` (the file or tar member ends
    early), ``"not_image"`` (no image format PIL knows) or ``"unreadable"`` (another I/O or
    decoding error). Training skips such images and counts them by reason.
    """

    def __init__(self, message: str, reason: ImageProblem = "unreadable", where: str = "") -> None:
        super().__init__(message)
        self.reason = reason  # one of ImageProblem
        self.where = where  # ImageRef.where of the image


@attrs.frozen
class ImageRef:
    """Where a sample's image is: a file, a member of a tar file (web shards), or inline bytes.

    A web-shard image is referenced, not held: ``path`` is the tar file, ``member`` the image's
    name in it, and ``offset``/``length`` where its bytes are (``TarInfo.offset_data`` and
    ``size``), so :meth:`open` reads just those bytes with one seek and an index of millions
    of shard samples stays small.
    """

    path: str = ""  # image file on disk, or the tar file when member is set; "" when the bytes are inline
    data: bytes = attrs.field(default=b"", repr=False, eq=False)  # encoded image (JPEG/PNG) held in memory
    size: tuple[int, int] | None = None  # (width, height) in pixels, when the annotation says
    member: str = ""  # name of the image inside the tar file at path (e.g. "000010042.jpg"); "" = none
    offset: int = 0  # byte offset of the member's data in the tar file
    length: int = 0  # byte length of the member's data

    def __attrs_post_init__(self) -> None:
        if not self.path and not self.data:
            raise ValueError("ImageRef needs a path or encoded bytes")
        if self.member and (not self.path or self.offset < 0 or self.length < 0):
            raise ValueError(
                f"ImageRef of tar member {self.member!r} needs the tar path, offset >= 0, length >= 0"
            )

    @property
    def where(self) -> str:
        """The image's location for messages: ``path``, ``path[member]`` or ``<N inline bytes>``."""
        if self.data:
            return f"<{len(self.data)} inline bytes>"
        return f"{self.path}[{self.member}]" if self.member else self.path

    def read_bytes(self) -> bytes:
        """The encoded image: the inline bytes, the tar member's bytes, or the whole file."""
        if self.data:
            return self.data
        try:
            with open(self.path, "rb") as f:
                if not self.member:
                    return f.read()
                f.seek(self.offset)
                data = f.read(self.length)
        except FileNotFoundError as exc:
            raise ImageError(f"cannot read image {self.where}: no such file", "missing", self.where) from exc
        except OSError as exc:
            raise ImageError(f"cannot read image {self.where}: {exc}", "unreadable", self.where) from exc
        if len(data) < self.length:
            raise ImageError(
                f"cannot read image {self.where}: the tar file ends {self.length - len(data)} bytes "
                f"into the member's {self.length}",
                "truncated",
                self.where,
            )
        return data

    def _source(self) -> BinaryIO:
        """The encoded image as a file: the bytes in memory, or the file when it is a regular one
        (opened without blocking and checked, so that a FIFO or device named like an image in a
        dataset folder is refused instead of hanging the reader)."""
        if self.data or self.member:
            return io.BytesIO(self.read_bytes())
        fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        try:
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
            if regular:
                return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        raise ImageError(f"cannot read image {self.where}: not a regular file", "not_image", self.where)

    def open(self) -> Image.Image:
        """Decode to an RGB PIL image; raises :class:`ImageError` naming the file and the reason.

        Any failure of the decoder counts: image bytes come from datasets, which are not trusted,
        and PIL's decoders raise more than ``OSError`` on hostile input.
        """
        from PIL import Image, UnidentifiedImageError

        try:
            with warnings.catch_warnings():  # over Image.MAX_IMAGE_PIXELS: refused, as infer does
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with self._source() as source, Image.open(source) as image:
                    return image.convert("RGB")
        except ImageError:
            raise
        except FileNotFoundError as exc:
            raise ImageError(f"cannot read image {self.where}: no such file", "missing", self.where) from exc
        except UnidentifiedImageError as exc:
            raise ImageError(
                f"cannot read image {self.where}: not an image (no format PIL knows)", "not_image", self.where
            ) from exc
        except (
            OSError,
            SyntaxError,
            ValueError,
            EOFError,
            Image.DecompressionBombError,
            Image.DecompressionBombWarning,
        ) as exc:
            reason: ImageProblem = "truncated" if "truncated" in str(exc).lower() else "unreadable"
            raise ImageError(f"cannot read image {self.where}: {exc}", reason, self.where) from exc
        # A decoder's own bug on hostile bytes (TIFF: TypeError, DDS: NotImplementedError, ...).
        except Exception as exc:
            raise ImageError(
                f"cannot read image {self.where}: {type(exc).__name__}: {exc}", "unreadable", self.where
            ) from exc


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
        """COCO's ``bbox = [x, y, width, height]`` (lmms-lab RefCOCO too; jxu124/refcoco's is corners)."""
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
    # more samples of the same image trained in the same sequence after this one (a task's
    # training_samples puts them here, e.g. vqa's questions_per_sequence); () = none
    group: tuple[Sample, ...] = ()


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
