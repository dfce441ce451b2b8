"""The offline demo's language-side ceiling: what its LM learns when the image tokens are perfect.

The demo (recipes/demo.toml) answers about half its shapes questions (majority baseline: about a
third) and almost no grounding. This asks whether what holds it back is what the encoder and
Q-Former extract from the pixels, or how fast its from-scratch language model learns to look
things up. The image tokens here come straight from each scene's ground truth, one token per
shape (learned embeddings of its colour, kind and size plus an MLP of its box at the same scale;
a learned "empty" token pads to four), so nothing is left to vision. The rest is the demo's: the
LM configuration (recipes/demo/llm), the tokenizer (data/shapes-demo/tokenizer when the demo has
run, else one trained on a fresh sample of shapes texts), the tasks plugin's vqa / grounding /
captioning tasks with their prompts, target formats and metrics, AdamW with the runner's
parameter groups, the warm-up + cosine schedule, batch size and learning rate. Training items
come from fresh scenes every step; a fixed held-out set is answered greedily and scored with the
task's own metric (vqa: VQAv2 accuracy over ten simulated annotators per question type, beside
the majority answer; grounding: Acc@0.5, mIoU), with the demo's results.json beside it when
present (same generator, its own held-out images).

    python benchmarks/demo_ceiling.py                       # vqa, 1000 steps (demo stage 4's length)
    python benchmarks/demo_ceiling.py --task grounding      # referring expression -> box
    python benchmarks/demo_ceiling.py --steps 3000 --json   # longer; one JSON line at the end
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import attrs
import numpy as np
import torch
from torch import nn

from common import emit_json, table

ROOT = Path(__file__).resolve().parents[1]
SLOTS = 4  # the shapes set has at most four shapes
MAX_TEXT_TOKENS = 96  # the demo's run.max_text_tokens


class SceneTokens(nn.Module):
    """Perfect image tokens: one per shape, ``[B, SLOTS, D]``."""

    def __init__(self, width: int, image_size: int, box_scale: float = 1.0) -> None:
        from microvlm_datasets.shapes.scene import COLOURS, KINDS

        super().__init__()
        self.box_scale = box_scale  # how strongly the position enters the token, against the attributes
        self.colours, self.kinds, self.image_size = list(COLOURS), list(KINDS), image_size
        self.colour = nn.Embedding(len(self.colours) + 1, width)  # index 0: no shape
        self.kind = nn.Embedding(len(self.kinds) + 1, width)
        self.size = nn.Embedding(3, width)  # none, small, large
        # the box enters at the embeddings' scale (unit variance per feature), not 10x weaker
        self.box = nn.Sequential(nn.Linear(4, width), nn.GELU(), nn.Linear(width, width), nn.LayerNorm(width))

    def forward(self, scenes: list) -> torch.Tensor:
        c = torch.zeros(len(scenes), SLOTS, dtype=torch.long)
        k, s = torch.zeros_like(c), torch.zeros_like(c)
        box = torch.zeros(len(scenes), SLOTS, 4)
        for b, scene in enumerate(scenes):
            for i, shape in enumerate(scene.shapes):
                x, y, w, h = shape.box
                c[b, i] = self.colours.index(shape.colour) + 1
                k[b, i] = self.kinds.index(shape.kind) + 1
                s[b, i] = 1 + (shape.size == "large")
                box[b, i] = torch.tensor([x, y, x + w, y + h]) / self.image_size
        shown = (s > 0).unsqueeze(-1)  # (B, SLOTS, 1): padding slots get no box term
        return (
            self.colour(c) + self.kind(k) + self.size(s) + self.box(box) * shown * self.box_scale
        )  # (B, SLOTS, D)


def make_tasks() -> dict:
    """The tasks plugin's own vqa, grounding and captioning tasks, default settings (as the demo)."""
    from microvlm_tasks.captioning import build_captioning
    from microvlm_tasks.config import CaptioningConfig, GroundingConfig, VQAConfig
    from microvlm_tasks.grounding import build_grounding
    from microvlm_tasks.vqa import build_vqa

    return {
        "vqa": build_vqa(VQAConfig()),
        "grounding": build_grounding(GroundingConfig()),
        "captioning": build_captioning(CaptioningConfig()),
    }


def draw(rng: np.random.Generator, n: int, image_size: int, task: str) -> list[tuple]:
    """``n`` items ``(scene, Sample, task)`` of fresh scenes, as the shapes set writes them:
    a question (with ten simulated annotators' answers), a referring expression and its box, or
    the scene's captions."""
    from microvlm.data import Box, ImageRef, Sample
    from microvlm_datasets.shapes.scene import sample_scene
    from microvlm_datasets.shapes.text import annotator_answers, captions, expressions, questions

    out = []
    for i in range(n):
        scene = sample_scene(rng, image_size)
        image = ImageRef(path=f"scene-{i}", size=(image_size, image_size))  # never opened
        if task == "vqa":
            options = questions(scene, rng)
            qa = options[int(rng.integers(len(options)))]
            meta = {"question_type": qa.question_type, "multiple_choice_answer": qa.answer}
            answers = tuple(a for a, _ in annotator_answers(qa, rng))
            sample = Sample(str(i), image, "shapes", question=qa.question, answers=answers, meta=meta)
            sample = attrs.evolve(sample, answer_type=qa.answer_type)
        elif task == "grounding":
            shape = scene.shapes[int(rng.integers(len(scene.shapes)))]
            options = expressions(scene, shape, rng)
            expression = options[int(rng.integers(len(options)))]
            sample = Sample(str(i), image, "shapes", expression=expression, box=Box.from_xywh(*shape.box))
        else:
            sample = Sample(str(i), image, "shapes", captions=tuple(captions(scene, rng)))
        out.append((scene, sample, task))
    return out


def mixed_batch(
    rng: np.random.Generator, n: int, image_size: int, task: str, caption_share: float
) -> list[tuple]:
    """``n`` training items of ``task``, about ``caption_share`` of them captions instead (as the
    demo's stages mix captioning in)."""
    captioned = int((rng.random(n) < caption_share).sum())
    return draw(rng, n - captioned, image_size, task) + draw(rng, captioned, image_size, "captioning")


def tokenizer_for(path: Path | None, image_size: int):
    """The demo's tokenizer when it exists, else one trained on a fresh sample of shapes texts."""
    from transformers import AutoTokenizer

    if path is not None and path.is_dir():
        return AutoTokenizer.from_pretrained(str(path)), str(path)
    from microvlm.models.llm.tokenizer import train_chatml_tokenizer
    from microvlm_datasets.shapes.tokenizer import PROMPT_WORDS

    rng = np.random.default_rng(99)
    texts = [PROMPT_WORDS]
    for task in ("vqa", "grounding", "captioning"):
        for _, sample, _ in draw(rng, 1000, image_size, task):
            texts += [sample.question, *sample.answers, sample.expression, *sample.captions]
    out = Path(tempfile.mkdtemp(prefix="ceiling-tok-"))
    train_chatml_tokenizer(iter(texts), out, vocab_size=1024)
    return AutoTokenizer.from_pretrained(str(out)), "trained on 3,000 fresh scenes' texts"


class Ceiling:
    """The demo's LM reading perfect scene tokens."""

    def __init__(self, llm_dir: Path, tokenizer, image_size: int, box_scale: float = 1.0) -> None:
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(str(llm_dir))
        config.vocab_size = max(config.vocab_size, len(tokenizer))
        self.lm = AutoModelForCausalLM.from_config(config).float()
        self.scene = SceneTokens(config.hidden_size, image_size, box_scale)
        self.tok = tokenizer
        self.eos = tokenizer.eos_token_id

    def parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [*self.lm.named_parameters(), *(("scene." + n, p) for n, p in self.scene.named_parameters())]

    def loss(self, batch: list[tuple], tasks: dict, rng: random.Random) -> torch.Tensor:
        from microvlm.data.text import IGNORE, collate_text

        examples = [tasks[task].example(sample, rng, self.tok) for _, sample, task in batch]
        text = collate_text(examples, self.tok, MAX_TEXT_TOKENS)  # right-padded (B, T)
        image = self.scene([scene for scene, _, _ in batch])  # (B, SLOTS, D)
        embeds = torch.cat([image, self.lm.get_input_embeddings()(text.input_ids)], dim=1)  # (B, SLOTS+T, D)
        # right padding under a causal mask: no real position sees a pad
        hidden = self.lm.model(inputs_embeds=embeds).last_hidden_state[:, SLOTS - 1 : -1]  # (B, T, D)
        picked = text.labels != IGNORE
        return nn.functional.cross_entropy(self.lm.lm_head(hidden[picked]), text.labels[picked])

    @torch.no_grad()
    def answer(self, items: list[tuple], tasks: dict) -> list[str]:
        """Greedy generations (transformers' ``generate`` from embeddings), one item at a time."""
        out = []
        for scene, sample, task in items:
            prompt = tasks[task].eval_prompt(sample, self.tok)
            ids = torch.tensor([self.tok(prompt, add_special_tokens=False).input_ids])  # (1, T)
            text = self.lm.get_input_embeddings()(ids)  # (1, T, D)
            embeds = torch.cat([self.scene([scene]), text], dim=1)  # (1, SLOTS+T, D)
            new = self.lm.generate(
                inputs_embeds=embeds,
                max_new_tokens=tasks[task].max_new_tokens,
                do_sample=False,
                eos_token_id=self.eos,
                pad_token_id=self.eos,
            )  # (1, <= max_new_tokens): only the new tokens when generating from embeddings
            out.append(self.tok.decode(new[0], skip_special_tokens=True).strip())
        return out


def score(model: Ceiling, held_out: list[tuple], tasks: dict) -> dict[str, float | str]:
    """The task's own metric on the held-out items (vqa: accuracy per type beside the majority)."""
    model.lm.eval()
    predictions = model.answer(held_out, tasks)
    model.lm.train()
    task = held_out[0][2]
    return tasks[task].score(predictions, [sample for _, sample, _ in held_out])


HEADLINE = {"vqa": "accuracy", "grounding": "acc@0.5"}  # the figure results.json reports per task


def demo_results(path: Path, task: str) -> dict | None:
    """The demo's own figures for ``task`` from its results.json, if it has run."""
    if not path.is_file():
        return None
    entry = json.loads(path.read_text()).get(task)
    return entry if isinstance(entry, dict) else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--task", choices=sorted(HEADLINE), default="vqa", help="what the LM learns and is scored on"
    )
    p.add_argument("--steps", type=int, default=1000, help="optimizer steps (demo stage 4: 1000)")
    p.add_argument("--eval-every", type=int, default=250, help="score the held-out set every N steps")
    p.add_argument("--held-out", type=int, default=500, help="held-out items (the demo evaluates 500)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument(
        "--caption-share", type=float, default=0.0, help="share of training examples that are captions (0-1)"
    )
    p.add_argument("--box-scale", type=float, default=1.0, help="weight of the box term in each token")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the demo uses 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--llm", type=Path, default=ROOT / "recipes" / "demo" / "llm", help="LM config folder")
    p.add_argument("--tokenizer", type=Path, default=ROOT / "data" / "shapes-demo" / "tokenizer")
    p.add_argument("--demo-results", type=Path, default=ROOT / "output" / "demo" / "stage4" / "results.json")
    p.add_argument("--image-size", type=int, default=64, help="the demo's image side, pixels")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of the tables")
    args = p.parse_args(argv)

    from microvlm.train.schedule import make_scheduler, param_groups
    from microvlm_tasks.vqa import by_question_type

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data_rng = random.Random(args.seed)  # the tasks' own choices (e.g. which caption)
    tasks = make_tasks()
    tokenizer, tokenizer_from = tokenizer_for(args.tokenizer, args.image_size)
    model = Ceiling(args.llm, tokenizer, args.image_size, args.box_scale)
    params = model.parameters()
    optimizer = torch.optim.AdamW(param_groups(params, 0.01), lr=args.lr)
    scheduler = make_scheduler(optimizer, args.warmup, args.steps, 0.05)
    held_out = draw(np.random.default_rng([args.seed, 1]), args.held_out, args.image_size, args.task)
    train_rng = np.random.default_rng([args.seed, 0])
    metric = HEADLINE[args.task]

    curve, losses, start = [], [], time.perf_counter()
    for step in range(1, args.steps + 1):
        batch = mixed_batch(train_rng, args.batch_size, args.image_size, args.task, args.caption_share)
        loss = model.loss(batch, tasks, data_rng)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if step % args.eval_every == 0 or step == args.steps:
            scores = score(model, held_out, tasks)
            point = {
                "step": step,
                "samples": step * args.batch_size,
                "loss": sum(losses[-args.eval_every :]) / len(losses[-args.eval_every :]),
                metric: scores[metric],
            }
            if args.task == "vqa":
                point["by_type"] = {k: v["accuracy"] for k, v in by_question_type(scores).items()}
            curve.append(point)
            if not args.json:
                print(f"step {step}: loss {point['loss']:.3f}, {metric} {scores[metric]:.3f}", flush=True)
    demo = demo_results(args.demo_results, args.task)
    record = {
        "benchmark": "demo_ceiling",
        "task": args.task,
        "metric": metric,
        "value": scores[metric],
        "scores": {k: v for k, v in scores.items() if isinstance(v, float) and "/" not in k},
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "caption_share": args.caption_share,
        "box_scale": args.box_scale,
        "seconds": time.perf_counter() - start,
        "tokenizer": tokenizer_from,
        "curve": curve,
        "demo": demo and {metric: demo.get(metric)},
    }
    if args.task == "vqa":
        record["by_type"] = by_question_type(scores)
        record["demo"] = demo and {metric: demo.get(metric), "by_type": demo.get("by_question_type")}
    if args.json:
        emit_json(record)
        return 0
    mix = f", {args.caption_share:.0%} captions" if args.caption_share else ""
    print()
    print(f"{args.task} with perfect image tokens after {args.steps} steps of {args.batch_size}{mix}", end="")
    print(f" ({record['seconds']:.0f} s)")
    if args.task == "vqa":
        print(vqa_table(record, held_out))
    else:
        rows = [[name, value, _cell((demo or {}).get(name))] for name, value in record["scores"].items()]
        print(table(["metric", "perfect tokens", "demo (pixels)"], rows))
    print()
    print(table(["step", "loss", metric], [[c["step"], c["loss"], c[metric]] for c in curve]))
    return 0


def vqa_table(record: dict, held_out: list[tuple]) -> str:
    """Per question type: perfect tokens, the majority answer, the demo from pixels."""
    demo_types = (record["demo"] or {}).get("by_type") or {}
    from microvlm_tasks.vqa import question_type_key

    counts = Counter(question_type_key(sample.meta["question_type"]) for _, sample, _ in held_out)
    rows = [
        [
            kind,
            counts[kind],
            v["accuracy"],
            v["majority_baseline"],
            _cell((demo_types.get(kind) or {}).get("accuracy")),
        ]
        for kind, v in sorted(record["by_type"].items())
    ]
    demo_all = (record["demo"] or {}).get("accuracy")
    rows.append(
        ["all", len(held_out), record["value"], record["scores"]["majority_baseline"], _cell(demo_all)]
    )
    return table(["question type", "n", "perfect tokens", "majority", "demo (pixels)"], rows)


def _cell(value: object) -> str:
    if not isinstance(value, (int, float)) or math.isnan(value):
        return "-"
    return f"{value:.3g}"


if __name__ == "__main__":
    raise SystemExit(main())
