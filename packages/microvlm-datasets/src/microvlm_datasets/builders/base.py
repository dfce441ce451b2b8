"""What every builder shares: records loaded on first use, typed samples, and clear errors.

A builder reads a dataset's annotation files into compact records once (on the first
``len``, index or iteration), then makes a :class:`~microvlm.data.Sample` per record on demand,
so a DataLoader can index it (``builder[i]``) and iterate it (``for s in builder``). Images are
never opened here: a sample carries an :class:`~microvlm.data.ImageRef` that DataLoader
workers decode.

**Bad records.** A file that cannot be parsed, or whose structure is not the dataset's, is an
error naming the file and the position (:class:`MalformedDataError`). A single record whose
text is not usable — a caption, question, answer, expression or conversation turn that is not
a string or is empty (:func:`text`) — or whose image path leaves the dataset's image folder
(:class:`ImageFolder`) is a :class:`BadRecord`: the builder leaves it out and counts it by
reason (:meth:`RecordBuilder.skip`). Training gets those counts with the samples and holds them
to ``run.max_bad_fraction`` like unreadable images; evaluation reads the same records.
"""

from __future__ import annotations

import abc
import json
import logging
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar

from microvlm.data import Sample
from microvlm.errors import MicroVLMError

logger = logging.getLogger(__name__)

R = TypeVar("R")

SHAPES_HINT = "microvlm datasets shapes --out DIR"
MAX_EXAMPLES = 5  # examples kept per reason of a skipped record


class MissingDataError(MicroVLMError, FileNotFoundError):
    """A dataset file or folder that a builder needs is not there."""


class MalformedDataError(MicroVLMError, ValueError):
    """An annotation file that cannot be parsed, or a record without a required field."""


class BadRecord(MalformedDataError):
    """One record to leave out and count: ``reason`` says what is wrong ("caption is empty"),
    ``where`` names the file, the record and the field."""

    def __init__(self, reason: str, where: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.reason = reason
        self.where = where


LEAVES_ROOT = "image path leaves the dataset root"


def _shown(value: Any) -> str:
    shown = repr(value)
    return f"{type(value).__name__} {shown if len(shown) <= 40 else shown[:37] + '...'}"


def text(value: Any, field: str, where: str) -> str:
    """``value`` when it is a string with more than white space; else a :class:`BadRecord`
    ("``field`` is not a string" / "``field`` is empty")."""
    if not isinstance(value, str):
        raise BadRecord(f"{field} is not a string", f"{where}: {_shown(value)}")
    if not value.strip():
        raise BadRecord(f"{field} is empty", f"{where}: {value!r}")
    return value


def texts(value: Any, field: str, where: str) -> tuple[str, ...]:
    """A JSON list of :func:`text` values; a value that is not a list is a :class:`BadRecord` too."""
    if not isinstance(value, list):
        raise BadRecord(f"{field}s is not a list", f"{where}: {_shown(value)}")
    return tuple(text(v, field, f"{where}[{i}]") for i, v in enumerate(value))


class ImageFolder:
    """Image paths from annotation files, kept inside one folder.

    :meth:`path` joins a relative path to ``root``; one that leaves it (``../`` past the top,
    an absolute path, a drive) is a :class:`BadRecord`, before anything is opened. The check is
    on the path as written, not on where links lead: the annotation text is untrusted, the
    folder layout is the user's own, so ``root`` and links inside it may point anywhere (images
    on another disk, LLaVA's ``coco/`` linked to a COCO download). Our own extraction never
    writes links from an archive.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._top = os.path.normpath(self.root)
        self._prefix = self._top.rstrip(os.sep) + os.sep

    def path(self, relative: Any, where: str) -> str:
        """``root/relative``, normalised, when it stays inside ``root``; else a :class:`BadRecord`."""
        relative = text(relative, "image path", where)
        if "\x00" in relative:
            raise BadRecord("image path is not a file name", f"{where}: {relative!r}")
        return self.check(os.path.join(self.root, relative), f"{where} {relative!r}")

    def check(self, path: str, where: str) -> str:
        """``path`` (already joined to ``root``), normalised, when it stays inside ``root``."""
        path = os.path.normpath(path)
        if not path.startswith(self._prefix):  # os.path.join drops root for an absolute path
            raise BadRecord(LEAVES_ROOT, f"{where}: {path} is outside {self._top}")
        return path


def missing(
    dataset: str, path: Path, what: str = "annotation file", tried: Sequence[Path] = ()
) -> MissingDataError:
    """The error for a missing file: names it, and says how to get the data."""
    also = [str(p) for p in tried if p != path]
    where = f"{path}" + (f" (also looked for {', '.join(also)})" if also else "")
    return MissingDataError(
        f"{dataset}: {what} not found: {where}. Download the dataset into that folder (see the "
        f"microvlm-datasets README) or set root/image_root in the recipe; for offline runs, "
        f"`{SHAPES_HINT}` writes a synthetic set in this format."
    )


def find_file(dataset: str, candidates: Sequence[Path], what: str = "annotation file") -> Path:
    """The first of ``candidates`` that is a file; else an error naming the first (expected) one."""
    for path in candidates:
        if path.is_file():
            return path
    raise missing(dataset, candidates[0], what, candidates)


def require_dir(dataset: str, path: Path, what: str) -> Path:
    if not path.is_dir():
        raise missing(dataset, path, what)
    return path


def read_json(path: Path) -> Any:
    """Parse a JSON file; a syntax error names the file, line and column."""
    try:
        with path.open("rb") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise MalformedDataError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except UnicodeDecodeError as exc:
        raise MalformedDataError(
            f"{path}: not UTF-8 text (byte {exc.start}): is this the right file?"
        ) from None
    except RecursionError:
        raise MalformedDataError(f"{path}: JSON nested too deeply: is this the right file?") from None


def read_jsonl(path: Path) -> list[Any]:
    """Parse JSON lines (one object per line, blank lines skipped); errors name the line."""
    rows = []
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise MalformedDataError(
                    f"{path}: line {number}: invalid JSON at column {exc.colno}: {exc.msg}"
                ) from None
            except UnicodeDecodeError as exc:
                raise MalformedDataError(
                    f"{path}: line {number}: not UTF-8 text (byte {exc.start})"
                ) from None
            except RecursionError:
                raise MalformedDataError(f"{path}: line {number}: JSON nested too deeply") from None
    return rows


def expect(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    """``value`` if it is a ``kind``; else an error saying what was found at ``where``."""
    if not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise MalformedDataError(f"{where}: expected {names}, got {type(value).__name__}")
    return value


def integer(value: Any, where: str) -> int:
    """``value`` as an int (ints and digit strings, as ids come); else an error naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise MalformedDataError(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
    try:
        return int(value)
    except ValueError:
        raise MalformedDataError(f"{where}: expected an integer, got {value!r}") from None


def number(value: Any, where: str) -> float:
    """``value`` as a finite float (JSON numbers only); else an error naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedDataError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
    try:
        out = float(value)
    except OverflowError:
        out = float("inf")
    if out - out != 0:  # inf or nan
        raise MalformedDataError(f"{where}: expected a finite number, got {value!r}")
    return out


def get(record: Any, key: str, where: str) -> Any:
    """``record[key]``; a missing key (or a record that is not an object) names ``where``."""
    if not isinstance(record, Mapping):
        raise MalformedDataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    try:
        return record[key]
    except KeyError:
        raise MalformedDataError(f"{where}: missing key '{key}'") from None


class _LeaveOut:
    """``with builder.bad_records:`` — a :class:`BadRecord` inside is counted and the rest skipped."""

    def __init__(self, builder: RecordBuilder[Any]) -> None:
        self.builder = builder

    def __enter__(self) -> None:
        self.builder.records_read += 1  # what skips are counted against (run.max_bad_fraction)

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        if isinstance(exc, BadRecord):
            self.builder.skip(exc.reason, exc.where)
            return True
        return False


class RecordBuilder(abc.ABC, Generic[R]):
    """A dataset read from annotation files: records loaded once, samples made on demand.

    Subclasses implement :meth:`_load` (files -> compact records) and :meth:`_sample`
    (record -> :class:`Sample`), and check in ``__init__`` that their files exist. In
    :meth:`_load`, ``with self.bad_records:`` around one record's reading leaves the record out
    when a :class:`BadRecord` is raised in it, counted by its reason.
    """

    def __init__(self, name: str, root: str | Path) -> None:
        self.name = name  # registered name, written into each sample's ``dataset``
        self.root = Path(root)
        self._records: Sequence[R] | None = None
        self.skipped: Counter[str] = Counter()  # reason -> records skipped while loading
        self.skipped_examples: dict[str, list[str]] = {}  # reason -> the first few, where they are
        self.records_read = 0  # annotation records read in bad_records blocks, kept or skipped
        self.bad_records = _LeaveOut(self)  # context: a BadRecord inside is counted, the record left out

    def skip(self, reason: str, where: str) -> None:
        """Count a record left out while loading (``reason``: ``malformed``, ``bad_shard``, ...)."""
        self.skipped[reason] += 1
        examples = self.skipped_examples.setdefault(reason, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(where)

    @property
    def annotation_files(self) -> tuple[Path, ...]:
        """The files :meth:`_load` reads, named in its errors: ``self.file`` unless overridden."""
        file = getattr(self, "file", None)
        return (file,) if isinstance(file, Path) else ()

    @abc.abstractmethod
    def _load(self) -> list[R]:
        """Read the annotation files into records."""

    @abc.abstractmethod
    def _sample(self, record: R) -> Sample:
        """One record as a typed sample."""

    def records(self) -> Sequence[R]:
        if self._records is None:
            self.skipped.clear()
            self.skipped_examples.clear()
            self.records_read = 0
            try:
                self._records = self._load()
            except MicroVLMError:
                raise
            except (
                TypeError,
                ValueError,
                AttributeError,
                LookupError,
                ArithmeticError,
            ) as exc:  # a field of an unexpected type
                files = ", ".join(str(f) for f in self.annotation_files)
                raise MalformedDataError(
                    f"{self.name}: cannot read the annotations under {self.root}"
                    + (f" ({files})" if files else "")
                    + f": {type(exc).__name__}: {exc}"
                ) from exc
            logger.info("%s: %d samples from %s", self.name, len(self._records), self.root)
            if self.skipped:
                logger.warning(
                    "%s: skipped %s while loading (e.g. %s)",
                    self.name,
                    ", ".join(f"{n} {reason}" for reason, n in self.skipped.items()),
                    next(iter(self.skipped_examples.values()))[0],
                )
        return self._records

    def __len__(self) -> int:
        return len(self.records())

    def __getitem__(self, index: int) -> Sample:
        return self._sample(self.records()[index])

    def samples(self) -> Iterator[Sample]:
        """Every sample, in file order."""
        for record in self.records():
            yield self._sample(record)

    def __iter__(self) -> Iterator[Sample]:
        return self.samples()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, root={str(self.root)!r})"
