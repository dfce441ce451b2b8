"""The typed catalogue model: what a dataset's download is made of (issue #17's shared design).

Placeholder written by the transfer engine's author so the engine has something to import;
the catalogue's owner may extend it (validation, TOML loading)."""

from __future__ import annotations

from typing import Literal

import attrs

Login = Literal["", "huggingface", "kaggle", "manual"]


@attrs.frozen
class RemoteFile:
    """One file fetched over HTTP(S)."""

    url: str  # where it is fetched from
    path: str  # where it lands, relative to the dataset's folder under --root
    size: int | None  # bytes, when the source states it (checked after the transfer)
    cite: str  # where the URL and checksum come from (a page URL)
    sha256: str | None = None  # hex digest, only when the source publishes one
    md5: str | None = None  # hex digest, only when the source publishes one
    extract: bool = False  # a zip / tar(.gz) archive to unpack into the folder
    extract_to: str = ""  # sub-folder to unpack into ("" = the dataset's folder)


@attrs.frozen
class HubFiles:
    """Files of one Hugging Face hub repository."""

    repo_id: str  # "jxu124/refcoco"
    cite: str  # the page the repo id comes from
    repo_type: str = "dataset"  # "dataset" | "model"
    patterns: tuple[str, ...] = ()  # snapshot_download's allow_patterns (() = every file)
    revision: str = "main"  # branch, tag or commit
    path: str = ""  # sub-folder of the dataset's folder it lands in
    gated: bool = False  # the repo's terms must be accepted on its page first


@attrs.frozen
class WebImages:
    """Images listed by URL, fetched with img2dataset."""

    urls: RemoteFile | HubFiles  # the URL list (tsv / parquet / json)
    url_col: str  # column holding the image URL
    caption_col: str  # column holding the caption
    input_format: str  # img2dataset's: "tsv" | "parquet" | "json" ...
    cite: str  # where the list comes from
    image_size: int = 224  # pixels, the encoder's input side
    output: str = "shards"  # sub-folder the webdataset shards land in


@attrs.frozen
class DatasetSource:
    """Everything one dataset's download needs."""

    name: str  # "coco2017", "vqav2", "refcoco"
    datasets: tuple[str, ...]  # builder names it feeds (coco_caption, vqav2, ...)
    folder: str  # under --root: exactly the builder's default folder
    description: str  # one line
    licence: str  # the licence's name or page
    login: Login = ""  # what must be done by hand before downloading
    files: tuple[RemoteFile, ...] = ()  # HTTP files
    hub: tuple[HubFiles, ...] = ()  # hub repositories
    web: WebImages | None = None  # web-scale images (img2dataset)
    manual_steps: str = ""  # printed instead of downloading (Flickr30k via Kaggle)
    groups: tuple[str, ...] = ()  # "pretraining", "vqa", "grounding", "captioning", "instruct"
    size_bytes: int | None = None  # expected total on disk


__all__ = ["DatasetSource", "HubFiles", "Login", "RemoteFile", "WebImages"]
