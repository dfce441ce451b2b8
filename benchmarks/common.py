"""Shared pieces of the benchmarks: the two models at the same sizes, synthetic batches,
analytic FLOPs, memory and timing, worker subprocesses, output.

The peer is transformers' ``Blip2ForConditionalGeneration`` built from a ``Blip2Config`` of
our sizes (DESIGN.md section 8): a vision tower shaped like the encoder, a Q-Former of the
same depth, width and query count, and ``text_config`` = the LLM's configuration. Both
models get random weights, the same frozen parts (vision tower, LLM) and trainable parts
(Q-Former + projection), the same precision and thread count, and batches with the same
images and token counts.

Notation as in the model code: B batch, N image tokens, Q queries, T text tokens,
S = Q + T decoder positions, D_v / D_q / D_l widths, V vocabulary.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

IGNORE = -100  # label of positions without a loss (microvlm.data.text.IGNORE)
BENCH_DIR = Path(__file__).resolve().parent


# -- sizes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """The shapes both models are built with."""

    name: str
    timm_model: str  # our encoder (timm name); the BLIP-2 vision tower copies its shape
    image_size: int  # input side, pixels
    patch_size: int  # pixels per patch side
    vision_width: int  # D_v
    vision_layers: int
    vision_heads: int
    vision_mlp: int  # MLP inner width of the vision blocks
    queries: int  # Q
    qformer_layers: int
    qformer_width: int  # D_q
    qformer_heads: int
    qformer_mlp: int
    llm: dict  # the Qwen2 configuration (config.json values)
    image_token_id: int  # BLIP-2's placeholder token for the query outputs

    @property
    def image_tokens(self) -> int:
        """N: patch tokens + the class token (both models read all of them)."""
        return (self.image_size // self.patch_size) ** 2 + 1


def qwen_config() -> dict:
    """The Qwen2.5-0.5B configuration that microvlm-core ships (the real architecture)."""
    text = resources.files("microvlm.models.llm").joinpath("qwen2.5-0.5b-config.json").read_text("utf-8")
    values = json.loads(text)
    values.pop("torch_dtype", None)
    return values


def _small_llm() -> dict:
    values = qwen_config()
    values.update(
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_window_layers=2,
    )
    return values  # the real 151,936-token vocabulary: the lm_head cost stays visible


SIZES = {
    # DeiT-Tiny (192-d, 12 layers, 3 heads) -> Q-Former 6 x 768, 32 queries -> Qwen2.5-0.5B
    "real": Sizes("real", "deit_tiny_patch16_224", 224, 16, 192, 12, 3, 768, 32, 6, 768, 12, 3072,
                  qwen_config(), 151655),
    # timm's test_vit (64-d, 6 layers) at 64 px -> Q-Former 2 x 128, 8 queries -> a 2-layer Qwen2
    "small": Sizes("small", "test_vit", 64, 16, 64, 6, 2, 192, 8, 2, 128, 4, 512, _small_llm(), 151655),
}  # fmt: skip


# -- the two models ----------------------------------------------------------------------


def llm_dir(sizes: Sizes) -> str:
    """Where our LLM plugin reads the config: the shipped hub id for real, a temp dir for small."""
    if sizes.name == "real":
        return "Qwen/Qwen2.5-0.5B"
    directory = Path(tempfile.gettempdir()) / f"microvlm-bench-llm-{sizes.name}"
    directory.mkdir(exist_ok=True)
    (directory / "config.json").write_text(json.dumps({"model_type": "qwen2", **sizes.llm}))
    return str(directory)


def build_ours(sizes: Sizes, device: str, tokenizer: str = "") -> torch.nn.Module:
    """MicroVLM (encoder frozen, LLM frozen, Q-Former + projection trainable); ``tokenizer``: a
    local tokenizer folder, for benchmarks that need one offline (the hub's is not here)."""
    import microvlm
    from microvlm.models.vlm import MicroVLM
    from microvlm.recipes.load import build_model_config

    plugins = microvlm.load_plugins()
    section = {
        "encoder": {
            "name": "timm",
            "model": sizes.timm_model,
            "pretrained": "none",
            "image_size": sizes.image_size,
            "output": "all",  # class token + patches, as BLIP-2's vision tower hands over
        },
        "bridge": {
            "name": "qformer",
            "num_queries": sizes.queries,
            "num_layers": sizes.qformer_layers,
            "hidden_size": sizes.qformer_width,
            "num_heads": sizes.qformer_heads,
            "mlp_ratio": sizes.qformer_mlp / sizes.qformer_width,
            "cross_attention_freq": 1,
        },
        "llm": {
            "name": "hf_causal_lm",
            "model": llm_dir(sizes),
            "init": "random",
            "dtype": "bfloat16" if device == "cuda" else "float32",
            **({"tokenizer": tokenizer} if tokenizer else {}),
        },
    }
    model = MicroVLM.from_config(build_model_config(section, plugins), plugins)
    model.set_trainable(["bridge", "projection"])
    return model.to(device).train()


def build_blip2(sizes: Sizes, device: str) -> torch.nn.Module:
    """transformers' Blip2ForConditionalGeneration of the same sizes, same trainable set."""
    from transformers import Blip2Config, Blip2ForConditionalGeneration

    config = Blip2Config(
        vision_config={
            "hidden_size": sizes.vision_width,
            "intermediate_size": sizes.vision_mlp,
            "num_hidden_layers": sizes.vision_layers,
            "num_attention_heads": sizes.vision_heads,
            "image_size": sizes.image_size,
            "patch_size": sizes.patch_size,
        },
        qformer_config={
            "hidden_size": sizes.qformer_width,
            "num_hidden_layers": sizes.qformer_layers,
            "num_attention_heads": sizes.qformer_heads,
            "intermediate_size": sizes.qformer_mlp,
            "cross_attention_frequency": 1,
            "encoder_hidden_size": sizes.vision_width,
        },
        text_config={"model_type": "qwen2", **sizes.llm},
        num_query_tokens=sizes.queries,
        image_token_index=sizes.image_token_id,
    )
    model = Blip2ForConditionalGeneration(config)
    model.vision_model.requires_grad_(False)
    model.language_model.requires_grad_(False)
    if device == "cuda":
        model.language_model.to(torch.bfloat16)  # as ours: LLM weights in bf16, the rest fp32 + autocast
    model = model.to(device).train()
    model.vision_model.eval()  # frozen, as our encoder
    return model


def trainable(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


# -- batches -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    """One synthetic batch, model-neutral: prompt and target lengths per sample."""

    images: torch.Tensor  # [B, 3, H, W]
    prompts: list[list[int]]  # prompt token ids per sample
    targets: list[list[int]]  # target token ids per sample (labels)

    @property
    def size(self) -> int:
        return len(self.prompts)

    @property
    def text_len(self) -> int:
        """T: the padded text length (prompt + target)."""
        return max(len(p) + len(t) for p, t in zip(self.prompts, self.targets, strict=True))

    @property
    def num_targets(self) -> int:
        return sum(len(t) for t in self.targets)

    @property
    def num_text_tokens(self) -> int:
        return sum(len(p) + len(t) for p, t in zip(self.prompts, self.targets, strict=True))


WORKLOADS = {
    # (prompt tokens low..high, target tokens low..high)
    "caption": ((0, 0), (8, 24)),  # stage 1: image + caption, loss on the caption
    "vqa": ((18, 22), (1, 3)),  # stage 4: image + ~20-token question, loss on a 1-3 token answer
}


def make_batch(workload: str, sizes: Sizes, batch: int, seed: int = 0) -> Batch:
    """Random images and token ids with the workload's length distribution (deterministic)."""
    g = torch.Generator().manual_seed(seed)
    (p_lo, p_hi), (t_lo, t_hi) = WORKLOADS[workload]
    top = sizes.llm["bos_token_id"]  # ids below every special token (and below image_token_id)

    def ids(lo: int, hi: int) -> list[int]:
        n = int(torch.randint(lo, hi + 1, (1,), generator=g))
        return torch.randint(0, top, (n,), generator=g).tolist()

    prompts = [ids(p_lo, p_hi) for _ in range(batch)]
    targets = [ids(t_lo, t_hi) for _ in range(batch)]
    images = torch.randn(batch, 3, sizes.image_size, sizes.image_size, generator=g)
    return Batch(images, prompts, targets)


def ours_inputs(batch: Batch, sizes: Sizes, device: str) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids`` / ``attention_mask`` / ``labels`` [B, T] for MicroVLM."""
    B, T = batch.size, batch.text_len
    pad = sizes.llm["eos_token_id"]
    input_ids = torch.full((B, T), pad, dtype=torch.long)
    mask = torch.zeros((B, T), dtype=torch.long)
    labels = torch.full((B, T), IGNORE, dtype=torch.long)
    for i, (p, t) in enumerate(zip(batch.prompts, batch.targets, strict=True)):
        n = len(p) + len(t)
        input_ids[i, :n] = torch.tensor(p + t)
        mask[i, :n] = 1
        labels[i, len(p) : n] = torch.tensor(t)
    out = {"images": batch.images, "input_ids": input_ids, "attention_mask": mask, "labels": labels}
    return {k: v.to(device) for k, v in out.items()}


def blip2_inputs(batch: Batch, sizes: Sizes, device: str) -> dict[str, torch.Tensor]:
    """The same batch as BLIP-2 takes it: Q image placeholder tokens in front, labels [B, Q+T]."""
    ours = ours_inputs(batch, sizes, "cpu")
    B, Q = batch.size, sizes.queries
    image_ids = torch.full((B, Q), sizes.image_token_id, dtype=torch.long)  # (B, Q)
    out = {
        "pixel_values": batch.images,
        "input_ids": torch.cat([image_ids, ours["input_ids"]], dim=1),  # (B, Q+T)
        "attention_mask": torch.cat([torch.ones(B, Q, dtype=torch.long), ours["attention_mask"]], dim=1),
        "labels": torch.cat([torch.full((B, Q), IGNORE, dtype=torch.long), ours["labels"]], dim=1),
    }
    return {k: v.to(device) for k, v in out.items()}


def generation_prompts(sizes: Sizes, batch: int, seed: int = 0) -> tuple[torch.Tensor, list[list[int]]]:
    """Images [B, 3, H, W] and ~20-token question prompts (the vqa workload's)."""
    b = make_batch("vqa", sizes, batch, seed)
    return b.images, b.prompts


def left_pad(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ``(ids [B, T], mask [B, T])`` for generation."""
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, T - len(r) :] = torch.tensor(r)
        mask[i, T - len(r) :] = 1
    return ids, mask


# -- analytic FLOPs ----------------------------------------------------------------------


def _vit_flops(sizes: Sizes) -> float:
    """Forward FLOPs of the vision tower for one image (matmuls; 2 per multiply-add)."""
    N, D, M = sizes.image_tokens, sizes.vision_width, sizes.vision_mlp
    patch = 2 * (N - 1) * 3 * sizes.patch_size**2 * D
    layer = 2 * N * D * 3 * D + 2 * 2 * N * N * D + 2 * N * D * D + 2 * 2 * N * D * M
    return patch + sizes.vision_layers * layer


def _qformer_flops(sizes: Sizes) -> tuple[float, float]:
    """(forward, backward) FLOPs of the Q-Former for one image; every layer cross-attends.

    Backward is twice the forward (input and weight gradients), except the keys/values read
    from the frozen image features, which need weight gradients only.
    """
    Q, N, D, Dv, M = (
        sizes.queries,
        sizes.image_tokens,
        sizes.qformer_width,
        sizes.vision_width,
        sizes.qformer_mlp,
    )
    self_attn = 4 * 2 * Q * D * D + 2 * 2 * Q * Q * D
    cross_q_o = 2 * 2 * Q * D * D + 2 * 2 * Q * N * D
    cross_kv = 2 * 2 * N * Dv * D
    mlp = 2 * 2 * Q * D * M
    fwd = sizes.qformer_layers * (self_attn + cross_q_o + cross_kv + mlp)
    bwd = sizes.qformer_layers * (2 * (self_attn + cross_q_o + mlp) + cross_kv)
    return fwd, bwd


def _llm_layer_flops(sizes: Sizes, S: int) -> tuple[float, float]:
    """(linear, attention) forward FLOPs of all decoder layers for one sequence of S positions."""
    c = sizes.llm
    D, inner, L = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    kv = D // c["num_attention_heads"] * c["num_key_value_heads"]
    linear = 2 * S * (D * D + 2 * D * kv + D * D + 3 * D * inner)
    attention = 2 * 2 * S * S * D  # scores and weighted sum, full S x S (what a masked kernel runs)
    return L * linear, L * attention


def train_step_flops(sizes: Sizes, batch: Batch, model: str) -> float:
    """FLOPs one training step executes: forward + backward (+ AdamW, negligible).

    Frozen vision tower: forward only. Q-Former + projection: forward and backward. Frozen
    LLM: forward, and a backward that computes input gradients only (no weight gradients),
    which is as much as the forward for the linear layers and twice it for attention.
    ``lm_head``: ours on the labelled positions only, BLIP-2 on all B x (Q+T) positions;
    forward plus its input gradient.
    """
    B, Q, S = batch.size, sizes.queries, sizes.queries + batch.text_len
    D, V = sizes.llm["hidden_size"], sizes.llm["vocab_size"]
    q_fwd, q_bwd = _qformer_flops(sizes)
    if model == "ours":
        proj = 2 * Q * sizes.qformer_width * D + 2 * Q * D * D  # two linear layers
        head_rows = batch.num_targets
    else:
        proj = 2 * Q * sizes.qformer_width * D  # BLIP-2's single language_projection
        head_rows = B * S
    linear, attention = _llm_layer_flops(sizes, S)
    per_image = _vit_flops(sizes) + q_fwd + q_bwd + 3 * proj
    llm = B * (2 * linear + 3 * attention)
    head = 2 * 2 * head_rows * D * V
    return B * per_image + llm + head


def generate_flops(sizes: Sizes, batch: int, prompt_len: int, new_tokens: int) -> float:
    """Forward FLOPs of generating ``new_tokens`` with a KV cache (prefill + decode steps)."""
    D, V = sizes.llm["hidden_size"], sizes.llm["vocab_size"]
    q_fwd, _ = _qformer_flops(sizes)
    S0 = sizes.queries + prompt_len
    linear, attention = _llm_layer_flops(sizes, S0)
    total = batch * (_vit_flops(sizes) + q_fwd + linear + attention) + 2 * batch * D * V
    for step in range(1, new_tokens):
        lin1, _ = _llm_layer_flops(sizes, 1)
        total += batch * (lin1 + 2 * 2 * (S0 + step) * D * sizes.llm["num_hidden_layers"] + 2 * D * V)
    return total


# -- machine -----------------------------------------------------------------------------


class Gemm:
    """A large square GEMM timed on demand: the machine's matmul throughput, FLOP/s.

    The operands are allocated once, so timing it between measured steps adds no memory.
    """

    def __init__(self, device: str, dtype: torch.dtype, n: int = 2048) -> None:
        self.device, self.n = device, n
        self.a = torch.randn(n, n, device=device, dtype=dtype)
        self.b = torch.randn(n, n, device=device, dtype=dtype)
        self.out = torch.empty(n, n, device=device, dtype=dtype)
        torch.mm(self.a, self.b, out=self.out)  # warm-up

    def flops_per_s(self, reps: int = 3) -> float:
        """Median over ``reps`` products."""
        times = []
        for _ in range(reps):
            sync(self.device)
            t0 = time.perf_counter()
            torch.mm(self.a, self.b, out=self.out)
            sync(self.device)
            times.append(time.perf_counter() - t0)
        return 2 * self.n**3 / statistics.median(times)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def cpu_flags() -> list[str]:
    """The SIMD flags of /proc/cpuinfo that matter for GEMM speed."""
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in wanted if f in have]
    except OSError:
        pass
    return []


def machine(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "loadavg": os.getloadavg(),
        "torch": torch.__version__,
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    import transformers

    info["transformers"] = transformers.__version__
    return info


class OtherLoad:
    """How much of the machine's CPU time other processes took while a block ran.

    Reads ``/proc/stat`` (all CPUs) and ``/proc/self/stat`` (this process) around the block;
    ``fraction`` is other processes' busy time over the machine's total, 0 when alone. The
    CPUs here are shared: a measurement taken while ``fraction`` is high is slowed by others.
    """

    def __enter__(self) -> OtherLoad:
        self.start = _ticks()
        return self

    def __exit__(self, *exc: object) -> None:
        end = _ticks()
        total, busy, own = (e - s for e, s in zip(end, self.start, strict=True))
        self.fraction = max(0.0, (busy - own) / total) if total > 0 else 0.0


def _ticks() -> tuple[int, int, int]:
    """(all CPU ticks, busy CPU ticks, this process's ticks); zeros where /proc is missing."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return (0, 0, 0)
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]), sum(fields[:8]) - idle, int(own[11]) + int(own[12]))  # utime + stime


def add_load_arguments(ap: Any) -> None:
    """``--max-other-load`` / ``--retries``: repeat a measurement taken while others were busy."""
    ap.add_argument(
        "--max-other-load",
        type=float,
        default=None,
        metavar="FRACTION",
        help="repeat a measurement if other processes took more of the CPUs meanwhile (e.g. 0.1)",
    )
    ap.add_argument("--retries", type=int, default=3, help="repeats allowed per measurement")


def too_loaded(load: float, limit: float | None, attempt: int, retries: int, wait_s: float = 30.0) -> bool:
    """True (after a pause) when a measurement should be taken again; False to keep it."""
    if limit is None or load <= limit:
        return False
    if attempt >= retries:
        print(f"  others' CPU share {load:.0%} > {limit:.0%}; kept after {retries} retries", file=sys.stderr)
        return False
    print(f"  others' CPU share {load:.0%} > {limit:.0%}: again in {wait_s:.0f} s", file=sys.stderr)
    time.sleep(wait_s)
    return True


# -- memory ------------------------------------------------------------------------------


def reset_peak_memory(device: str) -> None:
    """Start a new high-water mark: VmHWM via /proc/self/clear_refs, or CUDA's peak stats."""
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        return
    with contextlib.suppress(OSError):  # not Linux: the process peak (ru_maxrss) is all there is
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory(device: str) -> dict[str, int]:
    """Peak since :func:`reset_peak_memory` and over the whole process, bytes."""
    if device == "cuda":
        return {"peak": torch.cuda.max_memory_allocated(), "process_peak": torch.cuda.max_memory_allocated()}
    scale = 1 if sys.platform == "darwin" else 1024
    process = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    peak = process
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {"peak": peak, "process_peak": process}


# -- workers and output ------------------------------------------------------------------


def run_worker(script: str, args: list[str]) -> dict[str, Any]:
    """Run ``script --worker ...`` in a fresh interpreter; returns the JSON of its last stdout line."""
    cmd = [sys.executable, str(BENCH_DIR / script), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed: {' '.join(cmd)}\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median(values: list[float]) -> float:
    return statistics.median(values)


def emit_json(record: dict[str, Any]) -> None:
    print(json.dumps(record, default=_jsonable), flush=True)


def append_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    with path.open("a") as f:
        for record in records:
            f.write(json.dumps(record, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Sizes):
        return asdict(value)
    if isinstance(value, tuple):
        return list(value)
    return str(value)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table (readable in a terminal and pastable into RESULTS.md)."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = lambda items: "| " + " | ".join(s.rjust(w) for s, w in zip(items, widths, strict=True)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in cells)])


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def gib(n: float) -> float:
    return n / 2**30
