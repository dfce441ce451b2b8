"""What every builder shares: records loaded on first use, typed samples, and clear errors.

A builder reads a dataset's annotation files into compact records once (on the first
``len``, index or iteration), then makes a :class:`~microvlm.data.Sample` per record on demand,
so a DataLoader can index it (``builder[i]``) and iterate it (``for s in builder``). Images are
never opened here: a sample carries an :class:`~microvlm.data.ImageRef` that DataLoader
workers decode.
"""

from __future__ import annotations

import abc
import json
import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
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
    """``value`` as a float (JSON numbers only); else an error naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedDataError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
    return float(value)


def get(record: Any, key: str, where: str) -> Any:
    """``record[key]``; a missing key (or a record that is not an object) names ``where``."""
    if not isinstance(record, Mapping):
        raise MalformedDataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    try:
        return record[key]
    except KeyError:
        raise MalformedDataError(f"{where}: missing key '{key}'") from None


class RecordBuilder(abc.ABC, Generic[R]):
    """A dataset read from annotation files: records loaded once, samples made on demand.

    Subclasses implement :meth:`_load` (files -> compact records) and :meth:`_sample`
    (record -> :class:`Sample`), and check in ``__init__`` that their files exist.
    """

    def __init__(self, name: str, root: str | Path) -> None:
        self.name = name  # registered name, written into each sample's ``dataset``
        self.root = Path(root)
        self._records: Sequence[R] | None = None
        self.skipped: Counter[str] = Counter()  # reason -> records skipped while loading
        self.skipped_examples: dict[str, list[str]] = {}  # reason -> the first few, where they are

    def skip(self, reason: str, where: str) -> None:
        """Count a record left out while loading (``reason``: ``malformed``, ``bad_shard``, ...)."""
        self.skipped[reason] += 1
        examples = self.skipped_examples.setdefault(reason, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(where)

    @abc.abstractmethod
    def _load(self) -> list[R]:
        """Read the annotation files into records."""

    @abc.abstractmethod
    def _sample(self, record: R) -> Sample:
        """One record as a typed sample."""

    def records(self) -> Sequence[R]:
        if self._records is None:
            try:
                self._records = self._load()
            except MicroVLMError:
                raise
            except (TypeError, ValueError, AttributeError, KeyError) as exc:  # a field of an unexpected type
                raise MalformedDataError(
                    f"{self.name}: cannot read the annotations under {self.root}: {type(exc).__name__}: {exc}"
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
