"""``grounding``: a referring expression in, its box out as text; Acc@0.5 IoU at evaluation.

The box is written ``[x1,y1,x2,y2]`` with integers 0..999 normalised to the image width
and height (:mod:`microvlm_tasks.boxes` documents the format and the lenient parser). The
image size comes from ``sample.image.size`` when the dataset gives it; otherwise the task
reads it from the image file's header.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from microvlm.data import Box, Example, Sample
from microvlm.errors import MicroVLMError
from microvlm_tasks.base import TaskDefaults, check_lengths, prompt_and_target
from microvlm_tasks.boxes import format_box, image_size, parse_box, to_pixels
from microvlm_tasks.config import GroundingConfig


class GroundingTask(TaskDefaults):
    """See the module docstring."""

    name = "grounding"

    def __init__(self, config: GroundingConfig) -> None:
        self.config = config

    @property
    def max_new_tokens(self) -> int:
        return self.config.max_new_tokens

    def _expression(self, sample: Sample) -> str:
        if not sample.expression.strip():
            raise MicroVLMError(
                f"grounding: sample {sample.id!r} of dataset {sample.dataset or '?'} has no referring "
                "expression; pair this task with a grounding dataset (refcoco, ...)"
            )
        return sample.expression.strip()

    def _box(self, sample: Sample) -> Box:
        if sample.box is None:
            raise MicroVLMError(
                f"grounding: sample {sample.id!r} of dataset {sample.dataset or '?'} has no box"
            )
        return sample.box

    def example(self, sample: Sample, rng: random.Random, tokenizer: Any = None) -> Example:
        prompt = self.config.prompt.format(expression=self._expression(sample))
        target = format_box(self._box(sample), image_size(sample.image))
        return prompt_and_target(prompt, target, self.config.separator, tokenizer)

    def eval_prompt(self, sample: Sample, tokenizer: Any = None) -> str:
        return self.config.eval_prompt.format(expression=self._expression(sample))

    def references(self, sample: Sample) -> list[str]:
        return [format_box(self._box(sample), image_size(sample.image))]

    def predicted_box(self, prediction: str, sample: Sample) -> Box | None:
        """The box a generation names, in pixels of the sample's image; ``None`` if unparseable."""
        norm = parse_box(prediction)  # the whole text: a box may follow a preamble line
        return None if norm is None else to_pixels(norm, image_size(sample.image))

    def score(self, predictions: Sequence[str], samples: Sequence[Sample]) -> dict[str, float | str]:
        from microvlm_tasks.metrics.grounding import grounding_scores

        check_lengths(self.name, predictions, samples)
        boxes = [self.predicted_box(p, s) for p, s in zip(predictions, samples, strict=True)]
        return dict(
            grounding_scores(boxes, [self._box(s) for s in samples], threshold=self.config.iou_threshold)
        )

    def per_sample(self, predictions: Sequence[str], samples: Sequence[Sample]) -> list[dict[str, Any]]:
        from microvlm_tasks.metrics.grounding import box_iou

        check_lengths(self.name, predictions, samples)
        rows = []
        for p, s in zip(predictions, samples, strict=True):
            box = self.predicted_box(p, s)
            target = self._box(s)
            rows.append(
                {
                    "id": s.id,
                    "expression": s.expression,
                    "prediction": p.strip(),  # all of it: the box may be on any line
                    "references": self.references(s),
                    "box": None if box is None else [box.x1, box.y1, box.x2, box.y2],
                    "target_box": [target.x1, target.y1, target.x2, target.y2],
                    "iou": 0.0 if box is None else box_iou(box, target),
                    "parsed": box is not None,
                }
            )
        return rows


def build_grounding(config: GroundingConfig) -> GroundingTask:
    """Factory of ``grounding``."""
    return GroundingTask(config)
