import importlib.metadata as md

import microvlm


def test_version_matches_installed_distribution():
    assert microvlm.__version__ == md.version("microvlm-core")


def test_public_api_resolves():
    for name in microvlm.__all__:
        assert getattr(microvlm, name) is not None, name


def test_core_entry_point_is_registered():
    eps = {ep.name: ep for ep in md.entry_points(group="microvlm")}
    assert eps["core"].value == "microvlm.core_components"
    assert eps["core"].dist.name == "microvlm-core"
