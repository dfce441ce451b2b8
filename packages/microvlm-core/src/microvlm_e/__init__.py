"""The seed's import paths (``microvlm_e.*``), kept only to say where things went.

MicroVLM-E's code is now the ``microvlm`` package and its plugin packages. Two of the seed's
paths still work and warn (:class:`DeprecationWarning`):

- ``from microvlm_e.models import MicroVLM``  -> ``from microvlm import MicroVLM``
- ``from microvlm_e.processors import ImageEvalProcessor`` -> ``from microvlm import ImageEvalProcessor``

Every other ``microvlm_e.*`` module (``visualization``, ``common.registry``, ``runners``, ...)
raises :class:`ImportError` naming what replaces it (:mod:`microvlm_e._moved`).
"""

from __future__ import annotations

from microvlm_e._moved import install

install()
