"""One training step of MicroVLM against transformers' BLIP-2 of the same sizes.

    python benchmarks/train_step.py --workload caption --size real --batch 8
    python benchmarks/train_step.py --size small --workload vqa --json

A step is forward + backward + AdamW update + zero_grad on one batch, with the vision tower
and the LLM frozen and the Q-Former + projection trained (see ``common.py`` for how both
models are built). Each measurement runs in its own subprocess (``--worker``): it builds one
model, runs ``--warmup`` steps, times ``--steps`` steps, times a large GEMM, and reports its
peak memory (RSS high-water mark from after the build on CPU, CUDA peak allocation on GPU).
The parent alternates the two models ``--repeats`` times and reports medians.

Workloads: ``caption`` (stage 1: image + an 8-24 token caption, loss on the caption) and
``vqa`` (stage 4: image + an 18-22 token question, loss on a 1-3 token answer). fp32 on CPU,
bf16 autocast on CUDA (LLM weights in bf16 for both models).

Reported per model: samples/s, step time, peak memory, the step's analytic FLOPs
(``common.train_step_flops``) over its time, and that as a fraction of the GEMM's FLOP/s;
``ratio_samples_per_s`` and ``ratio_peak_mem`` are ours / BLIP-2.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch

import common
import variants

MODELS = ("ours", "blip2")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", choices=sorted(common.WORKLOADS), default="caption")
    ap.add_argument("--size", choices=sorted(common.SIZES), default="real")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads, both models")
    ap.add_argument("--repeats", type=int, default=3, help="subprocesses per model, alternating")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per subprocess")
    ap.add_argument("--steps", type=int, default=2, help="timed steps per subprocess")
    ap.add_argument("--seed", type=int, default=0)
    common.add_load_arguments(ap)
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of the table")
    ap.add_argument("--out", type=Path, help="also append the JSON line(s) to this file")
    ap.add_argument(
        "--ablations", action="store_true", help="also time ours with each lever alone (variants.py)"
    )
    ap.add_argument("--worker", choices=MODELS, help=argparse.SUPPRESS)
    ap.add_argument("--variant", default="default", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


# -- one model, one subprocess -----------------------------------------------------------


def worker(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    sizes = common.SIZES[args.size]
    batch = common.make_batch(args.workload, sizes, args.batch, args.seed)
    if args.variant == "unpadded":
        batch = variants.unpadded(batch)
    t0 = time.perf_counter()
    if args.worker == "ours":
        model = common.build_ours(sizes, args.device)
        inputs = common.ours_inputs(batch, sizes, args.device)
    else:
        model = common.build_blip2(sizes, args.device)
        inputs = common.blip2_inputs(batch, sizes, args.device)
    build_s = time.perf_counter() - t0
    params = common.trainable(model)  # the Q-Former + projection (before any variant)
    variants.apply(model, args.variant)
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if args.device == "cuda" else contextlib.nullcontext()

    def step() -> float:
        with amp:
            loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        model.zero_grad(set_to_none=True)
        return float(loss.detach())

    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    gemm = common.Gemm(args.device, dtype)
    common.reset_peak_memory(args.device)
    times, losses, gemm_rates, others = [], [], [], []
    for i in range(args.warmup + args.steps):
        with common.OtherLoad() as load:
            common.sync(args.device)
            t = time.perf_counter()
            losses.append(step())
            common.sync(args.device)
            elapsed = time.perf_counter() - t
        if i >= args.warmup:
            times.append(elapsed)
            others.append(load.fraction)
            gemm_rates.append(gemm.flops_per_s())  # right after the step, under the same load
    memory = common.peak_memory(args.device)
    return {
        "model": args.worker,
        "variant": args.variant,
        "text_tokens": batch.num_text_tokens,
        "text_len": batch.text_len,
        "step_s": times,
        "build_s": build_s,
        "loss": losses[-1],
        "trainable_params": sum(p.numel() for p in params),
        "peak_mem_bytes": memory["peak"],
        "process_peak_mem_bytes": memory["process_peak"],
        "gemm_flops_per_s": gemm_rates,
        "other_load": others,
        "threads": torch.get_num_threads(),
    }


# -- the comparison ----------------------------------------------------------------------


def compare(args: argparse.Namespace) -> dict:
    sizes = common.SIZES[args.size]
    batch = common.make_batch(args.workload, sizes, args.batch, args.seed)
    worker_args = [
        f"--workload={args.workload}",
        f"--size={args.size}",
        f"--batch={args.batch}",
        f"--device={args.device}",
        f"--threads={args.threads}",
        f"--warmup={args.warmup}",
        f"--steps={args.steps}",
        f"--seed={args.seed}",
    ]

    def run(r: int, name: str, variant: str = "default") -> dict:
        for attempt in range(1 + args.retries):
            result = common.run_worker(
                Path(__file__).name, [*worker_args, f"--worker={name}", f"--variant={variant}"]
            )
            load = common.median(result["other_load"])
            print(
                f"[{r + 1}/{args.repeats}] {name} {variant}: step {common.median(result['step_s']):.3f} s, "
                f"peak {common.gib(result['peak_mem_bytes']):.2f} GiB, others' CPU share {load:.0%}",
                file=sys.stderr,
                flush=True,
            )
            if not common.too_loaded(load, args.max_other_load, attempt, args.retries):
                break
        return result

    runs: dict[str, list[dict]] = {m: [] for m in MODELS}
    for r in range(args.repeats):
        for name in MODELS if r % 2 == 0 else reversed(MODELS):
            runs[name].append(run(r, name))
    ablations = []
    if args.ablations:
        by_variant: dict[str, list[dict]] = {v: [] for v in ("default", *variants.VARIANTS)}
        for r in range(args.repeats):
            for variant, results in by_variant.items():
                results.append(run(r, "ours", variant))
        base = by_variant["default"]
        base_s = common.median([t for w in base for t in w["step_s"]])
        base_mem = common.median([w["peak_mem_bytes"] for w in base])
        for variant, rs in by_variant.items():
            step_s = common.median([t for w in rs for t in w["step_s"]])
            mem = common.median([w["peak_mem_bytes"] for w in rs])
            ablations.append(
                {
                    "variant": variant,
                    "step_s": step_s,
                    "samples_per_s": args.batch / step_s,
                    "time_vs_default": step_s / base_s,
                    "peak_mem_bytes": mem,
                    "mem_vs_default": mem / base_mem,
                    "text_tokens": rs[0]["text_tokens"],
                    "text_len": rs[0]["text_len"],
                    "other_load": common.median([o for w in rs for o in w["other_load"]]),
                }
            )
    gemm = common.median([g for rs in runs.values() for w in rs for g in w["gemm_flops_per_s"]])
    per_model = {}
    for name, rs in runs.items():
        step_s = common.median([t for w in rs for t in w["step_s"]])
        flops = common.train_step_flops(sizes, batch, name)
        per_model[name] = {
            "samples_per_s": args.batch / step_s,
            "step_s": step_s,
            "step_s_all": [t for w in rs for t in w["step_s"]],
            "peak_mem_bytes": common.median([w["peak_mem_bytes"] for w in rs]),
            "process_peak_mem_bytes": common.median([w["process_peak_mem_bytes"] for w in rs]),
            "build_s": common.median([w["build_s"] for w in rs]),
            "trainable_params": rs[0]["trainable_params"],
            "other_load": common.median([o for w in rs for o in w["other_load"]]),
            "loss": rs[-1]["loss"],
            "flops": flops,
            "flops_per_s": flops / step_s,
            "gemm_fraction": flops / step_s / gemm,
        }
    ours, blip2 = per_model["ours"], per_model["blip2"]
    return {
        "benchmark": "train_step",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "workload": args.workload,
        "size": args.size,
        "batch": args.batch,
        "device": args.device,
        "dtype": "bf16 autocast" if args.device == "cuda" else "fp32",
        "threads": runs["ours"][0]["threads"],
        "repeats": args.repeats,
        "warmup": args.warmup,
        "steps": args.steps,
        "image_tokens": sizes.image_tokens,
        "queries": sizes.queries,
        "text_len": batch.text_len,
        "text_tokens": batch.num_text_tokens,
        "target_tokens": batch.num_targets,
        "gemm_flops_per_s": gemm,
        "ours": ours,
        "blip2": blip2,
        "ratio_samples_per_s": ours["samples_per_s"] / blip2["samples_per_s"],
        "ratio_peak_mem": ours["peak_mem_bytes"] / blip2["peak_mem_bytes"],
        # BLIP-2's FLOPs over ours: the speed ratio reached when both run at the same FLOP/s.
        # Both run near the GEMM limit, so a speed goal above this needs fewer FLOPs per step.
        "ratio_flops_bound": blip2["flops"] / ours["flops"],
        "ratio_process_peak_mem": ours["process_peak_mem_bytes"] / blip2["process_peak_mem_bytes"],
        "ablations": ablations,
        "machine": common.machine(args.device),
    }


def render(rec: dict) -> str:
    mem = "CUDA peak GiB" if rec["device"] == "cuda" else "peak RSS GiB"
    rows = []
    for name, label in (("ours", "MicroVLM"), ("blip2", "BLIP-2 (transformers)")):
        m = rec[name]
        rows.append(
            [
                label,
                m["samples_per_s"],
                m["step_s"],
                common.gib(m["peak_mem_bytes"]),
                common.gib(m["process_peak_mem_bytes"]),
                m["flops"] / 1e9,
                m["flops_per_s"] / 1e9,
                f"{100 * m['gemm_fraction']:.0f} %",
            ]
        )
    rows.append(
        [
            "ours / BLIP-2",
            rec["ratio_samples_per_s"],
            rec["ours"]["step_s"] / rec["blip2"]["step_s"],
            rec["ratio_peak_mem"],
            rec["ratio_process_peak_mem"],
            rec["ours"]["flops"] / rec["blip2"]["flops"],
            "",
            "",
        ]
    )
    head = (
        f"train step, {rec['workload']}, size {rec['size']}, batch {rec['batch']}, {rec['device']} "
        f"{rec['dtype']}, {rec['threads']} threads; S = {rec['queries']} + {rec['text_len']} positions, "
        f"{rec['target_tokens']} target tokens; GEMM {rec['gemm_flops_per_s'] / 1e9:.0f} GFLOP/s; "
        f"median of {rec['repeats']} x {rec['steps']} steps; "
        f"load average {rec['machine']['loadavg'][0]:.2f}, "
        f"other processes' CPU share during the steps: ours {rec['ours']['other_load']:.0%}, "
        f"BLIP-2 {rec['blip2']['other_load']:.0%}"
    )
    headers = ["model", "samples/s", "step s", mem, "process peak GiB", "GFLOP/step", "GFLOP/s", "of GEMM"]
    text = head + "\n\n" + common.table(headers, rows)
    text += (
        f"\n\nFLOP bound: BLIP-2 does {rec['ratio_flops_bound']:.2f}x our FLOPs per step, so at equal "
        f"FLOP/s we would be {rec['ratio_flops_bound']:.2f}x faster; measured "
        f"{rec['ratio_samples_per_s']:.2f}x."
    )
    if rec["ablations"]:
        rows = [
            [
                a["variant"],
                a["step_s"],
                f"{a['time_vs_default']:.2f}x",
                common.gib(a["peak_mem_bytes"]),
                f"{a['mem_vs_default']:.2f}x",
                f"{a['text_tokens']} ({rec['batch']} x {a['text_len']} padded)",
                f"{a['other_load']:.0%}",
            ]
            for a in rec["ablations"]
        ]
        headers = [
            "MicroVLM variant",
            "step s",
            "time vs default",
            mem,
            "memory vs default",
            "text tokens",
            "others' CPU share",
        ]
        text += "\n\nOne lever at a time (see benchmarks/variants.py):\n\n" + common.table(headers, rows)
    return text


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        common.emit_json(worker(args))
        return
    rec = compare(args)
    if args.out:
        common.append_jsonl(args.out, [rec])
    if args.json:
        common.emit_json(rec)
    else:
        print(render(rec))


if __name__ == "__main__":
    main()
