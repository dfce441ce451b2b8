"""The offline demo's language-side ceiling: VQA accuracy of its LM when the image tokens are perfect.

The demo (recipes/demo.toml) answers about half its shapes questions (majority baseline: about a
third). This asks whether what holds it back is what the encoder and Q-Former extract from the
pixels, or how fast its from-scratch language model learns to look things up. The image tokens
here come straight from each scene's ground truth, one token per shape (learned embeddings of
its colour, kind and size, plus an MLP of its box at the same scale; a learned "empty" token pads to four), so
nothing is left to vision. The rest is the demo's: the LM configuration (recipes/demo/llm), the
tokenizer (data/shapes-demo/tokenizer when the demo has run, else one trained on a fresh sample
of shapes texts), the VQA prompt, AdamW with the runner's parameter groups, the warm-up + cosine
schedule, batch size and learning rate. Training questions come from fresh scenes every step;
a fixed held-out set is answered greedily and scored with the vqa task's own metric (VQAv2
accuracy over ten simulated annotators, per question type, beside the majority answer), and
the demo's results.json, when present, sits beside it (same question generator, its own
held-out images).

    python benchmarks/demo_ceiling.py                       # 1000 steps (the demo's stage 4 length)
    python benchmarks/demo_ceiling.py --steps 3000 --json   # longer; one JSON line at the end
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from torch import nn

from common import emit_json, table

ROOT = Path(__file__).resolve().parents[1]
SLOTS = 4  # the shapes set has at most four shapes
PROMPT = "Question: {question} Answer:"  # the vqa task's training and evaluation prompt
CAPTION_PROMPT = "Describe this image."  # the captioning task's evaluation prompt


class SceneTokens(nn.Module):
    """Perfect image tokens: one per shape, ``[B, SLOTS, D]``."""

    def __init__(self, width: int, image_size: int) -> None:
        from microvlm_datasets.shapes.scene import COLOURS, KINDS

        super().__init__()
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
        return self.colour(c) + self.kind(k) + self.size(s) + self.box(box) * shown  # (B, SLOTS, D)


def draw_questions(rng: np.random.Generator, n: int, image_size: int) -> list[tuple]:
    """``n`` (scene, QA, ten annotator answers), one question of a fresh scene each."""
    from microvlm_datasets.shapes.scene import sample_scene
    from microvlm_datasets.shapes.text import annotator_answers, questions

    out = []
    for _ in range(n):
        scene = sample_scene(rng, image_size)
        options = questions(scene, rng)
        qa = options[int(rng.integers(len(options)))]
        out.append((scene, qa, [a for a, _ in annotator_answers(qa, rng)]))
    return out


def mixed_batch(rng: np.random.Generator, n: int, image_size: int, caption_share: float) -> list[tuple]:
    """``n`` training examples: questions, and about ``caption_share`` of them captions (as the
    demo's stages mix in captioning): ``(scene, None, caption)``."""
    from microvlm_datasets.shapes.text import captions

    batch = draw_questions(rng, n, image_size)
    for i, (scene, _, _) in enumerate(batch):
        if rng.random() < caption_share:
            options = captions(scene, rng)
            batch[i] = (scene, None, options[int(rng.integers(len(options)))])
    return batch


def tokenizer_for(path: Path | None, image_size: int):
    """The demo's tokenizer when it exists, else one trained on a fresh sample of shapes texts."""
    from transformers import AutoTokenizer

    if path is not None and path.is_dir():
        return AutoTokenizer.from_pretrained(str(path)), str(path)
    from microvlm.llm.tokenizer import train_chatml_tokenizer
    from microvlm_datasets.shapes.text import captions
    from microvlm_datasets.shapes.tokenizer import PROMPT_WORDS

    rng = np.random.default_rng(99)
    texts = [PROMPT_WORDS]
    for scene, qa, _ in draw_questions(rng, 2000, image_size):
        texts += [qa.question, qa.answer, *captions(scene, rng)]
    out = Path(tempfile.mkdtemp(prefix="ceiling-tok-"))
    train_chatml_tokenizer(iter(texts), out, vocab_size=1024)
    return AutoTokenizer.from_pretrained(str(out)), "trained on 2,000 fresh scenes' texts"


class Ceiling:
    """The demo's LM reading perfect scene tokens."""

    def __init__(self, llm_dir: Path, tokenizer, image_size: int) -> None:
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(str(llm_dir))
        config.vocab_size = max(config.vocab_size, len(tokenizer))
        self.lm = AutoModelForCausalLM.from_config(config).float()
        self.scene = SceneTokens(config.hidden_size, image_size)
        self.tok = tokenizer
        self.eos = tokenizer.eos_token_id

    def parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [*self.lm.named_parameters(), *(("scene." + n, p) for n, p in self.scene.named_parameters())]

    def _ids(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False).input_ids

    def loss(self, batch: list[tuple]) -> torch.Tensor:
        rows, labels = [], []
        for _, qa, answers in batch:
            if qa is None:  # a caption example (--caption-share): answers holds the caption
                prompt, target = self._ids(CAPTION_PROMPT), [*self._ids(" " + answers), self.eos]
            else:
                prompt = self._ids(PROMPT.format(question=qa.question))
                target = [*self._ids(" " + qa.answer), self.eos]
            rows.append(prompt + target)
            labels.append([-100] * len(prompt) + target)
        T = max(map(len, rows))
        ids = torch.tensor([r + [self.eos] * (T - len(r)) for r in rows])  # (B, T), right-padded
        lab = torch.tensor([r + [-100] * (T - len(r)) for r in labels])  # (B, T)
        image = self.scene([scene for scene, _, _ in batch])  # (B, SLOTS, D)
        embeds = torch.cat([image, self.lm.get_input_embeddings()(ids)], dim=1)  # (B, SLOTS+T, D)
        hidden = self.lm.model(inputs_embeds=embeds).last_hidden_state[:, SLOTS - 1 : -1]  # (B, T, D)
        picked = lab != -100
        return nn.functional.cross_entropy(self.lm.lm_head(hidden[picked]), lab[picked])

    @torch.no_grad()
    def answer(self, batch: list[tuple], max_new_tokens: int = 4) -> list[str]:
        """Greedy answers, one question at a time (no padding to reason about)."""
        out = []
        for scene, qa, _ in batch:
            ids = torch.tensor([self._ids(PROMPT.format(question=qa.question))])
            image = self.scene([scene])  # (1, SLOTS, D)
            new: list[int] = []
            for _ in range(max_new_tokens):
                text = self.lm.get_input_embeddings()(ids)
                logits = self.lm(inputs_embeds=torch.cat([image, text], dim=1)).logits[0, -1]
                token = int(logits.argmax())
                if token == self.eos:
                    break
                new.append(token)
                ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
            out.append(self.tok.decode(new).strip())
        return out


def score(model: Ceiling, held_out: list[tuple]) -> dict[str, float | str]:
    """The vqa task's metric on the held-out questions: accuracy, per type, majority baseline."""
    from microvlm.data import ImageRef, Sample
    from microvlm_tasks.config import VQAConfig
    from microvlm_tasks.vqa import VQATask

    model.lm.eval()
    predictions = model.answer(held_out)
    model.lm.train()
    samples = [
        Sample(
            str(i),
            ImageRef(path="scene"),
            "shapes",
            question=qa.question,
            answers=tuple(answers),
            answer_type=qa.answer_type,
            meta={"question_type": qa.question_type, "multiple_choice_answer": qa.answer},
        )
        for i, (_, qa, answers) in enumerate(held_out)
    ]
    return VQATask(VQAConfig()).score(predictions, samples)


def by_type(scores: dict) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name, value in scores.items():
        if name.startswith("question_type/"):
            _, kind, what = name.split("/", 2)
            out.setdefault(kind, {})[what] = value
    return out


def demo_results(path: Path) -> dict | None:
    if not path.is_file():
        return None
    vqa = json.loads(path.read_text()).get("vqa")
    return vqa if isinstance(vqa, dict) else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=1000, help="optimizer steps (demo stage 4: 1000)")
    p.add_argument("--eval-every", type=int, default=250, help="score the held-out set every N steps")
    p.add_argument("--held-out", type=int, default=500, help="held-out questions (the demo evaluates 500)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument(
        "--caption-share", type=float, default=0.0, help="share of training examples that are captions (0-1)"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (the demo uses 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--llm", type=Path, default=ROOT / "recipes" / "demo" / "llm", help="LM config folder")
    p.add_argument("--tokenizer", type=Path, default=ROOT / "data" / "shapes-demo" / "tokenizer")
    p.add_argument("--demo-results", type=Path, default=ROOT / "output" / "demo" / "stage4" / "results.json")
    p.add_argument("--image-size", type=int, default=64, help="the demo's image side, pixels")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of the tables")
    args = p.parse_args(argv)

    from microvlm.train.schedule import make_scheduler, param_groups

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tokenizer, tokenizer_from = tokenizer_for(args.tokenizer, args.image_size)
    model = Ceiling(args.llm, tokenizer, args.image_size)
    params = model.parameters()
    optimizer = torch.optim.AdamW(param_groups(params, 0.01), lr=args.lr)
    scheduler = make_scheduler(optimizer, args.warmup, args.steps, 0.05)
    held_out = draw_questions(np.random.default_rng([args.seed, 1]), args.held_out, args.image_size)
    train_rng = np.random.default_rng([args.seed, 0])

    curve, losses, start = [], [], time.perf_counter()
    for step in range(1, args.steps + 1):
        loss = model.loss(mixed_batch(train_rng, args.batch_size, args.image_size, args.caption_share))
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if step % args.eval_every == 0 or step == args.steps:
            scores = score(model, held_out)
            curve.append(
                {
                    "step": step,
                    "samples": step * args.batch_size,
                    "loss": sum(losses[-args.eval_every :]) / len(losses[-args.eval_every :]),
                    "accuracy": scores["accuracy"],
                    "by_type": {k: v["accuracy"] for k, v in by_type(scores).items()},
                }
            )
            if not args.json:
                loss_now, accuracy = curve[-1]["loss"], scores["accuracy"]
                print(f"step {step}: loss {loss_now:.3f}, accuracy {accuracy:.3f}", flush=True)
    final = by_type(scores)
    demo = demo_results(args.demo_results)
    record = {
        "benchmark": "demo_ceiling",
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "caption_share": args.caption_share,
        "seconds": time.perf_counter() - start,
        "tokenizer": tokenizer_from,
        "accuracy": scores["accuracy"],
        "majority_baseline": scores["majority_baseline"],
        "by_type": final,
        "curve": curve,
        "demo": demo and {"accuracy": demo.get("accuracy"), "by_type": demo.get("by_question_type")},
        "gap_to_target": 0.95 - float(scores["accuracy"]),
    }
    if args.json:
        emit_json(record)
        return 0
    demo_types = (record["demo"] or {}).get("by_type") or {}
    counts = Counter(re.sub(r"[^a-z0-9]+", "_", qa.question_type.lower()).strip("_") for _, qa, _ in held_out)
    rows = [
        [
            kind,
            counts[kind],
            values["accuracy"],
            values["majority_baseline"],
            _demo_cell(demo_types.get(kind)),
        ]
        for kind, values in sorted(final.items())
    ]
    rows.append(["all", len(held_out), scores["accuracy"], scores["majority_baseline"], _demo_cell(demo)])
    print()
    print(
        f"VQA with perfect image tokens after {args.steps} steps of {args.batch_size}"
        f"{f', {args.caption_share:.0%} captions' if args.caption_share else ''} ({record['seconds']:.0f} s)"
    )
    print(table(["question type", "n", "perfect tokens", "majority", "demo (pixels)"], rows))
    print()
    print(table(["step", "loss", "accuracy"], [[c["step"], c["loss"], c["accuracy"]] for c in curve]))
    return 0


def _demo_cell(values: dict | None) -> str:
    if not values or not isinstance(values.get("accuracy"), (int, float)) or math.isnan(values["accuracy"]):
        return "-"
    return f"{values['accuracy']:.3g}"


if __name__ == "__main__":
    raise SystemExit(main())
