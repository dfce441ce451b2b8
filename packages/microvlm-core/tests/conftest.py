"""Fixtures for microvlm-core's tests: the offline tiny model and tokenizer of microvlm.testing.fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_llm_dir() -> Path:
    """A tiny Qwen2 model + ChatML tokenizer saved with save_pretrained (read-only, per process)."""
    from microvlm.testing.fixtures import tiny_llm_path

    return tiny_llm_path()


@pytest.fixture(scope="session")
def tiny_tokenizer_dir() -> Path:
    """The tiny tokenizer alone, in its own directory (read-only, per process)."""
    from microvlm.testing.fixtures import tiny_tokenizer_path

    return tiny_tokenizer_path()


@pytest.fixture
def hub_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any Hugging Face Hub request fail at once instead of retrying over a dead network."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
