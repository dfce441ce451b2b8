"""The bottom layer of core: what a plugin must provide (hook specifications and component
protocols). It imports nothing from the rest of microvlm but :mod:`microvlm.errors`."""
