"""``instruct``: multi-turn conversations (LLaVA-Instruct) through the LLM's chat template.

Training renders the whole conversation (:mod:`microvlm_tasks.chat`); only the assistant
replies and their end-of-turn tokens carry the loss. Evaluation asks for the final
assistant reply given everything before it and scores it with the caption metrics
(BLEU, METEOR, ROUGE-L, CIDEr) against the reference reply.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from microvlm.data import Example, Sample
from microvlm.errors import MicroVLMError
from microvlm_tasks.base import TaskDefaults, check_lengths
from microvlm_tasks.chat import Message, chat_segments, render, to_messages
from microvlm_tasks.config import InstructConfig


class InstructTask(TaskDefaults):
    """See the module docstring."""

    name = "instruct"

    def __init__(self, config: InstructConfig) -> None:
        self.config = config

    @property
    def max_new_tokens(self) -> int:
        return self.config.max_new_tokens

    def _messages(self, sample: Sample) -> list[Message]:
        messages = to_messages(sample.conversation, self.config.system_prompt)
        if not any(m["role"] == "assistant" for m in messages):
            raise MicroVLMError(
                f"instruct: sample {sample.id!r} of dataset {sample.dataset or '?'} has no assistant turn; "
                "pair this task with an instruction dataset (llava_instruct, ...)"
            )
        return messages

    def _last_reply(self, messages: list[Message]) -> int:
        return max(i for i, m in enumerate(messages) if m["role"] == "assistant")

    def example(self, sample: Sample, rng: random.Random, tokenizer: Any = None) -> Example:
        return Example(chat_segments(self._messages(sample), tokenizer, self.config.chat_template))

    def eval_prompt(self, sample: Sample, tokenizer: Any = None) -> str:
        messages = self._messages(sample)
        history = messages[: self._last_reply(messages)]
        return render(history, tokenizer, self.config.chat_template, add_generation_prompt=True)

    def references(self, sample: Sample) -> list[str]:
        messages = self._messages(sample)
        return [messages[self._last_reply(messages)]["content"]]

    def score(self, predictions: Sequence[str], samples: Sequence[Sample]) -> dict[str, float | str]:
        from microvlm_tasks.metrics.caption import caption_scores

        check_lengths(self.name, predictions, samples)
        return caption_scores([p.strip() for p in predictions], [self.references(s) for s in samples])

    def per_sample(self, predictions: Sequence[str], samples: Sequence[Sample]) -> list[dict[str, Any]]:
        check_lengths(self.name, predictions, samples)
        return [
            {"id": s.id, "prediction": p.strip(), "references": self.references(s)}
            for p, s in zip(predictions, samples, strict=True)
        ]


def build_instruct(config: InstructConfig) -> InstructTask:
    """Factory of ``instruct``."""
    return InstructTask(config)
