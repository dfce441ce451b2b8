"""Tasks and metrics of microvlm-tasks: hook implementations only; heavy imports live in the factories."""

from __future__ import annotations
