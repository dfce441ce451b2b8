"""The training data loader over web shards against a plain PIL loop over the same images.

    python benchmarks/data_loader.py                       # 2000 shapes images, 128 px, 4 workers
    python benchmarks/data_loader.py --n 10000 --workers 8 --json

Writes a shapes set (``microvlm datasets shapes``) into a temporary folder and reads its
img2dataset shards three ways, in one process run:

- **ours**: what ``microvlm run`` does — ``build_sources`` (the ``webdataset`` builder indexes
  the shards), ``epoch_order``, ``EpochDataset`` (seek into the tar, decode, the ``pretrain``
  task's example, ``ImageEvalProcessor`` resize to 224 + normalise), ``Collate`` (stack, tokenize
  and pad), through a ``DataLoader`` with ``--workers`` worker processes, and with none;
- **plain PIL**: one loop in this process that opens the same JPEG files (the shards hold the
  same bytes as ``coco/train2017/``), decodes them and resizes them to 224 x 224 with PIL.

Reported: samples/s of each (median of ``--repeats`` epochs; a loader epoch includes starting
its workers), the shard index time, and ours / plain. The plain loop does less per sample (no
normalisation, no text, no batching) in one process; ours with workers spreads the decode
over processes. Timings are for reading, not for any assertion.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch

import common


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="images in the shapes train split")
    ap.add_argument("--image-size", type=int, default=128, help="side of the shapes images, pixels")
    ap.add_argument("--samples-per-shard", type=int, default=500)
    ap.add_argument("--size", type=int, default=224, help="processor output side, pixels")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="DataLoader workers")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads of this process (DataLoader workers use 1)"
    )
    ap.add_argument("--repeats", type=int, default=3, help="epochs timed per reader (median)")
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of the table")
    return ap.parse_args(argv)


def build(shards: Path) -> tuple[list, float, object]:
    """The sources as the runner builds them, and the index time."""
    import microvlm
    from microvlm.data.sources import build_sources
    from microvlm.recipes.config import ComponentSpec, DataConfig

    plugins = microvlm.load_plugins()
    dataset = plugins.get("dataset", "webdataset").config_cls(root=str(shards), split="train")
    task = plugins.get("task", "pretrain").config_cls()
    entry = DataConfig(ComponentSpec("webdataset", dataset), ComponentSpec("pretrain", task))
    start = time.perf_counter()
    sources = build_sources([entry], plugins)
    return sources, time.perf_counter() - start, plugins


def ours_epoch(
    sources: list, processor: object, tokenizer: object, args: argparse.Namespace, workers: int
) -> float:
    """Samples/s of one epoch through the training loader (worker start-up included)."""
    from microvlm.train.data import Collate, EpochDataset, StepSampler, epoch_order

    order = epoch_order(sources, 0, seed=0)
    data = EpochDataset(sources, order, processor, tokenizer, seed=0, epoch=0)
    sampler = StepSampler(len(order), args.batch)
    loader = torch.utils.data.DataLoader(
        data, batch_sampler=sampler, collate_fn=Collate(tokenizer, 64), num_workers=workers
    )
    start = time.perf_counter()
    n = 0
    for images, _text in loader:
        n += images.shape[0]  # (B, 3, S, S)
    return n / (time.perf_counter() - start)


def plain_epoch(paths: list[Path], size: int) -> float:
    """Samples/s of open + decode + resize with PIL, one process."""
    from PIL import Image

    start = time.perf_counter()
    for path in paths:
        with Image.open(path) as image:
            image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    return len(paths) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)  # as in a DataLoader worker: one intra-op thread per process
    from transformers import PreTrainedTokenizerFast

    from microvlm.models.processors import ImageEvalProcessor
    from microvlm.testing.fixtures import tiny_tokenizer_path
    from microvlm_datasets.shapes import generate, layout

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "shapes"
        generate(out, args.n, 0, 0, image_size=args.image_size, samples_per_shard=args.samples_per_shard)
        sources, index_s, _ = build(layout.shards_root(out))
        samples = sources[0].samples
        paths = sorted(layout.image_dir(out, "train").glob("*.jpg"))
        assert samples[0].image.read_bytes() == paths[0].read_bytes()  # the same images, the same bytes
        processor = ImageEvalProcessor(args.size)
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(tiny_tokenizer_path()))
        rates: dict[str, list[float]] = {"ours": [], "ours_0_workers": [], "plain_pil": []}
        for _ in range(args.repeats):  # interleaved, so that load on the machine hits all alike
            rates["ours"].append(ours_epoch(sources, processor, tokenizer, args, args.workers))
            rates["ours_0_workers"].append(ours_epoch(sources, processor, tokenizer, args, 0))
            rates["plain_pil"].append(plain_epoch(paths, args.size))
    med = {k: statistics.median(v) for k, v in rates.items()}
    record = {
        "benchmark": "data_loader",
        "images": args.n,
        "image_size": args.image_size,
        "processor_size": args.size,
        "shards": -(-args.n // args.samples_per_shard),
        "batch": args.batch,
        "workers": args.workers,
        "threads": args.threads,
        "index_s": index_s,
        "samples_per_s": med,
        "ratio_ours_vs_plain": med["ours"] / med["plain_pil"],
        "ratio_ours_0_workers_vs_plain": med["ours_0_workers"] / med["plain_pil"],
        "machine": common.machine("cpu"),
    }
    if args.json:
        common.emit_json(record)
    else:
        print(f"{args.n} shapes images ({args.image_size} px) in {record['shards']} shards -> {args.size} px")
        print(f"index: {index_s:.2f} s ({args.n / index_s:,.0f} samples/s)\n")
        rows = [
            [f"ours ({args.workers} workers)", med["ours"], med["ours"] / med["plain_pil"]],
            ["ours (0 workers)", med["ours_0_workers"], med["ours_0_workers"] / med["plain_pil"]],
            ["plain PIL loop", med["plain_pil"], 1.0],
        ]
        print(common.table(["reader", "samples/s", "vs plain"], rows))
        common.emit_json(record)
    return record


if __name__ == "__main__":
    main()
