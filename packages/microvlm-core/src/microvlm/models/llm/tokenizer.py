"""Training a small tokenizer for a language model built from scratch (the offline demo, tests).

The tokenizer follows Qwen2.5's pipeline (NFC, Qwen2's pre-tokenizer split, byte-level BPE)
with ChatML special tokens, so it drops into the same code paths as Qwen's own tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

EOS_TOKEN = "<|endoftext|>"  # eos and pad, as in Qwen2.5
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (EOS_TOKEN, IM_START, IM_END)
#: Qwen2's pre-tokenizer split: contractions, letter runs, single digits, punctuation, spaces.
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"""
    r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

#: Qwen2-style ChatML template (a default system turn, then one block per message).
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message['role'] == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def train_chatml_tokenizer(corpus: Iterable[str], directory: str | Path, *, vocab_size: int = 1024) -> Path:
    """Train a byte-level BPE tokenizer (Qwen2's pipeline) on ``corpus``; save it to ``directory``.

    It is a ``PreTrainedTokenizerFast`` with ChatML special tokens (``<|im_start|>``,
    ``<|im_end|>``; ``<|endoftext|>`` is eos and pad) and a Qwen-style chat template. Any
    text encodes (byte fallback through the 256-symbol byte alphabet). Deterministic.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    # The pipeline of Qwen2's tokenizer (transformers' Qwen2Tokenizer rebuilds exactly this
    # around the saved vocab and merges when the directory's config says model_type qwen2).
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        additional_special_tokens=[IM_START, IM_END],
        model_max_length=4096,
    )
    fast.chat_template = CHAT_TEMPLATE
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(directory))
    return directory
