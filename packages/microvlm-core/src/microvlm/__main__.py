"""``python -m microvlm`` is the ``microvlm`` command."""

from microvlm.cli import main

main()
