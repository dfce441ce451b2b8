"""The typed catalogue of dataset downloads (issue #17): what a dataset's download is made of.

The catalogue itself is data, one TOML file per source under ``download/catalogue/``
(``coco2017.toml``, ``vqav2.toml``, ...), read by :func:`load_catalogue` into the frozen classes
here and validated: an unknown key, a wrong type, a path leaving the dataset's folder or a
checksum that is not hex is a :class:`CatalogueError` naming the file and the field. Every URL,
repository id and checksum carries a ``cite`` (the page it was read from); a checksum is set
only where a source publishes one, never computed by us from a download.

A :class:`DatasetSource` satisfies :class:`microvlm.contracts.data.DataSource` and is what the
``register_sources`` hook registers (``plugin.py``), so a third party adds a source the same way.
This module imports only attrs and tomllib; the structuring (cattrs) happens in
:func:`load_catalogue`, called by the plugin's factories and the CLI, not at import.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import attrs

from microvlm.errors import FieldValueError, MicroVLMError

Login = Literal["", "huggingface", "kaggle", "manual"]

#: The groups ``download --group`` takes; the seed's three first.
GROUPS = ("pretraining", "vqa", "grounding", "captioning", "instruct")

#: Where the catalogue's TOML files are, one source a file.
CATALOGUE_DIR = Path(__file__).with_name("catalogue")

_HEX = {"sha256": re.compile(r"[0-9a-f]{64}"), "md5": re.compile(r"[0-9a-f]{32}")}


class CatalogueError(MicroVLMError):
    """A catalogue file that cannot be read: the message names the file and the field."""


def _relative(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    """A ``/``-separated path inside the dataset's folder (``""`` = the folder itself)."""
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or "\\" in value:
        raise FieldValueError(attribute.name, f"must be a relative path inside the folder, got {value!r}")


def _digest(instance: Any, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and not _HEX[attribute.name].fullmatch(value):
        raise FieldValueError(attribute.name, f"must be a lower-case hex digest, got {value!r}")


def _non_empty(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if not value.strip():
        raise FieldValueError(attribute.name, "must not be empty")


def _known_groups(instance: Any, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    unknown = [g for g in value if g not in GROUPS]
    if unknown:
        raise FieldValueError(attribute.name, f"unknown group {unknown[0]!r}; groups are {', '.join(GROUPS)}")


@attrs.frozen
class RemoteFile:
    """One file fetched over HTTP(S)."""

    url: str = attrs.field(validator=_non_empty)  # where it is fetched from
    path: str = attrs.field(validator=[_non_empty, _relative])  # where it lands, relative to the folder
    #: bytes, where the source states it (checked after the transfer); None (left out of the
    #: TOML) when it states none
    size: int | None
    cite: str = attrs.field(validator=_non_empty)  # the page the URL (and checksum) come from
    sha256: str | None = attrs.field(default=None, validator=_digest)  # only when the source publishes one
    md5: str | None = attrs.field(default=None, validator=_digest)  # only when the source publishes one
    extract: bool = False  # a zip / tar(.gz) archive to unpack into the folder
    extract_to: str = attrs.field(default="", validator=_relative)  # sub-folder to unpack into ("" = folder)
    #: placed by hand, as the source's manual_steps say (``url`` is then the page to get it
    #: from, not a file): the downloader only checks that it is there
    manual: bool = False


@attrs.frozen
class HubFiles:
    """Files of one Hugging Face hub repository (``huggingface_hub.snapshot_download``)."""

    repo_id: str = attrs.field(validator=_non_empty)  # "jxu124/refcoco"
    cite: str = attrs.field(validator=_non_empty)  # the page the repo id comes from
    repo_type: Literal["dataset", "model"] = "dataset"
    patterns: tuple[str, ...] = ()  # snapshot_download's allow_patterns (() = every file)
    revision: str = "main"  # branch, tag or commit
    path: str = attrs.field(default="", validator=_relative)  # sub-folder of the folder it lands in
    gated: bool = False  # the repo's terms must be accepted on its page first (and a token given)

    @property
    def page(self) -> str:
        """The repository's page, where gated terms are accepted."""
        prefix = "datasets/" if self.repo_type == "dataset" else ""
        return f"https://huggingface.co/{prefix}{self.repo_id}"


@attrs.frozen
class WebImages:
    """Images listed by URL, fetched with img2dataset into the layout the builders read."""

    urls: RemoteFile | HubFiles  # the URL list (tsv / parquet / json), fetched first
    url_col: str  # column holding the image URL
    caption_col: str  # column holding the caption
    input_format: str  # img2dataset's --input_format: "tsv" | "csv" | "parquet" | "json" ...
    cite: str = attrs.field(validator=_non_empty)  # where the list's format and columns come from
    image_size: int = 224  # pixels, the encoder's input side
    output: str = attrs.field(default="", validator=_relative)  # sub-folder the output lands in ("" = folder)
    #: column names of a list without a header row (CC3M's TSV is "caption<TAB>url"); () = it has one
    header: tuple[str, ...] = ()
    #: "webdataset" (tar shards, what cc3m/laion_coco/sbu read) or "files" (one image per row,
    #: named ``{key_col value}{extension of the URL}``, what OCR-VQA's builder reads)
    output_format: Literal["webdataset", "files"] = "webdataset"
    key_col: str = ""  # with output_format = "files": the column naming each file ("" = a JSON object's keys)
    list_path: str = attrs.field(
        default="", validator=_relative
    )  # the list inside an extracted archive ("" = urls.path)


@attrs.frozen
class DatasetSource:
    """Everything one dataset's download needs; satisfies :class:`microvlm.contracts.data.DataSource`."""

    name: str = attrs.field(validator=_non_empty)  # "coco2017", "vqav2", "refcoco"
    datasets: tuple[str, ...]  # builder names it feeds (coco_caption, vqav2, ...)
    folder: str = attrs.field(validator=[_non_empty, _relative])  # under --root: the builders' default folder
    description: str = attrs.field(validator=_non_empty)  # one line
    licence: str = attrs.field(validator=_non_empty)  # the licence's name or terms-of-use page
    login: Login = ""  # what must be done by hand first (see the DataSource contract)
    files: tuple[RemoteFile, ...] = ()  # HTTP files
    hub: tuple[HubFiles, ...] = ()  # hub repositories
    web: WebImages | None = None  # web-scale images (img2dataset)
    #: printed instead of fetching what cannot be fetched for the user (Flickr30k's Kaggle
    #: images, OCR-VQA's Google Drive file); the rest of the source is still downloaded
    manual_steps: str = ""
    groups: tuple[str, ...] = attrs.field(
        default=(), validator=_known_groups
    )  # of GROUPS: "pretraining", "vqa", "grounding", "captioning", "instruct"
    size_bytes: int | None = None  # expected total on disk once downloaded (and extracted), about
    needs: tuple[str, ...] = ()  # other sources its builders read (vqav2 -> coco2014's images)
    #: the splits of its datasets it provides (status calls the dataset complete when they are
    #: all there); () = every split status reports
    splits: tuple[str, ...] = ()
    note: str = ""  # what a user should know: a dead link's replacement, a withdrawn release
    aliases: tuple[str, ...] = ()  # other names ``--datasets`` takes for it (the seed's "coco")

    @property
    def gated(self) -> bool:
        """Whether a hub repository of it needs accepted terms and a token."""
        return any(h.gated for h in self.hub) or (isinstance(self.web, WebImages) and _gated(self.web.urls))


def _gated(urls: RemoteFile | HubFiles) -> bool:
    return isinstance(urls, HubFiles) and urls.gated


@attrs.frozen
class SourceSettings:
    """The config class sources are registered with: a source has no settings, it is data."""


# -------------------------------------------------------------------------------------
# Loading the TOML files
# -------------------------------------------------------------------------------------


def _converter() -> Any:
    from microvlm.recipes.structure import make_converter

    conv = make_converter()

    def urls(value: Any, _: type) -> RemoteFile | HubFiles:
        if not isinstance(value, dict):
            raise TypeError(f"expected a table with url or repo_id, got {value!r}")
        return conv.structure(value, HubFiles if "repo_id" in value else RemoteFile)

    conv.register_structure_hook(RemoteFile | HubFiles, urls)
    return conv


def parse_source(data: Mapping[str, Any], where: str) -> DatasetSource:
    """One catalogue table -> a :class:`DatasetSource`; a :class:`CatalogueError` names ``where``."""
    from microvlm.recipes.structure import ConfigErrors, structure

    try:
        return structure(_sizes(data), DatasetSource, _converter())
    except ConfigErrors as exc:
        lines = [f"{where}: {'.'.join(path) or '<top>'}: {message}" for path, message in exc.problems]
        raise CatalogueError("\n".join(lines)) from None


def _sizes(data: Mapping[str, Any]) -> dict[str, Any]:
    """TOML has no null: a file whose source states no size leaves ``size`` out (None)."""
    out = dict(data)
    if isinstance(out.get("files"), list):
        out["files"] = [{"size": None, **f} if isinstance(f, dict) else f for f in out["files"]]
    web = out.get("web")
    if isinstance(web, dict) and isinstance(web.get("urls"), dict) and "repo_id" not in web["urls"]:
        out["web"] = {**web, "urls": {"size": None, **web["urls"]}}
    return out


def catalogue_files(folder: Path | None = None) -> list[Path]:
    """The catalogue's TOML files, one source each, in name order."""
    return sorted((folder or CATALOGUE_DIR).glob("*.toml"))


def read_table(path: Path) -> dict[str, Any]:
    """One catalogue file as TOML, not yet checked (only tomllib: ``microvlm --help`` stays fast)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - core depends on tomli there
        import tomli as tomllib
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CatalogueError(f"{path}: {exc}") from None


def load_file(path: Path) -> DatasetSource:
    """Read and check one catalogue file; its ``name`` must be the file's stem."""
    source = parse_source(read_table(path), str(path))
    if source.name != path.stem:
        raise CatalogueError(f"{path}: name: {source.name!r} must be the file's name, {path.stem!r}")
    return source


def load_catalogue(folder: Path | None = None) -> dict[str, DatasetSource]:
    """Every ``*.toml`` of ``folder`` (default: this package's catalogue), by name, in file order."""
    sources = {s.name: s for s in map(load_file, catalogue_files(folder))}
    for source in sources.values():
        unknown = [n for n in source.needs if n not in sources]
        if unknown:
            raise CatalogueError(
                f"{CATALOGUE_DIR / (source.name + '.toml')}: needs: no source {unknown[0]!r}"
            )
    return sources


# -------------------------------------------------------------------------------------
# Choosing sources: --datasets NAME ..., --group G ..., --all
# -------------------------------------------------------------------------------------


def select_sources(
    sources: Mapping[str, DatasetSource],
    names: Iterable[str] = (),
    groups: Iterable[str] = (),
    everything: bool = False,
) -> list[DatasetSource]:
    """The sources to download, in catalogue order, with the ones they ``need`` added.

    A name is a source's name (``coco2017``), an alias (``coco``) or a dataset a source feeds
    (``vqav2``); an unknown name or group
    raises :class:`CatalogueError` listing the ones that exist.
    """
    chosen: set[str] = set(sources) if everything else set()
    for group in groups:
        if group not in GROUPS:
            raise CatalogueError(f"unknown group {group!r}; groups are {', '.join(GROUPS)}")
        chosen |= {s.name for s in sources.values() if group in s.groups}
    for name in names:
        found = resolve_name(sources, name)
        if not found:
            from microvlm.errors import did_you_mean

            known = sorted(sources)
            raise CatalogueError(
                f"unknown dataset {name!r}{did_you_mean(name, known)}; sources are {', '.join(known)} "
                f"(or a dataset they feed, or --group {' | '.join(GROUPS)}, or --all)"
            )
        chosen |= found
    todo = list(chosen)
    while todo:  # what they need, transitively
        name = todo.pop()
        for need in getattr(sources[name], "needs", ()):
            if need not in sources:
                raise CatalogueError(f"source {name!r} needs {need!r}, which no plugin registers")
            if need not in chosen:
                chosen.add(need)
                todo.append(need)
    return [s for s in sources.values() if s.name in chosen]


def resolve_name(sources: Mapping[str, DatasetSource], name: str) -> set[str]:
    """The sources ``name`` means: a source, one of its ``aliases``, or the sources feeding a
    dataset (those holding its own files when there are any, not only images it shares)."""
    if name in sources:
        return {name}
    aliased = {s.name for s in sources.values() if name in s.aliases}
    if aliased:
        return aliased
    primary = {s.name for s in sources.values() if name in s.datasets and _primary(s, name)}
    return primary or {s.name for s in sources.values() if name in s.datasets}


def _primary(source: DatasetSource, dataset: str) -> bool:
    """Whether ``source`` holds ``dataset``'s own files (not only images it shares)."""
    from microvlm_datasets.catalogue import CATALOGUE

    info = CATALOGUE.get(dataset)
    return info is None or info.folder == source.folder


__all__ = [
    "CATALOGUE_DIR",
    "GROUPS",
    "CatalogueError",
    "DatasetSource",
    "HubFiles",
    "Login",
    "RemoteFile",
    "SourceSettings",
    "WebImages",
    "catalogue_files",
    "load_catalogue",
    "load_file",
    "parse_source",
    "read_table",
    "resolve_name",
    "select_sources",
]
