"""Exports side by side: folder size, bits per weight, load memory, decode speed, and accuracy.

    python benchmarks/export.py --size real                  # the real architecture, random weights
    python benchmarks/export.py --size real --formats int8 bitnet158 --batches 1 8
    python benchmarks/export.py --demo output/demo/stage4/checkpoint_final \\
        --qat output/demo/stage5/checkpoint_final             # + the demo's accuracy per format

The peer of every export is the fp32 model it came from, in the same run: ``fp32`` is that
model written whole by ``save_pretrained(weights="all")``; each format is written by its
exporter plugin (``microvlm export``). Every folder is then loaded and run in a fresh
interpreter, one at a time, so its peak RSS (VmHWM) is its own: load, then a 1-token and an
``--new-tokens`` greedy generation per batch size (``min_new_tokens = max_new_tokens``);
decode tokens/s is ``B x (N - 1) / (t_N - t_1)``, the steps after the first token, as in
``generate.py``. Prompts are random token ids with one random image each; each generation runs 3 times and the
fastest counts. Peak RSS includes the interpreter with torch imported ("above imports" takes
that away).

``--demo`` (and ``--qat``, the stage-5 checkpoint of ``recipes/demo_qat.toml``) adds the demo's
test-split scores (VQA accuracy, grounding Acc@0.5, CIDEr) for fp32, int8, ternary after
training without QAT, and ternary after QAT, through the same ``evaluate`` as ``microvlm eval``.
Prints one JSON line per measurement and Markdown tables; timings are never asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch

import common

FORMATS = ("fp16", "int8", "bitnet158")
REPEATS = 3  # timed generations per size; the fastest counts
DEMO_RECIPE = "recipes/demo/stage4_multitask.toml"
#: column -> (task, metric) of the demo's evaluation
SCORES = {
    "VQA acc": ("vqa", "accuracy"),
    "grounding Acc@0.5": ("grounding", "acc@0.5"),
    "CIDEr": ("captioning", "cider"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=[*sorted(common.SIZES), "none"], default="real")
    ap.add_argument(
        "--formats", nargs="+", default=list(FORMATS), help="exporter names (fp32 is always measured)"
    )
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--demo", help="the demo's stage-4 checkpoint: adds accuracy per format")
    ap.add_argument("--qat", help="the demo's stage-5 (QAT) checkpoint: adds ternary after QAT")
    ap.add_argument("--eval-samples", type=int, default=500, help="test samples per task (the demo's)")
    ap.add_argument("--workdir", help="where the exports go (a temporary folder by default)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # internal: measure one folder
    return ap.parse_args(argv)


# -- one folder, in a fresh interpreter ------------------------------------------------------


def worker(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    from microvlm.models.exports import load_export  # noqa: F401  (the loading code, imported up front)
    from microvlm.models.vlm import MicroVLM

    common.reset_peak_memory("cpu")
    before = common.peak_memory("cpu")["peak"]  # the interpreter with torch and microvlm imported
    t0 = time.perf_counter()
    model = MicroVLM.from_pretrained(args.worker).eval()
    load_s = time.perf_counter() - t0
    after_load = common.peak_memory("cpu")["peak"]
    _, height, width = (int(v) for v in model.encoder.data_config["input_size"])
    vocab = int(model.llm.base_model.get_input_embeddings().num_embeddings)
    result = {"load_s": load_s, "import_rss": before, "load_peak_rss": after_load, "batches": {}}
    for batch in args.batches:
        g = torch.Generator().manual_seed(batch)
        images = torch.rand(batch, 3, height, width, generator=g)
        ids = torch.randint(3, min(vocab, 1000), (batch, 20), generator=g)
        mask = torch.ones_like(ids)
        pad = model.tokenizer.pad_token_id
        times = {}
        for n in (1, args.new_tokens):
            kwargs = {"max_new_tokens": n, "min_new_tokens": n, "do_sample": False, "pad_token_id": pad}
            model.generate_ids(images, ids, mask, **kwargs)  # warm-up
            runs = []
            for _ in range(REPEATS):
                t = time.perf_counter()
                model.generate_ids(images, ids, mask, **kwargs)
                runs.append(time.perf_counter() - t)
            times[n] = min(runs)  # the least disturbed run
        span = times[args.new_tokens] - times[1]
        decode = batch * (args.new_tokens - 1) / span if span > 0 else None
        result["batches"][str(batch)] = {"first_token_s": times[1], "decode_tokens_per_s": decode}
    result["peak_rss"] = common.peak_memory("cpu")["peak"]
    return result


def measure(folder: Path, args: argparse.Namespace) -> dict:
    extra = ["--batches", *map(str, args.batches), "--new-tokens", str(args.new_tokens)]
    if args.threads:
        extra += ["--threads", str(args.threads)]
    return common.run_worker("export.py", ["--worker", str(folder), *extra])


# -- exporting -------------------------------------------------------------------------------


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def export_all(model: torch.nn.Module, formats: list[str], out: Path, plugins) -> dict[str, dict]:
    """fp32 (save_pretrained, every weight) and each format: folder, size, manifest groups."""
    from microvlm.models.exports import export_model

    found = {}
    fp32 = model.save_pretrained(out / "fp32", weights="all")
    found["fp32"] = {"folder": fp32, "bytes": folder_bytes(fp32), "groups": [], "seconds": 0.0}
    for name in formats:
        t = time.perf_counter()
        folder = export_model(model, out / name, name, plugins, overwrite=True)
        manifest = json.loads((folder / "manifest.json").read_text())
        found[name] = {
            "folder": folder,
            "bytes": folder_bytes(folder),
            "groups": manifest["groups"],
            "seconds": time.perf_counter() - t,
        }
    return found


def size_rows(label: str, found: dict[str, dict]) -> list[list]:
    fp16 = found.get("fp16", {}).get("bytes")
    rows = []
    for name, entry in found.items():
        linear = [g for g in entry["groups"] if g["name"].startswith("llm.linear")]
        bpw = (
            8 * sum(g["bytes"] for g in linear) / sum(g["parameters"] for g in linear)
            if linear
            else (32.0 if name == "fp32" else None)
        )
        ratio = entry["bytes"] / fp16 if fp16 else None
        rows.append([label, name, entry["bytes"] / 2**20, ratio, bpw, entry["seconds"]])
    return rows


# -- the demo's scores -----------------------------------------------------------------------


def demo_scores(folder: Path, plugins, samples: int) -> dict:
    from microvlm.eval.evaluate import evaluate
    from microvlm.models.vlm import MicroVLM
    from microvlm.recipes.load import load_recipe

    recipe = load_recipe(DEMO_RECIPE, plugins)
    model = MicroVLM.from_pretrained(folder, plugins).eval()
    with tempfile.TemporaryDirectory() as tmp:
        results = evaluate(
            model, recipe.eval.data, plugins, batch_size=64, limit=samples, output_dir=Path(tmp)
        )
    by_task = {entry.rsplit("/", 1)[-1]: metrics for entry, metrics in results.items()}
    return {name: by_task.get(task, {}).get(key) for name, (task, key) in SCORES.items()}


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        common.emit_json(worker(args))
        return
    import microvlm

    if args.threads:
        torch.set_num_threads(args.threads)
    plugins = microvlm.load_plugins()
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="microvlm-export-bench-"))
    size_table, speed_table, score_table = [], [], []
    record_base = {
        "benchmark": "export",
        "machine": common.machine("cpu"),
        "threads": torch.get_num_threads(),
    }

    models = []
    if args.size != "none":
        torch.manual_seed(0)
        from microvlm.testing.fixtures import tiny_tokenizer_path

        # Qwen's tokenizer is on the hub, not here: exports carry a locally trained one (the ids
        # generated from are random either way, and the vocabulary rows are Qwen's).
        model = common.build_ours(common.SIZES[args.size], "cpu", tokenizer=str(tiny_tokenizer_path()))
        models.append((args.size, model.eval()))
    if args.demo:
        from microvlm.models.vlm import MicroVLM

        models.append(("demo", MicroVLM.from_pretrained(args.demo, plugins).eval()))
    for label, model in models:
        found = export_all(model, args.formats, work / label, plugins)
        del model
        size_table += size_rows(label, found)
        for name, entry in found.items():
            speed = measure(entry["folder"], args)
            common.emit_json(
                {
                    **record_base,
                    "model": label,
                    "format": name,
                    "bytes": entry["bytes"],
                    "groups": entry["groups"],
                    **speed,
                }
            )
            model_rss = (speed["peak_rss"] - speed["import_rss"]) / 2**20
            row = [label, name, speed["load_peak_rss"] / 2**20, speed["peak_rss"] / 2**20, model_rss]
            row += [speed["batches"][str(b)]["decode_tokens_per_s"] for b in args.batches]
            speed_table.append(row)
        if label == "demo":
            for name in ("fp32", *[f for f in ("int8", "bitnet158") if f in found]):
                scores = demo_scores(found[name]["folder"], plugins, args.eval_samples)
                tag = "ternary, no QAT" if name == "bitnet158" else name
                common.emit_json({**record_base, "model": "demo", "format": tag, "scores": scores})
                score_table.append([tag, *scores.values()])
    if args.qat:
        from microvlm.models.exports import export_model
        from microvlm.models.vlm import MicroVLM

        qat_model = MicroVLM.from_pretrained(args.qat, plugins).eval()
        folder = export_model(
            qat_model, work / "demo-qat" / "bitnet158", "bitnet158", plugins, overwrite=True
        )
        scores = demo_scores(folder, plugins, args.eval_samples)
        common.emit_json({**record_base, "model": "demo", "format": "ternary after QAT", "scores": scores})
        score_table.append(["ternary after QAT", *scores.values()])

    print(
        "\n"
        + common.table(
            ["model", "format", "MiB", "x fp16", "bits/weight (LLM linears)", "export s"], size_table
        )
    )
    speed_heads = ["model", "format", "load peak RSS MiB", "peak RSS MiB", "above imports MiB"]
    speed_heads += [f"decode tok/s b{b}" for b in args.batches]
    print("\n" + common.table(speed_heads, speed_table))
    if score_table:
        print("\n" + common.table(["demo model", *SCORES], score_table))
    print(f"\nexports in {work}", file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
