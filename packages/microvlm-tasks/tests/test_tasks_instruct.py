"""instruct: chat-template rendering, assistant-only targets, ChatML fallback, evaluation prompt."""

from __future__ import annotations

import random

import pytest

from microvlm.data import ImageRef, Sample, Turn
from microvlm.errors import MicroVLMError
from microvlm_tasks.chat import chatml
from microvlm_tasks.config import InstructConfig
from microvlm_tasks.instruct import build_instruct

# Qwen2.5's template without the tool-calling branches: a default system message when the
# chat has none, then ChatML turns.
QWEN_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) or message.role == 'assistant' %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
CONVERSATION = (
    Turn("user", "What is in the image?"),
    Turn("assistant", "A red square."),
    Turn("user", "Where is it?"),
    Turn("assistant", "In the top left corner."),
)
IMAGE = ImageRef(path="img.jpg", size=(64, 64))


def _tokenizer(chat_template: str | None = QWEN_TEMPLATE):
    """A tiny byte-level BPE PreTrainedTokenizerFast with ChatML special tokens, trained here."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator([t.text for t in CONVERSATION] * 4, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": specials[1:]})
    if chat_template is not None:
        tok.chat_template = chat_template
    return tok


@pytest.fixture(scope="module")
def qwen_tokenizer():
    return _tokenizer()


def _sample(conversation=CONVERSATION) -> Sample:
    return Sample(id="i1", image=IMAGE, conversation=conversation)


def _messages(conversation=CONVERSATION) -> list[dict[str, str]]:
    return [{"role": t.role, "content": t.text} for t in conversation]


def test_segments_concatenate_to_the_rendered_chat(qwen_tokenizer) -> None:
    example = build_instruct(InstructConfig()).example(_sample(), random.Random(0), qwen_tokenizer)
    full = qwen_tokenizer.apply_chat_template(_messages(), tokenize=False)
    assert "".join(s.text for s in example.segments) == full
    assert [s.text for s in example.segments if s.target] == [
        "A red square.<|im_end|>",
        "In the top left corner.<|im_end|>",
    ]
    assert example.segments[0].text.startswith("<|im_start|>system\nYou are Qwen")  # the template's default
    assert example.prompt.endswith(
        "<|im_start|>user\nWhat is in the image?<|im_end|>\n<|im_start|>assistant\n"
    )
    no_loss = "".join(s.text for s in example.segments if not s.target)
    assert "Where is it?" in no_loss and "red square" not in no_loss


def test_special_tokens_stay_single_tokens(qwen_tokenizer) -> None:
    ids = qwen_tokenizer("<|im_start|>assistant\nA red square.<|im_end|>")["input_ids"]
    assert ids[0] == qwen_tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert ids[-1] == qwen_tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_chatml_fallback_without_a_template() -> None:
    task = build_instruct(InstructConfig())
    expected = chatml(_messages(), add_generation_prompt=False)
    for tokenizer in (None, _tokenizer(chat_template=None)):
        example = task.example(_sample(), random.Random(0), tokenizer)
        assert "".join(s.text for s in example.segments) == expected
        assert [(s.text, s.target) for s in example.segments] == [
            ("<|im_start|>user\nWhat is in the image?<|im_end|>\n<|im_start|>assistant\n", False),
            ("A red square.<|im_end|>", True),
            ("\n<|im_start|>user\nWhere is it?<|im_end|>\n<|im_start|>assistant\n", False),
            ("In the top left corner.<|im_end|>", True),
            ("\n", False),
        ]


def test_chatml_mode_ignores_the_tokenizer_template(qwen_tokenizer) -> None:
    example = build_instruct(InstructConfig(chat_template="chatml")).example(
        _sample(), random.Random(0), qwen_tokenizer
    )
    assert "You are Qwen" not in "".join(s.text for s in example.segments)


def test_system_prompt_is_added_when_missing(qwen_tokenizer) -> None:
    task = build_instruct(InstructConfig(system_prompt="You look at images."))
    example = task.example(_sample(), random.Random(0), qwen_tokenizer)
    assert example.segments[0].text.startswith("<|im_start|>system\nYou look at images.<|im_end|>\n")
    own = (Turn("system", "Be brief."), *CONVERSATION)
    text = "".join(s.text for s in task.example(_sample(own), random.Random(0)).segments)
    assert "Be brief." in text and "You look at images." not in text


def test_eval_prompt_and_references(qwen_tokenizer) -> None:
    task = build_instruct(InstructConfig())
    prompt = task.eval_prompt(_sample(), qwen_tokenizer)
    history = _messages()[:3]
    assert prompt == qwen_tokenizer.apply_chat_template(history, tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("Where is it?<|im_end|>\n<|im_start|>assistant\n")
    assert task.references(_sample()) == ["In the top left corner."]
    assert task.eval_prompt(_sample()) == chatml(history, add_generation_prompt=True)


def test_template_that_is_not_prefix_consistent_fails_clearly() -> None:
    # Writes the number of messages first: a shorter chat is not a prefix of the longer one.
    tokenizer = _tokenizer("{{ messages|length }}" + QWEN_TEMPLATE)
    with pytest.raises(MicroVLMError, match="prefix-consistent"):
        build_instruct(InstructConfig()).example(_sample(), random.Random(0), tokenizer)


def test_conversation_without_assistant_fails_clearly() -> None:
    with pytest.raises(MicroVLMError, match="no assistant turn"):
        build_instruct(InstructConfig()).example(_sample((Turn("user", "Hi"),)), random.Random(0))


def test_instruct_score_without_java(monkeypatch: pytest.MonkeyPatch) -> None:
    from microvlm_tasks.metrics import caption as caption_module

    monkeypatch.setattr(caption_module, "find_java", lambda: None)
    task = build_instruct(InstructConfig())
    scores = task.score(["In the top left corner."], [_sample()])
    assert scores["bleu_4"] == pytest.approx(1.0, abs=1e-6)
    assert scores["rouge_l"] == pytest.approx(1.0)
