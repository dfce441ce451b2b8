"""``pretrain`` and ``captioning``: a caption as the target; caption metrics at evaluation.

``pretrain`` (stage 1, alignment) conditions on no prompt at all by default: the image
tokens, then the caption. ``captioning`` puts an instruction first ("Describe this
image."). Both pick one of the sample's captions with the data RNG (COCO has about five
per image) and score with BLEU-1..4, METEOR, ROUGE-L and CIDEr (:mod:`.metrics.caption`);
``results.json`` and the results table show them under the names of the COCO caption
evaluation toolkit (``CIDEr``, ``BLEU-4``, ...).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from microvlm.contracts.data import Metric, TaskSummary, default_summary
from microvlm.data import Example, Sample
from microvlm.errors import MicroVLMError
from microvlm_tasks.base import TaskDefaults, check_lengths, first_line, prompt_and_target
from microvlm_tasks.config import CaptioningConfig, PretrainConfig

#: Metric names of :func:`~microvlm_tasks.metrics.caption.caption_scores` -> as the COCO caption
#: evaluation toolkit (pycocoevalcap) prints them.
CAPTION_NAMES = {
    "cider": "CIDEr",
    "bleu_1": "BLEU-1",
    "bleu_2": "BLEU-2",
    "bleu_3": "BLEU-3",
    "bleu_4": "BLEU-4",
    "meteor": "METEOR",
    "rouge_l": "ROUGE-L",
    "spice": "SPICE",
}


class CaptionTask(TaskDefaults):
    """Shared by ``pretrain`` and ``captioning``; see the module docstring."""

    def __init__(
        self,
        name: str,
        config: Any,
        prompts: tuple[str, ...],
        eval_prompt: str,
        separator: str,
        spice: bool,
    ) -> None:
        self.name = name
        self.config = config
        self._prompts = tuple(p.format() for p in prompts)  # format() turns "{{" into "{"
        self._eval_prompt = eval_prompt.format()
        self._separator = separator
        self._spice = spice

    @property
    def max_new_tokens(self) -> int:
        return self.config.max_new_tokens

    def _captions(self, sample: Sample) -> tuple[str, ...]:
        if not sample.captions:
            raise MicroVLMError(
                f"{self.name}: sample {sample.id!r} of dataset {sample.dataset or '?'} has no captions; "
                f"pair this task with a captioning dataset"
            )
        return sample.captions

    def example(self, sample: Sample, rng: random.Random, tokenizer: Any = None) -> Example:
        prompt = self._prompts[0] if len(self._prompts) == 1 else rng.choice(self._prompts)
        caption = rng.choice(self._captions(sample))
        return prompt_and_target(prompt, caption.strip(), self._separator, tokenizer)

    def eval_prompt(self, sample: Sample, tokenizer: Any = None) -> str:
        return self._eval_prompt

    def references(self, sample: Sample) -> list[str]:
        return list(self._captions(sample))

    def score(self, predictions: Sequence[str], samples: Sequence[Sample]) -> dict[str, float | str]:
        from microvlm_tasks.metrics.caption import caption_scores

        check_lengths(self.name, predictions, samples)
        cleaned = [first_line(p) for p in predictions]
        return caption_scores(cleaned, [self.references(s) for s in samples], spice=self._spice)

    def per_sample(self, predictions: Sequence[str], samples: Sequence[Sample]) -> list[dict[str, Any]]:
        check_lengths(self.name, predictions, samples)
        return [
            {"id": s.id, "prediction": first_line(p), "references": self.references(s)}
            for p, s in zip(predictions, samples, strict=True)
        ]

    def summarize(self, metrics: Mapping[str, Metric]) -> TaskSummary:
        """Every metric, the caption ones renamed as :data:`CAPTION_NAMES` (``cider`` -> ``CIDEr``)."""
        return default_summary({CAPTION_NAMES.get(k, k): v for k, v in metrics.items()})


def build_pretrain(config: PretrainConfig) -> CaptionTask:
    """Factory of ``pretrain``."""
    return CaptionTask("pretrain", config, (config.prompt,), config.prompt, config.separator, config.spice)


def build_captioning(config: CaptioningConfig) -> CaptionTask:
    """Factory of ``captioning``."""
    return CaptionTask(
        "captioning", config, config.prompts, config.eval_prompt, config.separator, config.spice
    )
