"""The offline demo's vision-side check: can its encoder, from scratch, learn what the shapes are?

The counterpart of demo_ceiling.py (the language side). The demo's encoder, built by the
encoder plugin from recipes/demo/stage1_alignment.toml's ``[model.encoder]`` (a 4-block,
128-wide DeiT at 64 px, patch 8, random init) and fed through the demo's own image processor,
gets the most direct signal there is: 11 binary labels saying which of the five kinds and
which of the six colours are in the image, predicted by a linear head on its mean-pooled patch
tokens. Fresh scenes every step, JPEG-encoded as the shapes set stores them; a fixed held-out
set is scored per label beside the prior (each label's likelier state). ``--stem conv`` puts a
small convolutional stem (stride-2 3x3 convs) in place of the linear patch projection, the
"early convolutions" variant of a ViT.

    python benchmarks/demo_encoder_probe.py                  # 1000 steps, the demo's encoder
    python benchmarks/demo_encoder_probe.py --stem conv      # the same with a conv stem
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from torch import nn

from common import emit_json, table

ROOT = Path(__file__).resolve().parents[1]


def conv_stem(width: int, patch: int) -> nn.Sequential:
    """Stride-2 3x3 convs up to a total stride of ``patch`` (a power of two), then a 1x1 to ``width``."""
    if patch < 2 or patch & (patch - 1):
        raise SystemExit(f"--stem conv needs a power-of-two patch size, the recipe has {patch}")
    layers: list[nn.Module] = []
    channels, stride = 3, 1
    while stride < patch:
        out = min(width, 32 * stride)
        layers += [nn.Conv2d(channels, out, 3, 2, 1), nn.BatchNorm2d(out), nn.ReLU()]
        channels, stride = out, stride * 2
    return nn.Sequential(*layers, nn.Conv2d(channels, width, 1))


def build(recipe_path: Path, stem: str) -> tuple[nn.Module, object, int]:
    """The demo's encoder (via its plugin) and image processor; the image side in pixels."""
    from microvlm.models.processors import ImageEvalProcessor
    from microvlm.plugins.manager import load_plugins
    from microvlm.recipes.load import load_recipe

    plugins = load_plugins()
    recipe = load_recipe(recipe_path, plugins)
    spec = recipe.model.encoder
    encoder = plugins.build("encoder", spec.name, spec.config)
    if stem == "conv":
        encoder.model.patch_embed.proj = conv_stem(encoder.out_dim, spec.config.patch_size)
    processor = ImageEvalProcessor.from_data_config(encoder.data_config)
    return encoder, processor, spec.config.image_size


def labelled(rng: np.random.Generator, n: int, size: int, processor) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` fresh scenes: images ``[n, 3, S, S]`` as the demo reads them, labels ``[n, 11]``."""
    from PIL import Image

    from microvlm_datasets.shapes.scene import COLOURS, KINDS, draw, encode_jpeg, sample_scene

    images, labels = [], torch.zeros(n, len(KINDS) + len(COLOURS))
    for i in range(n):
        scene = sample_scene(rng, size)
        with Image.open(io.BytesIO(encode_jpeg(draw(scene)))) as image:
            images.append(processor(image.convert("RGB")))
        for shape in scene.shapes:
            labels[i, KINDS.index(shape.kind)] = 1
            labels[i, len(KINDS) + list(COLOURS).index(shape.colour)] = 1
    return torch.stack(images), labels


def scores(logits: torch.Tensor, labels: torch.Tensor, kinds: int) -> dict[str, float]:
    right = (logits > 0) == (labels > 0)  # (n, 11)
    prior = labels.mean(0)
    likelier = torch.maximum(prior, 1 - prior)  # each label's more common state on this set
    return {
        "kind_label_acc": float(right[:, :kinds].float().mean()),
        "kind_label_prior": float(likelier[:kinds].mean()),
        "kind_set_exact": float(right[:, :kinds].all(1).float().mean()),
        "colour_label_acc": float(right[:, kinds:].float().mean()),
        "colour_label_prior": float(likelier[kinds:].mean()),
        "colour_set_exact": float(right[:, kinds:].all(1).float().mean()),
    }


def main(argv: list[str] | None = None) -> int:
    from microvlm_datasets.shapes.scene import KINDS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--stem", choices=("patch", "conv"), default="patch", help="the encoder's patch projection"
    )
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--held-out", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=32, help="the demo's batch size")
    p.add_argument("--lr", type=float, default=1e-3, help="the demo's stage-1 learning rate")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the demo uses 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "demo" / "stage1_alignment.toml")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of the tables")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    encoder, processor, size = build(args.recipe, args.stem)
    head = nn.Linear(encoder.out_dim, 11)
    params = [q for q in (*encoder.parameters(), *head.parameters()) if q.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    held_x, held_y = labelled(np.random.default_rng([args.seed, 1]), args.held_out, size, processor)
    rng = np.random.default_rng([args.seed, 0])
    predict = lambda x: head(encoder(x).mean(1))  # noqa: E731  (B, N, D) -> (B, D) -> (B, 11)

    curve, start = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        x, y = labelled(rng, args.batch_size, size, processor)
        loss = nn.functional.binary_cross_entropy_with_logits(predict(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step % args.eval_every == 0 or step == args.steps:
            encoder.eval()
            with torch.no_grad():
                point = {
                    "step": step,
                    "loss": float(loss.detach()),
                    **scores(predict(held_x), held_y, len(KINDS)),
                }
            encoder.train()
            curve.append(point)
            if not args.json:
                kinds, colours = point["kind_label_acc"], point["colour_set_exact"]
                print(f"step {step}: kind labels {kinds:.3f}, colour sets {colours:.3f}", flush=True)
    record = {
        "benchmark": "demo_encoder_probe",
        "stem": args.stem,
        "steps": args.steps,
        "seconds": time.perf_counter() - start,
        "final": curve[-1],
        "curve": curve,
    }
    if args.json:
        emit_json(record)
        return 0
    keys = ["kind_label_acc", "kind_set_exact", "colour_label_acc", "colour_set_exact"]
    took = record["seconds"]
    print(f"\nthe demo's encoder ({args.stem} stem), {args.steps} steps of {args.batch_size} ({took:.0f} s)")
    print(table(["step", "loss", *keys], [[c["step"], c["loss"], *(c[k] for k in keys)] for c in curve]))
    last = curve[-1]
    kinds, colours = last["kind_label_prior"], last["colour_label_prior"]
    print(f"prior (each label's likelier state): kinds {kinds:.3f}, colours {colours:.3f}")
    return 0 if all(math.isfinite(c["loss"]) for c in curve) else 1


if __name__ == "__main__":
    raise SystemExit(main())
