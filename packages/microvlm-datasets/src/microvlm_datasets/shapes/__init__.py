"""The synthetic "shapes" set: coloured shapes written in the real formats of COCO captions,
VQAv2, RefCOCO (Hugging Face rows), LLaVA-150K and img2dataset web shards.

``generate(out_dir, n_train, n_val, n_test, image_size=128, seed=0)`` writes it; the
command line is ``microvlm datasets shapes --out DIR``. numpy and PIL are imported only when
images are drawn.
"""

from __future__ import annotations

from microvlm_datasets.shapes.generate import generate

__all__ = ["generate"]
