"""Finding a COCO image from its id, whichever COCO release is on disk.

VQAv2, OK-VQA, RefCOCO and Karpathy's split name COCO **2014** images
(``train2014/COCO_train2014_{id:012d}.jpg``), but many users download only COCO **2017**
(``train2017/{id:012d}.jpg``), which holds the same images under their ids with a different
train/val division. :class:`CocoImages` serves both: with the 2014 folder present it builds
the 2014 name; otherwise it finds the id in ``train2017/``, ``val2017/`` and ``test2017/``
(one directory listing each, on first use).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from microvlm_datasets.builders.base import MissingDataError

logger = logging.getLogger(__name__)

FOLDERS_2017 = ("train2017", "val2017", "test2017")


def folder_of(subset: str) -> str:
    """The image folder of an annotation subset: ``test-dev2015`` images are in ``test2015``."""
    return subset.replace("test-dev", "test")


def file_name(subset: str, image_id: int) -> str:
    """COCO's file name for an image of ``subset`` (2017: bare id; 2014/2015: prefixed)."""
    folder = folder_of(subset)
    if folder.endswith("2017"):
        return f"{image_id:012d}.jpg"
    return f"COCO_{folder}_{image_id:012d}.jpg"


class CocoImages:
    """Paths of COCO images under ``root``.

    :param root: the COCO folder (the one holding ``train2014/`` or ``train2017/``).
    :param layout: ``"coco2014"``, ``"coco2017"`` or ``"auto"`` (2014 names where the
        subset's folder exists, else a lookup by id in the 2017 folders).
    """

    def __init__(self, root: str | Path, layout: str = "auto", dataset: str = "") -> None:
        self.root = Path(root)
        self.layout = layout
        self.dataset = dataset
        self._direct: dict[str, bool] = {}  # subset -> whether its own folder is used
        self._index: dict[int, str] | None = None  # image id -> 2017 folder

    def check(self, subsets: tuple[str, ...]) -> None:
        """Fail early, naming the expected folders, when no image folder of any layout exists."""
        if any((self.root / folder_of(s)).is_dir() for s in subsets):
            return
        if self.layout != "coco2014" and any((self.root / f).is_dir() for f in FOLDERS_2017):
            return
        wanted = [self.root / folder_of(s) for s in subsets]
        if self.layout != "coco2014":
            wanted += [self.root / f for f in FOLDERS_2017 if f not in {w.name for w in wanted}]
        raise MissingDataError(
            f"{self.dataset}: no COCO image folder under image_root {self.root}: expected one of "
            f"{', '.join(str(w) for w in wanted)}. Download COCO there or set image_root (and "
            f"image_layout) in the recipe."
        )

    def path(self, subset: str, image_id: int) -> str:
        """Where image ``image_id`` of annotation subset ``subset`` (e.g. ``"train2014"``) is."""
        if self._uses_own_folder(subset):
            return str(self.root / folder_of(subset) / file_name(subset, image_id))
        folder = self._index_2017().get(image_id)
        if folder is None:  # not on disk: name where COCO 2017 would keep it; the loader reports it
            folder = folder_of(subset)[:-4] + "2017"
        return str(self.root / folder / f"{image_id:012d}.jpg")

    def _uses_own_folder(self, subset: str) -> bool:
        if self.layout == "coco2014":
            return True
        if folder_of(subset).endswith("2017"):
            return True  # a 2017 subset (A-OKVQA) is named directly
        if self.layout == "coco2017":
            return False
        if subset not in self._direct:
            self._direct[subset] = (self.root / folder_of(subset)).is_dir()
        return self._direct[subset]

    def _index_2017(self) -> dict[int, str]:
        if self._index is None:
            index: dict[int, str] = {}
            for folder in FOLDERS_2017:
                path = self.root / folder
                if not path.is_dir():
                    continue
                with os.scandir(path) as entries:
                    for entry in entries:
                        stem, _, ext = entry.name.partition(".")
                        if ext == "jpg" and stem.isdigit():
                            index[int(stem)] = folder
            logger.info("%s: indexed %d COCO 2017 images under %s", self.dataset, len(index), self.root)
            self._index = index
        return self._index
