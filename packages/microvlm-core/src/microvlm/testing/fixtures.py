"""Offline test fixtures: a tiny byte-level BPE tokenizer and a tiny Qwen2 model, built locally.

Every package's tests use these instead of downloading anything::

    from microvlm.testing.fixtures import tiny_llm_path
    config = HFCausalLMConfig(model=str(tiny_llm_path()))  # same code path as a hub id

:func:`make_tiny_tokenizer` and :func:`make_tiny_llm` write into a directory you give;
:func:`tiny_tokenizer_path` and :func:`tiny_llm_path` build once per process into a temporary
directory (removed at exit) and return the cached path. Treat those directories as read-only.
Heavy imports (torch, transformers, tokenizers) happen inside the functions.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterable
from pathlib import Path

from microvlm.models.llm.tokenizer import (  # noqa: F401 - re-exported for tests
    CHAT_TEMPLATE,
    EOS_TOKEN,
    IM_END,
    IM_START,
    QWEN2_PRETOKENIZE_REGEX,
    SPECIAL_TOKENS,
    train_chatml_tokenizer,
)

_COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "black", "white", "gray")
_SHAPES = ("circle", "square", "triangle", "rectangle", "star", "ellipse", "shape", "shapes")
_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_PHRASES = (
    "a photo of",
    "an image of",
    "there is",
    "there are",
    "in the image",
    "on the left",
    "on the right",
    "at the top",
    "at the bottom",
    "in the middle",
    "next to",
    "above",
    "below",
    "how many",
    "what color is the",
    "what colour is the",
    "what shape is",
    "is there a",
    "where is the",
    "which side",
    "left",
    "right",
    "top",
    "bottom",
    "center",
    "yes",
    "no",
    "Describe the image.",
    "Answer the question.",
    "Question:",
    "Answer:",
    "Short answer:",
    "Give the bounding box of",
    "the",
    "and",
    "of",
    "with",
    "small",
    "large",
    "big",
    "tiny",
    "system",
    "user",
    "assistant",
    "You are a helpful assistant.",
)


def tiny_corpus() -> list[str]:
    """The fixed training text of the tiny tokenizer: shapes, colours, questions, digits, boxes."""
    lines = list(_PHRASES)
    for colour in _COLOURS:
        for shape in _SHAPES:
            lines.append(f"a {colour} {shape}")
            lines.append(f"What color is the {shape}? {colour}")
            lines.append(f"Is there a {colour} {shape} on the left? yes")
            lines.append(f"Is there a {colour} {shape} on the right? no")
    for i, word in enumerate(_NUMBERS):
        lines.append(f"How many shapes are there? {i} ({word})")
    lines += [f"[{i / 10:.2f}, {(9 - i) / 10:.2f}, {(i + 1) / 10:.2f}, 0.95]" for i in range(10)]
    lines.append(" ".join(str(d) for d in range(10)) + " 0123456789 , . ? ! : ; ( ) [ ] ' \"")
    return lines


def make_tiny_tokenizer(
    directory: str | Path, *, vocab_size: int = 512, corpus: Iterable[str] | None = None
) -> Path:
    """Train the tiny test tokenizer (see :func:`microvlm.models.llm.tokenizer.train_chatml_tokenizer`)
    on ``corpus`` (default :func:`tiny_corpus`) and save it to ``directory``."""
    texts = tiny_corpus() if corpus is None else corpus
    return train_chatml_tokenizer(texts, directory, vocab_size=vocab_size)


def make_tiny_llm(
    directory: str | Path,
    *,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate_size: int = 128,
    tie_word_embeddings: bool = True,
    seed: int = 0,
) -> Path:
    """Save a tiny random ``Qwen2ForCausalLM`` (safetensors) and its tokenizer to ``directory``.

    The vocabulary is the tokenizer's (trained with :func:`make_tiny_tokenizer`); eos/pad
    ids and the generation config's eos (``<|endoftext|>``, ``<|im_end|>``) follow Qwen2.5.
    Weights depend only on ``seed``. Returns ``directory``.
    """
    import torch
    from transformers import AutoTokenizer, GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    directory = Path(directory)
    make_tiny_tokenizer(directory)
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    eos = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=512,
        tie_word_embeddings=tie_word_embeddings,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = Qwen2ForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)  # leave the caller's RNG untouched
    model.generation_config = GenerationConfig(bos_token_id=eos, eos_token_id=[eos, im_end], pad_token_id=eos)
    model.save_pretrained(str(directory), safe_serialization=True)
    return directory


# The smallest real model a recipe can build: a 1-block random DeiT (timm) at 32 px, a 1-layer
# Q-Former with 4 queries, and the LLM directory given as ``{llm}`` (usually tiny_llm_path()).
# Integration tests that start real training processes put this between their [run] and
# [[data]] tables: ``(RUN + TINY_MODEL_TOML + DATA).format(llm=tiny_llm_path(), ...)``.
TINY_QFORMER_TOML = """
[model.bridge]
name = "qformer"
num_queries = 4
num_layers = 1
hidden_size = 32
num_heads = 4
"""
TINY_MODEL_TOML = (
    """
[model.encoder]
name = "timm"
model = "deit_tiny_patch16_224"
pretrained = "none"
image_size = 32
patch_size = 8
embed_dim = 32
depth = 1
num_heads = 2
"""
    + TINY_QFORMER_TOML
    + """
[model.llm]
name = "hf_causal_lm"
model = "{llm}"
"""
)

# Captions of the shapes set's COCO folder (``{coco}``), logged to metrics.jsonl: the data of
# the integration tests that train real processes (after TINY_MODEL_TOML).
TINY_COCO_DATA_TOML = """
[[data]]
dataset = "coco_caption"
root = "{coco}"
split = "train"
task = "captioning"

[[loggers]]
name = "jsonl"
"""


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width x height`` RGB pixels but holds no pixel data: how a
    decompression bomb looks to ``PIL.Image.open`` (which checks the size before decoding)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


@functools.cache
def _cache_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="microvlm-testing-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


@functools.cache
def tiny_tokenizer_path() -> Path:
    """A tokenizer from :func:`make_tiny_tokenizer`, built once per process (read-only)."""
    return make_tiny_tokenizer(_cache_root() / "tokenizer")


@functools.cache
def tiny_llm_path() -> Path:
    """A model directory from :func:`make_tiny_llm` (defaults), built once per process (read-only)."""
    return make_tiny_llm(_cache_root() / "tiny-qwen2")


__all__ = [
    "CHAT_TEMPLATE",
    "EOS_TOKEN",
    "IM_END",
    "IM_START",
    "SPECIAL_TOKENS",
    "TINY_COCO_DATA_TOML",
    "TINY_MODEL_TOML",
    "TINY_QFORMER_TOML",
    "make_tiny_llm",
    "make_tiny_tokenizer",
    "png_declaring",
    "tiny_corpus",
    "tiny_llm_path",
    "tiny_tokenizer_path",
]
