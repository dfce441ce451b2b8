"""Quantisers of microvlm-quant: hook implementations only; heavy imports live in the factories."""

from __future__ import annotations
