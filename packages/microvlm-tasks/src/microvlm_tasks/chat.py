"""Render conversations with a chat template and split them into loss / no-loss segments.

The tokenizer's own template (``tokenizer.apply_chat_template``, e.g. Qwen2.5's ChatML)
is used when it has one; otherwise ChatML written out here::

    <|im_start|>system\\n{text}<|im_end|>\\n      (only if there is a system message)
    <|im_start|>user\\n{text}<|im_end|>\\n
    <|im_start|>assistant\\n{text}<|im_end|>\\n

Splitting: for the i-th message, if it is an assistant reply, the template is rendered for
the messages before it with the generation prompt (``P``) and for the messages up to and
including it (``F``); the reply as the template writes it is ``F[len(P):]``, and with the
trailing whitespace cut off (which stays a no-loss piece) it is the target: the reply text
and its end-of-turn token. The template must be *prefix-consistent* (every rendering of a
shorter chat is a prefix of the full one), as ChatML-style templates are; otherwise
:class:`~microvlm.errors.MicroVLMError` says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from microvlm.data import Segment, Turn
from microvlm.errors import MicroVLMError

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
Message = dict[str, str]


def to_messages(turns: Sequence[Turn], system_prompt: str = "") -> list[Message]:
    """Turns -> ``[{"role", "content"}]``, with ``system_prompt`` first if there is no system turn."""
    messages = [{"role": t.role, "content": t.text} for t in turns]
    if system_prompt and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def chatml(messages: Sequence[Message], add_generation_prompt: bool) -> str:
    """ChatML rendering (the fallback template)."""
    text = "".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in messages)
    return text + (f"{IM_START}assistant\n" if add_generation_prompt else "")


def uses_tokenizer_template(tokenizer: Any, mode: str) -> bool:
    """Whether ``render`` goes through the tokenizer's own chat template."""
    return mode == "auto" and tokenizer is not None and bool(getattr(tokenizer, "chat_template", None))


def render(messages: Sequence[Message], tokenizer: Any, mode: str, add_generation_prompt: bool) -> str:
    """The chat as text: the tokenizer's template (``mode="auto"`` and it has one) or ChatML."""
    if not uses_tokenizer_template(tokenizer, mode):
        return chatml(messages, add_generation_prompt)
    text = tokenizer.apply_chat_template(
        list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
    )
    if not isinstance(text, str):  # pragma: no cover - a tokenizer that ignores tokenize=False
        raise MicroVLMError(f"the tokenizer's apply_chat_template returned {type(text).__name__}, not text")
    return text


def chat_segments(messages: Sequence[Message], tokenizer: Any, mode: str) -> tuple[Segment, ...]:
    """Segments whose concatenation is the rendered chat; assistant replies are the targets."""
    full = render(messages, tokenizer, mode, add_generation_prompt=False)
    segments: list[Segment] = []
    pos = 0  # characters of `full` already placed in segments
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(messages[:i], tokenizer, mode, add_generation_prompt=True)
        upto = render(messages[: i + 1], tokenizer, mode, add_generation_prompt=False)
        if not (upto.startswith(before) and full.startswith(upto) and len(before) >= pos):
            raise MicroVLMError(
                "the chat template is not prefix-consistent (rendering a shorter chat does not give a "
                "prefix of the full chat), so assistant replies cannot be told apart; set "
                'chat_template = "chatml" in the task config'
            )
        reply = upto[len(before) :].rstrip()  # reply text + end-of-turn token; the newline after is no loss
        if before[pos:]:
            segments.append(Segment(before[pos:]))
        segments.append(Segment(reply, target=True))
        pos = len(before) + len(reply)
    if full[pos:]:
        segments.append(Segment(full[pos:]))
    return tuple(segments)
