"""Metrics of the tasks: VQA accuracy (official VQA rules, 2021), A-OKVQA DA/MC accuracy (official),
caption metrics (pycocoevalcap), grounding IoU. Pure Python; pycocoevalcap is imported only when
caption metrics run."""

from microvlm_tasks.metrics.aokvqa import direct_answer_accuracy, direct_answer_scores, multiple_choice_scores
from microvlm_tasks.metrics.caption import SpiceUnavailableError, caption_scores, find_java, simple_tokenize
from microvlm_tasks.metrics.grounding import box_iou, grounding_scores
from microvlm_tasks.metrics.vqa import (
    compared_answers,
    normalize_answer,
    process_digit_article,
    process_punctuation,
    vqa_accuracy,
    vqa_scores,
)

__all__ = [
    "SpiceUnavailableError",
    "box_iou",
    "caption_scores",
    "compared_answers",
    "direct_answer_accuracy",
    "direct_answer_scores",
    "find_java",
    "grounding_scores",
    "multiple_choice_scores",
    "normalize_answer",
    "process_digit_article",
    "process_punctuation",
    "simple_tokenize",
    "vqa_accuracy",
    "vqa_scores",
]
