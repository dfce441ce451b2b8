"""Generation of MicroVLM against transformers' BLIP-2 of the same sizes.

    python benchmarks/generate.py --size real --batches 1 8
    python benchmarks/generate.py --size small --json

Both models are built in one process (random weights, eval mode) and called alternately:
for each repeat, batch size and model, a 1-token generation (time to first token: vision
tower, Q-Former, prefill of the image + prompt positions, first token) and an
``--new-tokens`` generation. Greedy, the KV cache on, ``min_new_tokens = max_new_tokens``
so both produce exactly the same number of tokens. Decode tokens/s is
``B x (N - 1) / (t_N - t_1)``: the steps after the first token. Prompts are the vqa
workload's (18-22 random token ids, left-padded) with one image each. ``ratio_*`` is ours /
BLIP-2 (above 1 is better for tokens/s, below 1 for time to first token).
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

MODELS = ("ours", "blip2")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=sorted(common.SIZES), default="real")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--new-tokens", type=int, default=16, help="tokens generated per sample (N)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads, both models")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds, alternating the models")
    ap.add_argument("--seed", type=int, default=0)
    common.add_load_arguments(ap)
    ap.add_argument("--json", action="store_true", help="print JSON lines instead of the table")
    ap.add_argument("--out", type=Path, help="also append the JSON line(s) to this file")
    return ap.parse_args(argv)


class Generator:
    """One model's ``generate`` on fixed inputs, returning only the new token ids."""

    def __init__(self, name: str, sizes: common.Sizes, device: str, batch: int, seed: int) -> None:
        self.name = name
        images, prompts = common.generation_prompts(sizes, batch, seed)
        pad, eos = sizes.llm["eos_token_id"], sizes.llm["eos_token_id"]
        self.kwargs = {"do_sample": False, "num_beams": 1, "pad_token_id": pad, "eos_token_id": eos}
        self.images = images.to(device)
        if name == "ours":
            self.ids, self.mask = (t.to(device) for t in common.left_pad(prompts, pad))
        else:  # BLIP-2 reads Q placeholder tokens in front of the prompt: [pad][image][prompt]
            rows = [[sizes.image_token_id] * sizes.queries + p for p in prompts]
            self.ids, self.mask = (t.to(device) for t in common.left_pad(rows, pad))

    def __call__(self, model: torch.nn.Module, new_tokens: int) -> torch.Tensor:
        kwargs = {**self.kwargs, "max_new_tokens": new_tokens, "min_new_tokens": new_tokens}
        if self.name == "ours":
            return model.generate_ids(self.images, self.ids, self.mask, **kwargs)
        out = model.generate(pixel_values=self.images, input_ids=self.ids, attention_mask=self.mask, **kwargs)
        return out[:, -new_tokens:] if out.shape[1] > new_tokens else out  # drop the echoed prompt


def timed(fn, device: str) -> tuple[float, torch.Tensor, float]:
    """(seconds, result, other processes' CPU share meanwhile)."""
    with common.OtherLoad() as load:
        common.sync(device)
        t = time.perf_counter()
        out = fn()
        common.sync(device)
        elapsed = time.perf_counter() - t
    return elapsed, out, load.fraction


def run(args: argparse.Namespace) -> list[dict]:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    sizes = common.SIZES[args.size]
    N = args.new_tokens
    if N < 2:
        raise SystemExit("--new-tokens must be at least 2 (decode speed needs steps after the first)")
    models = {
        "ours": common.build_ours(sizes, args.device).eval(),
        "blip2": common.build_blip2(sizes, args.device).eval(),
    }
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if args.device == "cuda" else contextlib.nullcontext()
    gemm = common.Gemm(args.device, torch.bfloat16 if args.device == "cuda" else torch.float32)
    gemm_rates, records = [], []
    for batch in args.batches:
        gens = {m: Generator(m, sizes, args.device, batch, args.seed) for m in MODELS}
        times: dict[str, dict[str, list[float]]] = {
            m: {"first": [], "full": [], "others": []} for m in MODELS
        }
        with amp:
            for name in MODELS:  # warm-up
                gens[name](models[name], N)
            for r in range(args.repeats):
                for name in MODELS if r % 2 == 0 else reversed(MODELS):
                    gen, model = gens[name], models[name]
                    for attempt in range(1 + args.retries):
                        t1, _, o1 = timed(lambda g=gen, m=model: g(m, 1), args.device)
                        tn, out, on = timed(lambda g=gen, m=model: g(m, N), args.device)
                        if not common.too_loaded(max(o1, on), args.max_other_load, attempt, args.retries):
                            break
                    assert out.shape == (batch, N), f"{name} made {tuple(out.shape)} tokens, not {(batch, N)}"
                    times[name]["first"].append(t1)
                    times[name]["full"].append(tn)
                    times[name]["others"].extend([o1, on])
                    print(
                        f"[batch {batch}, {r + 1}/{args.repeats}] {name}: first token {t1:.3f} s, "
                        f"{N} tokens {tn:.3f} s, others' CPU share {max(o1, on):.0%}",
                        file=sys.stderr,
                        flush=True,
                    )
                gemm_rates.append(gemm.flops_per_s())
        prompt_len = gens["ours"].ids.shape[1]
        per_model = {}
        for name in MODELS:
            first = common.median(times[name]["first"])
            full = common.median(times[name]["full"])
            decode = full - first
            per_model[name] = {
                "ttft_s": first,
                "total_s": full,
                "decode_tokens_per_s": batch * (N - 1) / decode,
                "tokens_per_s": batch * N / full,
                "first_s_all": times[name]["first"],
                "total_s_all": times[name]["full"],
                "other_load": common.median(times[name]["others"]),
            }
        ours, blip2 = per_model["ours"], per_model["blip2"]
        records.append(
            {
                "benchmark": "generate",
                "date": datetime.datetime.now().isoformat(timespec="seconds"),
                "size": args.size,
                "batch": batch,
                "new_tokens": N,
                "prompt_len": prompt_len,
                "queries": sizes.queries,
                "device": args.device,
                "dtype": "bf16" if args.device == "cuda" else "fp32",
                "threads": torch.get_num_threads(),
                "repeats": args.repeats,
                "ours": ours,
                "blip2": blip2,
                "ratio_tokens_per_s": ours["decode_tokens_per_s"] / blip2["decode_tokens_per_s"],
                "ratio_ttft": ours["ttft_s"] / blip2["ttft_s"],
                "ratio_end_to_end_tokens_per_s": ours["tokens_per_s"] / blip2["tokens_per_s"],
                "generate_flops": common.generate_flops(sizes, batch, prompt_len, N),
                "gemm_flops_per_s": common.median(gemm_rates),
                "machine": common.machine(args.device),
            }
        )
    return records


def render(records: list[dict]) -> str:
    rec0 = records[0]
    head = (
        f"generate, size {rec0['size']}, {rec0['device']} {rec0['dtype']}, {rec0['threads']} threads, "
        f"greedy, {rec0['new_tokens']} new tokens forced, prompt = {rec0['queries']} image + "
        f"{rec0['prompt_len']} text positions; median of {rec0['repeats']}; "
        f"load average {rec0['machine']['loadavg'][0]:.2f}; other processes' CPU share (median) "
        + ", ".join(
            f"batch {r['batch']}: {r['ours']['other_load']:.0%} / {r['blip2']['other_load']:.0%}"
            for r in records
        )
    )
    rows = []
    for rec in records:
        for name, label in (("ours", "MicroVLM"), ("blip2", "BLIP-2 (transformers)")):
            m = rec[name]
            rows.append([rec["batch"], label, m["ttft_s"], m["decode_tokens_per_s"], m["tokens_per_s"]])
        rows.append(
            [
                rec["batch"],
                "ours / BLIP-2",
                rec["ratio_ttft"],
                rec["ratio_tokens_per_s"],
                rec["ratio_end_to_end_tokens_per_s"],
            ]
        )
    headers = ["batch", "model", "first token s", "decode tokens/s", "end-to-end tokens/s"]
    return head + "\n\n" + common.table(headers, rows)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    records = run(args)
    if args.out:
        common.append_jsonl(args.out, records)
    if args.json:
        for rec in records:
            common.emit_json(rec)
    else:
        print(render(records))


if __name__ == "__main__":
    main()
