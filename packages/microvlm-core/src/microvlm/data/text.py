"""Text side of a batch: task examples -> token ids, attention mask and labels.

Each :class:`~microvlm.data.Segment` is tokenized on its own and the ids concatenated, so
the boundary between prompt and target is exact (no re-tokenization across it). Labels are
the target tokens; everything else is ``IGNORE``. Truncation is a pure function of the
example and the limits, so every DDP rank cuts a sequence the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import attrs
import torch

from microvlm.data import Example
from microvlm.errors import MicroVLMError

logger = logging.getLogger(__name__)

IGNORE = -100  # label of positions without a loss


@attrs.frozen
class TextBatch:
    """Right-padded text for training."""

    input_ids: torch.Tensor  # [B, T] token ids, pad_token_id after the end
    attention_mask: torch.Tensor  # [B, T] 1 = real token
    labels: torch.Tensor  # [B, T] target token ids, IGNORE elsewhere

    @property
    def num_target_tokens(self) -> int:
        return int((self.labels != IGNORE).sum())


def tokenize_example(example: Example, tokenizer: Any, max_tokens: int) -> tuple[list[int], list[int]]:
    """``(ids, labels)`` for one example, at most ``max_tokens`` long (the tail is cut)."""
    ids: list[int] = []
    labels: list[int] = []
    for segment in example.segments:
        piece = tokenizer(segment.text, add_special_tokens=False)["input_ids"]
        ids.extend(piece)
        labels.extend(piece if segment.target else [IGNORE] * len(piece))
    return ids[:max_tokens], labels[:max_tokens]


def collate_text(examples: Sequence[Example], tokenizer: Any, max_tokens: int) -> TextBatch:
    """Tokenize and right-pad a list of examples."""
    rows = [tokenize_example(e, tokenizer, max_tokens) for e in examples]
    T = max([1, *(len(ids) for ids, _ in rows)])
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(rows), T), pad, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), T), dtype=torch.long)
    labels = torch.full((len(rows), T), IGNORE, dtype=torch.long)
    for i, (ids, labs) in enumerate(rows):
        n = len(ids)
        input_ids[i, :n] = torch.tensor(ids, dtype=torch.long)
        attention_mask[i, :n] = 1
        labels[i, :n] = torch.tensor(labs, dtype=torch.long)
    return TextBatch(input_ids, attention_mask, labels)


def left_pad_prompts(
    prompts: Sequence[str], tokenizer: Any, max_tokens: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts -> left-padded ``(input_ids [B, T], attention_mask [B, T])`` for generation.

    The head of an over-long prompt is cut, keeping the end (where the question is).
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    rows = [tokenizer(p, add_special_tokens=False)["input_ids"][-max_tokens:] for p in prompts]
    T = max([1, *(len(r) for r in rows)])
    input_ids = torch.full((len(rows), T), tokenizer.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), T), dtype=torch.long)
    for i, ids in enumerate(rows):
        if ids:
            input_ids[i, T - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[i, T - len(ids) :] = 1
    return input_ids, attention_mask


def generation_room(num_queries: int, max_positions: int | None, max_prompt_tokens: int) -> int:
    """Prompt tokens that fit with ``Q`` image tokens and at least one new token in the LLM's
    ``max_positions`` (``max_prompt_tokens`` when the LLM has no limit)."""
    if not max_positions:
        return max_prompt_tokens
    room = max_positions - num_queries - 1
    if room < 1:
        raise MicroVLMError(
            f"the LLM takes {max_positions} positions but the bridge emits {num_queries} image tokens: "
            "no room for a prompt and an answer; use fewer queries (model.bridge.num_queries)"
        )
    return min(max_prompt_tokens, room)


def fit_new_tokens(
    max_new_tokens: int, max_positions: int, num_queries: int, prompt_tokens: int, warned: set[int]
) -> int:
    """``max_new_tokens`` lowered so that image, prompt and answer fit in ``max_positions``;
    warns once per asked value (kept in ``warned``), so a batched run warns once."""
    room = max_positions - num_queries - prompt_tokens  # >= 1 for a prompt cut by generation_room
    if max_new_tokens <= room:
        return max_new_tokens
    if max_new_tokens not in warned:
        warned.add(max_new_tokens)
        logger.warning(
            "max_new_tokens=%d does not fit the LLM's %d positions (%d image tokens, %d prompt tokens): "
            "generating at most %d",
            *(max_new_tokens, max_positions, num_queries, prompt_tokens, room),
        )
    return room
