"""``microvlm.plugins.known`` against what the installed packages register.

Core keeps the table of which distribution provides which built-in name so that an unknown
name can be answered with an install hint for a package that is *not* installed; it cannot
import those packages to read their names. This test, which runs with every package
installed, keeps the table honest both ways: nothing is advertised that nobody registers
(``int8`` and ``bitnet158`` were once advertised as quantizers), and nothing our packages
register is missing from it.
"""

from __future__ import annotations

import pytest

from microvlm import load_plugins
from microvlm.plugins.known import DISTRIBUTIONS, KNOWN_BUILTINS

PLUGINS = load_plugins()


@pytest.mark.parametrize(("kind", "name"), sorted(KNOWN_BUILTINS))
def test_every_advertised_name_is_registered_by_the_package_it_names(kind: str, name: str) -> None:
    advertised = KNOWN_BUILTINS[(kind, name)]
    registered = {c.name: c.distribution for c in PLUGINS.components(kind)}
    assert name in registered, (
        f"known.py advertises {kind} {name!r} from {advertised}, but nobody registers it"
    )
    assert registered[name] == advertised, f"{kind} {name!r} comes from {registered[name]}, not {advertised}"


def test_every_name_our_packages_register_is_advertised() -> None:
    ours = {(c.kind, c.name): c.distribution for c in PLUGINS.components() if c.distribution in DISTRIBUTIONS}
    assert ours, "no component of our distributions is registered: are the packages installed?"
    unlisted = sorted(
        f"{kind} {name!r} ({dist})"
        for (kind, name), dist in ours.items()
        if (kind, name) not in KNOWN_BUILTINS
    )
    assert not unlisted, f"registered but missing from microvlm/plugins/known.py: {', '.join(unlisted)}"


def test_every_distribution_in_the_table_is_one_of_ours() -> None:
    assert set(KNOWN_BUILTINS.values()) <= set(DISTRIBUTIONS)
