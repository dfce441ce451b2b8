"""Helpers for tests, ours and third parties': tiny models and tokenizers built locally
(:mod:`.fixtures`, re-exported here), toy components (:mod:`.toys`), a fake distribution
(:mod:`.fake_dist`) and the conformance kit for plugin components (:mod:`.conformance`)."""

from __future__ import annotations

from microvlm.testing.fixtures import (
    TINY_COCO_DATA_TOML,
    TINY_MODEL_TOML,
    TINY_QFORMER_TOML,
    make_tiny_llm,
    make_tiny_tokenizer,
    png_declaring,
    tiny_corpus,
    tiny_llm_path,
    tiny_tokenizer_path,
)

__all__ = [
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
