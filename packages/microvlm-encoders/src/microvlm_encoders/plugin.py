"""Image encoders of microvlm-encoders: hook implementations only; heavy imports live in the factories."""

from __future__ import annotations
