"""TOML recipes: the typed configuration (:mod:`.config`), structuring with errors that name the
field (:mod:`.structure`), table reading (:mod:`.tables`) and recipe loading (:mod:`.load`)."""
