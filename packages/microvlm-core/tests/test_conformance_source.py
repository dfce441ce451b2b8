"""check_source (the conformance kit's check of a dataset source) passes a source that keeps
the DataSource contract and names what is wrong with one that does not."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from microvlm.contracts.data import DataSource
from microvlm.contracts.kinds import PROTOCOLS, missing_members
from microvlm.testing.conformance import ConformanceError, check_source


@attrs.frozen
class Settings:
    pass


@attrs.frozen
class Source:
    name: str = "pets"
    folder: str = "pets"
    description: str = "pet photos"
    licence: str = "CC0"
    login: str = ""


def _factory(**changes: Any) -> Any:
    return lambda config, **_: attrs.evolve(Source(), **changes)


def test_a_conforming_source_passes() -> None:
    assert PROTOCOLS["source"] is DataSource
    assert check_source(_factory(), Settings(), name="pets") == Source()
    assert check_source(_factory(folder="pets/2024", login="huggingface"), Settings()).login == "huggingface"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"folder": "../pets"}, "inside the data root"),
        ({"folder": "/data/pets"}, "inside the data root"),
        ({"folder": ""}, "folder must be a non-empty string"),
        ({"licence": " "}, "licence must be a non-empty string"),
        ({"login": "password"}, "login 'password' is not one of"),
        ({"name": "cats"}, "registered as 'pets'"),
    ],
)
def test_a_broken_source_is_named_with_what_is_wrong(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConformanceError, match="source 'pets'") as info:
        check_source(_factory(**changes), Settings(), name="pets")
    assert message in str(info.value)


def test_a_source_missing_a_member_is_refused() -> None:
    @attrs.frozen
    class NoLicence:
        name: str = "pets"
        folder: str = "pets"
        description: str = "pet photos"
        login: str = ""

    assert missing_members(NoLicence(), "source") == ["licence"]
    with pytest.raises(ConformanceError, match="lacks licence"):
        check_source(lambda config: NoLicence(), Settings(), name="pets")
