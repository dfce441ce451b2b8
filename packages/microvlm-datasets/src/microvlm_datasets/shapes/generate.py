"""``generate``: write the synthetic shapes set, every split in every real format.

Each image is drawn from its own random generator, seeded with ``(seed, split, index)``, so
image ``i`` of a split does not depend on how many images the other splits have, and a seed
reproduces the same bytes. Image ids: train ``1..``, val ``10_000_001..``, test
``20_000_001..`` (unique across splits, as COCO's are).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from microvlm.errors import MicroVLMError
from microvlm_datasets.shapes import layout
from microvlm_datasets.shapes.scene import draw, encode_jpeg, sample_scene
from microvlm_datasets.shapes.writers import SplitWriter

logger = logging.getLogger(__name__)

ID_BASE = {"train": 0, "val": 10_000_000, "test": 20_000_000}
MAX_PER_SPLIT = 9_999_999
MIN_IMAGE_SIZE = 32
FORMAT_VERSION = layout.FORMAT_VERSION


def generate(
    out_dir: str | Path,
    n_train: int,
    n_val: int,
    n_test: int,
    image_size: int = 128,
    seed: int = 0,
    *,
    samples_per_shard: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Write the shapes set into ``out_dir`` (see :mod:`microvlm_datasets.shapes.layout`).

    :param out_dir: a new or empty folder, or one this function wrote before (it is replaced).
    :param n_train: images in the train split (likewise ``n_val``, ``n_test``; 0 skips a split).
    :param image_size: side of the square images, pixels.
    :param seed: the same seed gives the same files, byte for byte.
    :param samples_per_shard: images per web-shard tar.
    :param progress: called with the number of images just written (for a progress bar).
    :returns: the manifest written to ``out_dir/shapes.json`` (settings and counts).
    """
    import numpy as np

    counts = {"train": n_train, "val": n_val, "test": n_test}
    for split, n in counts.items():
        if not 0 <= n <= MAX_PER_SPLIT:
            raise MicroVLMError(f"shapes: n_{split} must be between 0 and {MAX_PER_SPLIT}, got {n}")
    if sum(counts.values()) == 0:
        raise MicroVLMError("shapes: every split is empty; ask for at least one image")
    if image_size < MIN_IMAGE_SIZE:
        raise MicroVLMError(f"shapes: image_size must be at least {MIN_IMAGE_SIZE} pixels, got {image_size}")
    if seed < 0 or samples_per_shard < 1:
        raise MicroVLMError(
            f"shapes: seed must be >= 0 and samples_per_shard >= 1, got {seed}, {samples_per_shard}"
        )

    out = Path(out_dir)
    _prepare(out)
    manifest: dict[str, Any] = {
        "name": "shapes",
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "image_size": image_size,
        "samples_per_shard": samples_per_shard,
        "complete": False,  # rewritten as true at the end; a partial folder is still recognised as ours
        "splits": {},
    }
    _write_manifest(out, manifest)
    start = time.perf_counter()
    for code, (split, n) in enumerate(counts.items()):
        if n == 0:
            continue
        writer = SplitWriter(out, split, image_size, samples_per_shard)
        for i in range(n):
            rng = np.random.default_rng([seed, code, i])
            scene = sample_scene(rng, image_size)
            writer.add(ID_BASE[split] + i + 1, scene, encode_jpeg(draw(scene)), rng)
            if progress is not None:
                progress(1)
        manifest["splits"][split] = writer.close()
    manifest["complete"] = True
    _write_manifest(out, manifest)
    total = sum(counts.values())
    logger.info("shapes: %d images in %.1f s into %s", total, time.perf_counter() - start, out)
    return manifest


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    (out / layout.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _prepare(out: Path) -> None:
    """Make ``out`` ready: create it, or empty what an earlier generation wrote there.

    A non-empty folder without ``shapes.json`` is refused: it may hold real data (``--out data``
    next to a real ``data/coco``), and only what this generator wrote is ever deleted.
    """
    if out.exists() and not out.is_dir():
        raise MicroVLMError(f"shapes: {out} is a file; --out needs a folder")
    out.mkdir(parents=True, exist_ok=True)
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return
    if layout.MANIFEST not in entries:
        raise MicroVLMError(
            f"shapes: {out} is not empty ({', '.join(entries[:5])}{', ...' if len(entries) > 5 else ''}) and "
            f"holds no {layout.MANIFEST}; choose a new or empty folder (only a folder written by this "
            f"command is replaced)"
        )
    for name in layout.OWNED:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
