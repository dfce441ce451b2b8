"""Component kind -> its contract, and the check that names what a built component lacks."""

from __future__ import annotations

import inspect
from types import MappingProxyType

from microvlm.contracts.data import DatasetBuilder, DataSource, Task
from microvlm.contracts.logger import Logger
from microvlm.contracts.model import Bridge, Encoder, LanguageModel
from microvlm.contracts.quant import Exporter, QATScheme, Quantizer

#: kind -> the protocol every component of that kind satisfies
PROTOCOLS: MappingProxyType[str, type] = MappingProxyType(
    {
        "encoder": Encoder,
        "bridge": Bridge,
        "llm": LanguageModel,
        "dataset": DatasetBuilder,
        "task": Task,
        "source": DataSource,
        "quantizer": Quantizer,
        "exporter": Exporter,
        "qat": QATScheme,
        "logger": Logger,
    }
)

_NOT_MEMBERS = frozenset({"__init__", "__class_getitem__", "__init_subclass__", "__subclasshook__"})
_PROTOCOL_INTERNALS = frozenset({"__protocol_attrs__", "__non_callable_proto_members__"})


def protocol_members(protocol: type) -> tuple[str, ...]:
    """The names a protocol requires (annotated attributes and methods), sorted."""
    names: set[str] = set()
    for klass in protocol.__mro__:
        if klass is object or not getattr(klass, "_is_protocol", False) or klass.__name__ == "Protocol":
            continue
        names |= set(getattr(klass, "__annotations__", {}))
        for name, value in vars(klass).items():
            if name.startswith("_abc") or name in _NOT_MEMBERS or name.startswith("_is_"):
                continue
            public = not name.startswith("_") or (name.startswith("__") and name.endswith("__"))
            if public and (callable(value) or isinstance(value, property)):
                names.add(name)
    return tuple(sorted(names - _PROTOCOL_INTERNALS))


def missing_members(component: object, kind: str) -> list[str]:
    """The members of ``kind``'s protocol that ``component`` lacks (``[]``: it conforms).

    Attribute access runs each property, so a property that raises counts as missing."""
    protocol = PROTOCOLS[kind]
    missing = []
    for name in protocol_members(protocol):
        if name == "__call__" and callable(component):
            continue
        try:
            inspect.getattr_static(component, name)
        except AttributeError:
            if not _dynamic(component, name):
                missing.append(name)
    return missing


def _dynamic(component: object, name: str) -> bool:
    """Attributes set in ``__init__`` (instance dicts, ``nn.Module`` buffers and submodules)."""
    try:
        getattr(component, name)
    except AttributeError:
        return False
    except Exception:  # a property that fails: it is there, the failure surfaces at use
        return True
    return True


__all__ = ["PROTOCOLS", "missing_members", "protocol_members"]
