"""Encoder factories as light callables: building one imports torch and timm, creating one does not."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from microvlm_encoders.config import EncoderConfig, TimmEncoderConfig

if TYPE_CHECKING:
    from microvlm_encoders.timm_encoder import TimmEncoder


@attrs.frozen
class TimmEncoderFactory:
    """``factory(config) -> TimmEncoder`` for one timm architecture, or for ``config.model``."""

    architecture: str | None = None  # fixed timm model name; None: take it from config.model

    def __call__(self, config: EncoderConfig) -> TimmEncoder:
        from microvlm_encoders.timm_encoder import build_timm_encoder

        if self.architecture is not None:
            return build_timm_encoder(self.architecture, config)
        if not isinstance(config, TimmEncoderConfig):
            raise TypeError(f"the 'timm' encoder needs a TimmEncoderConfig, got {type(config).__name__}")
        return build_timm_encoder(config.model, config)


__all__ = ["TimmEncoderFactory"]
