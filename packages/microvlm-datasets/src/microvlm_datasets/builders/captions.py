"""Caption datasets: COCO 2017 captions, Karpathy's COCO and Flickr30k splits, Kaggle's Flickr30k CSV.

One sample per image, with all its captions (COCO has about five); the task picks among them.

On disk:

- COCO 2017: ``{root}/annotations/captions_{split}2017.json`` — ``{"images": [{"id",
  "file_name", "width", "height", ...}], "annotations": [{"id", "image_id", "caption"}]}``;
  images ``{image_root}/{split}2017/{file_name}``.
- Karpathy (``dataset_coco.json``, ``dataset_flickr30k.json``) — ``{"images": [{"filepath"
  (COCO only), "filename", "split": train|val|test|restval, "sentences": [{"raw", "tokens"}],
  "cocoid" | "imgid"}]}``; COCO images ``{image_root}/{filepath}/{filename}`` (2014 names, or
  found by ``cocoid`` among COCO 2017 folders), Flickr30k images ``{image_root}/{filename}``.
- Kaggle ``hsankesara/flickr-image-dataset``: ``flickr30k_images/results.csv`` with lines
  ``image_name| comment_number| comment`` and the images in ``flickr30k_images/flickr30k_images/``.
  It has no splits, so only ``split = "all"`` reads it.

A caption that is not a string or is empty is left out and counted (an image keeps its other
captions; one left with none is left out); so is an image whose path leaves the image folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from microvlm.data import ImageRef, Sample
from microvlm_datasets.builders.base import (
    LEAVES_ROOT,
    BadRecord,
    ImageFolder,
    MalformedDataError,
    MissingDataError,
    RecordBuilder,
    expect,
    find_file,
    get,
    integer,
    missing,
    read_json,
    text,
)
from microvlm_datasets.builders.coco_images import CocoImages
from microvlm_datasets.config import CocoCaptionConfig, Flickr30kConfig

#: Karpathy's ``filepath``: a COCO image folder, ``train2014`` or ``val2014``.
COCO_FOLDER = re.compile(r"(train|val|test)20[0-9]{2}")

# (image id, image path, captions, (width, height) or None, meta)
CaptionRecord = tuple[str, str, tuple[str, ...], tuple[int, int] | None, dict[str, Any]]


def karpathy_splits(split: str, restval: bool) -> set[str]:
    if split == "all":
        return {"train", "val", "test", "restval"}
    return {"train", "restval"} if split == "train" and restval else {split}


class CaptionBuilder(RecordBuilder[CaptionRecord]):
    """Shared sample making for the caption formats."""

    def _sentences(self, image: Any, where: str) -> tuple[str, ...]:
        """A Karpathy image's ``sentences[].raw``, stripped; bad ones left out and counted."""
        sentences = expect(get(image, "sentences", where), list, f"{where}.sentences")
        captions = []
        for j, sentence in enumerate(sentences):
            at = f"{where}.sentences[{j}]"
            with self.bad_records:
                captions.append(text(get(sentence, "raw", at), "caption", f"{at}.raw").strip())
        return tuple(captions)

    def _sample(self, record: CaptionRecord) -> Sample:
        image_id, path, captions, size, meta = record
        return Sample(
            id=image_id, image=ImageRef(path=path, size=size), dataset=self.name, captions=captions, meta=meta
        )


class CocoCaptions(CaptionBuilder):
    """``coco_caption``: COCO 2017 ``captions_{split}2017.json``, or Karpathy's ``dataset_coco.json``."""

    def __init__(self, config: CocoCaptionConfig, name: str = "coco_caption") -> None:
        super().__init__(name, config.root)
        self.config = config
        image_root = Path(config.image_root or config.root)
        self.images = CocoImages(image_root, config.image_layout, name)
        if config.format == "karpathy":
            self.file = find_file(
                name, [self.root / config.karpathy_file, self.root / "annotations" / config.karpathy_file]
            )
            self.images.check(("train2014", "val2014"))
        else:
            self.file = self.root / "annotations" / f"captions_{config.split}2017.json"
            if not self.file.is_file():
                note = (
                    ' (COCO 2017 publishes no test captions: use format = "karpathy")'
                    if config.split == "test"
                    else ""
                )
                raise MissingDataError(f"{missing(name, self.file)}{note}")
            self.images.check((f"{config.split}2017",))

    def _load(self) -> list[CaptionRecord]:
        data = read_json(self.file)
        if self.config.format == "karpathy":
            return self._load_karpathy(data)
        where = str(self.file)
        captions: dict[int, list[str]] = {}
        for i, ann in enumerate(expect(get(data, "annotations", where), list, f"{where}: annotations")):
            at = f"{where}: annotations[{i}]"
            image_id = get(ann, "image_id", at)
            with self.bad_records:
                caption = text(get(ann, "caption", at), "caption", f"{at}.caption").strip()
                captions.setdefault(image_id, []).append(caption)
        subset = f"{self.config.split}2017"
        folder = ImageFolder(self.images.root / subset)  # the split's folder may be a link (another disk)
        records: list[CaptionRecord] = []
        for i, image in enumerate(expect(get(data, "images", where), list, f"{where}: images")):
            at = f"{where}: images[{i}]"
            image_id = get(image, "id", at)
            if image_id not in captions:
                continue  # an image without (usable) captions teaches nothing
            with self.bad_records:
                path = folder.path(get(image, "file_name", at), f"{at}.file_name")
                size = (image["width"], image["height"]) if "width" in image and "height" in image else None
                meta = {"image_id": image_id, "split": self.config.split}
                records.append((str(image_id), path, tuple(captions[image_id]), size, meta))
        return records

    def _load_karpathy(self, data: Any) -> list[CaptionRecord]:
        where = str(self.file)
        wanted = karpathy_splits(self.config.split, self.config.restval)
        records: list[CaptionRecord] = []
        for i, image in enumerate(expect(get(data, "images", where), list, f"{where}: images")):
            at = f"{where}: images[{i}]"
            if get(image, "split", at) not in wanted:
                continue
            image_id = integer(get(image, "cocoid", at), f"{at}.cocoid")
            with self.bad_records:
                subset = text(get(image, "filepath", at), "image path", f"{at}.filepath")
                if not COCO_FOLDER.fullmatch(subset):  # the file is then named by its id: it stays in there
                    raise BadRecord(
                        LEAVES_ROOT, f"{at}.filepath: {subset!r} is not a COCO folder name (e.g. 'val2014')"
                    )
                path = self.images.path(subset, image_id)
                meta = {"image_id": image_id, "split": image["split"], "filename": image.get("filename", "")}
                captions = self._sentences(image, at)
                if captions:
                    records.append((str(image_id), path, captions, None, meta))
        return records


class Flickr30k(CaptionBuilder):
    """``flickr30k``: Karpathy's ``dataset_flickr30k.json`` (default) or Kaggle's ``results.csv``."""

    def __init__(self, config: Flickr30kConfig, name: str = "flickr30k") -> None:
        super().__init__(name, config.root)
        self.config = config
        if config.format == "karpathy":
            self.file = find_file(name, [self.root / config.karpathy_file])
            default_images = [
                self.root / "flickr30k-images",
                self.root / "flickr30k_images" / "flickr30k_images",
            ]
        else:
            if config.split != "all":
                raise MalformedDataError(
                    f'{name}: Kaggle\'s results.csv has no train/val/test splits; set split = "all", '
                    f'or use format = "karpathy" with dataset_flickr30k.json for the standard splits'
                )
            self.file = find_file(
                name, [self.root / "flickr30k_images" / "results.csv", self.root / "results.csv"]
            )
            default_images = [self.file.parent / "flickr30k_images", self.file.parent]
        if config.image_root:
            self.image_dir = Path(config.image_root)
        else:
            self.image_dir = next((d for d in default_images if d.is_dir()), default_images[0])
        if not self.image_dir.is_dir():
            raise missing(name, self.image_dir, "image folder")

    def _load(self) -> list[CaptionRecord]:
        if self.config.format == "kaggle_csv":
            return self._load_csv()
        data = read_json(self.file)
        where = str(self.file)
        wanted = karpathy_splits(self.config.split, restval=False)
        folder = ImageFolder(self.image_dir)
        records: list[CaptionRecord] = []
        for i, image in enumerate(expect(get(data, "images", where), list, f"{where}: images")):
            at = f"{where}: images[{i}]"
            if get(image, "split", at) not in wanted:
                continue
            with self.bad_records:
                filename = get(image, "filename", at)
                path = folder.path(filename, f"{at}.filename")
                meta = {"filename": filename, "split": image["split"], "imgid": image.get("imgid")}
                captions = self._sentences(image, at)
                if captions:
                    records.append((filename.rsplit(".", 1)[0], path, captions, None, meta))
        return records

    def _load_csv(self) -> list[CaptionRecord]:
        try:
            with self.file.open(encoding="utf-8") as f:
                lines = f.read().split("\n")
        except UnicodeDecodeError as exc:
            raise MalformedDataError(
                f"{self.file}: not UTF-8 text (byte {exc.start}): is this the right file?"
            ) from None
        if not lines or "image_name" not in lines[0]:
            raise MalformedDataError(
                f"{self.file}: line 1: expected the header 'image_name| comment_number| comment'"
            )
        folder = ImageFolder(self.image_dir)
        captions: dict[str, list[str]] = {}
        paths: dict[str, str] = {}  # image name -> its checked path
        for number, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            parts = [p.strip() for p in line.split("|", 2)]
            if len(parts) == 2:  # the known broken row: "name.jpg| 4   A dog runs ..." (one '|' missing)
                parts = [parts[0], *(v.strip() for v in parts[1].split(None, 1))]
            if len(parts) != 3 or not parts[0]:
                raise MalformedDataError(
                    f"{self.file}: line {number}: expected 'image_name| comment_number| comment'"
                )
            name, at = parts[0], f"{self.file}: line {number}"
            with self.bad_records:
                caption = text(parts[2], "caption", f"{at}: comment")
                if name not in paths:
                    paths[name] = folder.path(name, f"{at}: image_name")
                captions.setdefault(name, []).append(caption)
        return [
            (name.rsplit(".", 1)[0], paths[name], tuple(texts), None, {"filename": name, "split": "all"})
            for name, texts in captions.items()
        ]
