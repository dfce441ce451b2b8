"""Typed configs of the task plugins: what a recipe's ``[data.task]`` table is structured into.

Light module (attrs only): ``microvlm plugins`` imports it. Prompt templates are Python
format strings; each names the placeholders it may use, and a validator rejects others.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from typing import Any, Literal

import attrs

from microvlm.recipes import validators as v


def _template(*fields: str, required: bool = True) -> Callable[[Any, attrs.Attribute, Any], None]:
    """Validator: a format string using only ``fields`` (each at least once if ``required``)."""

    allowed = ", ".join("{" + f + "}" for f in fields) or "none"

    def check_one(instance: Any, attribute: attrs.Attribute, value: str) -> None:
        try:
            used = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as exc:
            v.fail(instance, attribute, f"must be a valid template ({exc}), got {value!r}")
        unknown = used - set(fields)
        if unknown:
            v.fail(
                instance,
                attribute,
                f"unknown placeholder(s) {sorted(unknown)} in {value!r}; allowed: {allowed}",
            )
        missing = set(fields) - used if required else set()
        if missing:
            needed = ", ".join("{" + m + "}" for m in sorted(missing))
            v.fail(instance, attribute, f"must contain {needed}, got {value!r}")

    def validate(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        for item in value if isinstance(value, tuple) else (value,):
            check_one(instance, attribute, item)

    return validate


_TEXT = _template(required=False)  # a template without placeholders
_QUESTION = _template("question")
_EXPRESSION = _template("expression")
_CHOICES = _template("question", "choices")


@attrs.frozen
class PretrainConfig:
    """``task = "pretrain"``: stage-1 alignment; the caption is the whole target."""

    prompt: str = attrs.field(default="", validator=_TEXT)  # text before the caption; "" = none
    separator: str = " "  # starts the target when there is a prompt (BPE words start with a space)
    max_new_tokens: int = attrs.field(default=40, validator=v.positive)  # generation budget at eval, tokens
    spice: bool = False  # also compute SPICE at evaluation (needs Java + Stanford CoreNLP models)


@attrs.frozen
class CaptioningConfig:
    """``task = "captioning"``: an instruction prompt, one of the image's captions as target."""

    prompts: tuple[str, ...] = attrs.field(
        default=("Describe this image.",), validator=[v.non_empty, _TEXT]
    )  # training prompts; each sample draws one with the data RNG
    eval_prompt: str = attrs.field(default="Describe this image.", validator=_TEXT)  # prompt at evaluation
    separator: str = " "  # starts the target, between the prompt and the caption
    max_new_tokens: int = attrs.field(default=40, validator=v.positive)  # generation budget at eval, tokens
    spice: bool = False  # also compute SPICE at evaluation (needs Java + Stanford CoreNLP models)


@attrs.frozen
class VQAConfig:
    """``task = "vqa"``: question in, short answer out; official VQAv2 accuracy."""

    prompt: str = attrs.field(
        default="Question: {question} Answer:", validator=_QUESTION
    )  # training prompt; {question} is the question text
    # evaluation prompt: the training prompt by default, since a model answers best in the form
    # it was trained on; BLIP-2's zero-shot "Question: {question} Short answer:" also works here
    eval_prompt: str = attrs.field(default="Question: {question} Answer:", validator=_QUESTION)
    separator: str = " "  # starts the target, between the prompt and the answer
    max_new_tokens: int = attrs.field(default=10, validator=v.positive)  # generation budget at eval, tokens
    # training only: up to N questions about one image in one sequence, as LLaVA-1.5 merges
    # VQAv2/GQA; the image is encoded once for all of them and its tokens are not repeated.
    # 1 = one question per sequence. Keep N x (question + answer tokens) within run.max_text_tokens.
    questions_per_sequence: int = attrs.field(default=1, validator=v.positive)


@attrs.frozen
class AOKVQADirectConfig:
    """``task = "aokvqa_da"``: A-OKVQA direct answer; the official DA accuracy (allenai/aokvqa)."""

    prompt: str = attrs.field(default="Question: {question} Answer:", validator=_QUESTION)  # training prompt
    eval_prompt: str = attrs.field(default="Question: {question} Answer:", validator=_QUESTION)  # at eval
    separator: str = " "  # starts the target, between the prompt and the answer
    max_new_tokens: int = attrs.field(default=10, validator=v.positive)  # generation budget at eval, tokens


@attrs.frozen
class AOKVQAChoiceConfig:
    """``task = "aokvqa_mc"``: A-OKVQA multiple choice; the choices in the prompt, one as the answer."""

    # training and evaluation prompt; {choices} is the choices joined with choice_separator
    prompt: str = attrs.field(default="Question: {question} Choices: {choices}. Answer:", validator=_CHOICES)
    choice_separator: str = ", "  # between the choices in {choices}
    separator: str = " "  # starts the target, between the prompt and the chosen answer
    max_new_tokens: int = attrs.field(default=10, validator=v.positive)  # generation budget at eval, tokens


@attrs.frozen
class GroundingConfig:
    """``task = "grounding"``: referring expression in, ``[x1,y1,x2,y2]`` (0..999) out."""

    prompt: str = attrs.field(
        default="Locate: {expression}. Box:", validator=_EXPRESSION
    )  # training prompt; {expression} is the referring expression
    eval_prompt: str = attrs.field(default="Locate: {expression}. Box:", validator=_EXPRESSION)  # at eval
    separator: str = " "  # starts the target, between the prompt and the box text
    iou_threshold: float = attrs.field(
        default=0.5, validator=v.in_range(0, 1, open_lo=True)
    )  # IoU that counts as a hit
    max_new_tokens: int = attrs.field(default=24, validator=v.positive)  # generation budget at eval, tokens


@attrs.frozen
class InstructConfig:
    """``task = "instruct"``: multi-turn chats through the LLM's chat template; loss on replies."""

    chat_template: Literal["auto", "chatml"] = "auto"  # "auto": the tokenizer's template if any, else ChatML
    system_prompt: str = ""  # system message put first when a conversation has none; "" = none added
    max_new_tokens: int = attrs.field(default=256, validator=v.positive)  # generation budget at eval, tokens
