"""The ``microvlm`` command line. Only this package prints; library code logs."""

from microvlm.cli.app import build_cli, main

__all__ = ["build_cli", "main"]
