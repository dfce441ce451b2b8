"""Helpers for tests, ours and third parties': tiny models and tokenizers built locally
(:mod:`.fixtures`), toy components (:mod:`.toys`), a fake distribution (:mod:`.fake_dist`) and
the conformance kit for plugin components (:mod:`.conformance`: ``microvlm.testing.check_encoder``
and the other ``check_*`` are re-exported here, imported on first use)."""

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
    "ConformanceError",
    "check_bridge",
    "check_component",
    "check_dataset",
    "check_encoder",
    "check_exporter",
    "check_llm",
    "check_logger",
    "check_qat",
    "check_quantizer",
    "check_source",
    "check_task",
    "make_tiny_llm",
    "make_tiny_tokenizer",
    "png_declaring",
    "tiny_corpus",
    "tiny_llm_path",
    "tiny_tokenizer_path",
]

_KIT = frozenset(n for n in __all__ if n.startswith("check_") or n == "ConformanceError")


def __getattr__(name: str) -> object:
    """The conformance kit, imported when first asked for (it imports the plugin manager)."""
    if name in _KIT:
        from microvlm.testing import conformance

        return getattr(conformance, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
