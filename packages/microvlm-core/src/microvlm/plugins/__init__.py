"""Plugin discovery (:mod:`.manager`), core's own registrations (:mod:`.core_components`) and
the install hints for our packages' names (:mod:`.known`).

The public names are re-exported here: ``from microvlm.plugins import load_plugins, Register``.
"""

from __future__ import annotations

from microvlm.plugins.manager import Component, Plugins, Register, load_plugins, make_plugin_manager

__all__ = ["Component", "Plugins", "Register", "load_plugins", "make_plugin_manager"]
