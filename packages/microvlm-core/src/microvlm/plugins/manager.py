"""Plugin discovery and the registry of components the plugins register.

There is no module-level registry: :func:`load_plugins` builds a :class:`Plugins` object
from a fresh plugin manager each time it is called. Every plugin, core's built-ins
included, is found through the ``microvlm`` entry-point group, so a third-party package is a
peer of ours::

    [project.entry-points.microvlm]
    my_plugin = "my_package.plugin"

``MICROVLM_LOAD_PLUGINS`` (comma-separated distribution names) restricts loading to those
distributions; microvlm-core's built-ins always load. An empty value loads core only.

Our own distributions load first (core, then the others), then everybody else's by name. The
entry-point names of ours (:data:`OUR_ENTRY_POINTS`) are reserved: another distribution that
uses one is reported as broken and never imported. A plugin that raises anything at import or
in a hook, ``SystemExit`` included (but not Ctrl-C), is reported as broken; the rest load.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import MappingProxyType
from typing import Any

import attrs
import pluggy

from microvlm.contracts import hookspecs
from microvlm.contracts.hookspecs import Register
from microvlm.contracts.kinds import PROTOCOLS, missing_members
from microvlm.errors import DuplicateComponentError, PluginError, UnknownComponentError, did_you_mean
from microvlm.plugins.known import KNOWN_BUILTINS

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "microvlm"
ALLOW_ENV = "MICROVLM_LOAD_PLUGINS"
CORE_DISTRIBUTION = "microvlm-core"
LOCAL = "<local>"  # distribution label for plugins registered directly (tests, scripts)

#: Entry-point name -> the distribution of ours that owns it; no other distribution may use it.
OUR_ENTRY_POINTS = MappingProxyType(
    {
        "core": CORE_DISTRIBUTION,
        "encoders": "microvlm-encoders",
        "quant": "microvlm-quant",
        "datasets": "microvlm-datasets",
        "tasks": "microvlm-tasks",
    }
)


@attrs.frozen
class Component:
    """One registered component: what a recipe's ``name = "..."`` resolves to."""

    kind: str  # "encoder", "bridge", "llm", "dataset", "task", "quantizer", "exporter", "logger"
    name: str  # the name recipes use
    factory: Callable[..., Any]  # factory(config, **context) -> the component
    config_cls: type  # frozen attrs class the recipe table is structured into
    plugin: str  # name of the plugin (entry point) that registered it
    distribution: str  # distribution that provides the plugin, or "<local>"
    version: str  # that distribution's version ("" for local plugins)
    description: str = ""  # one line for `microvlm plugins`

    def build(self, config: Any = None, **context: Any) -> Any:
        """Build the component; ``config`` defaults to the config class's defaults.

        The built object is checked against its kind's contract
        (:data:`microvlm.contracts.kinds.PROTOCOLS`): a missing member raises
        :class:`~microvlm.errors.PluginError` naming it, here rather than deep inside a run.
        """
        built = self.factory(self.config_cls() if config is None else config, **context)
        check_contract(self, built)
        return built


def check_contract(component: Component, built: Any) -> None:
    """Raise :class:`~microvlm.errors.PluginError` if ``built`` lacks a member of its kind's protocol."""
    missing = missing_members(built, component.kind)
    if missing:
        protocol = PROTOCOLS[component.kind]
        raise PluginError(
            f"{component.kind} '{component.name}' of plugin '{component.plugin}' ({component.distribution}) "
            f"built a {type(built).__name__} that lacks {', '.join(missing)}; every {component.kind} "
            f"provides what {protocol.__module__}.{protocol.__qualname__} lists "
            f"(check it in tests with microvlm.testing.conformance)"
        )


@attrs.frozen
class BrokenPlugin:
    """A plugin that failed to import or whose registration hook raised."""

    plugin: str
    distribution: str
    version: str
    error: str  # "ExceptionType: message"


@attrs.frozen
class RefusedCommand:
    """A command a plugin added under a name that was taken; the earlier command was kept."""

    command: str  # the command name, as in ``microvlm <command>``
    plugin: str
    distribution: str
    version: str
    owner: str  # who keeps the name: "microvlm-core (built-in)" or "plugin 'x' (dist)"


def normalize_dist(name: str) -> str:
    """PEP 503 normalisation, so ``MicroVLM_Encoders`` matches ``microvlm-encoders``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def allowed_distributions(env: str | None = None) -> frozenset[str] | None:
    """Parse ``MICROVLM_LOAD_PLUGINS``; ``None`` means every installed plugin loads."""
    value = os.environ.get(ALLOW_ENV) if env is None else env
    if value is None:
        return None
    return frozenset(normalize_dist(v.strip()) for v in value.split(",") if v.strip())


class Plugins:
    """The plugin manager plus every component its plugins registered.

    Build one with :func:`load_plugins`. Lookups raise clear errors: an unknown name lists the
    names that exist (and the package to install for a known built-in), a name registered
    twice names both distributions.
    """

    def __init__(
        self,
        pm: pluggy.PluginManager,
        origins: dict[str, tuple[str, str]],
        broken: Sequence[BrokenPlugin] = (),
    ) -> None:
        self.pm = pm
        self._origins = dict(origins)  # plugin name -> (distribution, version)
        self.broken: list[BrokenPlugin] = list(broken)
        self.refused_commands: list[RefusedCommand] = []  # filled by the CLI (cli/app.py)
        self._components: dict[str, dict[str, Component]] = {k: {} for k in hookspecs.COMPONENT_HOOKS}
        self._duplicates: dict[tuple[str, str], list[Component]] = {}
        self._collect()

    # -- collection --------------------------------------------------------------------

    def origin(self, plugin_name: str) -> tuple[str, str]:
        """``(distribution, version)`` of a plugin; ``("<local>", "")`` if registered directly."""
        return self._origins.get(plugin_name, (LOCAL, ""))

    def _collect(self) -> None:
        failed: set[str] = set()
        for kind, hook_name in hookspecs.COMPONENT_HOOKS.items():
            # get_hookimpls() is in registration (load) order; pluggy *calls* them in reverse.
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                if impl.plugin_name in failed:
                    continue
                found: list[Component] = []
                dist, version = self.origin(impl.plugin_name)
                register = _recorder(found, kind, impl.plugin_name, dist, version)
                try:
                    impl.function(**{arg: register for arg in impl.argnames})
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:  # a plugin's bug, even sys.exit(), must not take the others down
                    error = describe_error(exc)
                    logger.warning(
                        "plugin %s (%s) failed in %s: %s", impl.plugin_name, dist, hook_name, error
                    )
                    self.broken.append(BrokenPlugin(impl.plugin_name, dist, version, error))
                    failed.add(impl.plugin_name)
                    continue
                for component in found:
                    self._add(component)
        if failed:  # drop everything a broken plugin registered in earlier hooks as well
            for kind in self._components:
                self._components[kind] = {
                    n: c for n, c in self._components[kind].items() if c.plugin not in failed
                }

    def _add(self, component: Component) -> None:
        table = self._components[component.kind]
        key = (component.kind, component.name)
        if key in self._duplicates:
            self._duplicates[key].append(component)
        elif component.name in table:
            self._duplicates[key] = [table.pop(component.name), component]
        else:
            table[component.name] = component

    # -- lookups -----------------------------------------------------------------------

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def names(self, kind: str) -> list[str]:
        """Usable names of one kind, sorted."""
        return sorted(self._components[_check_kind(kind)])

    def components(self, kind: str | None = None) -> Iterator[Component]:
        """Every usable component (of one kind, if given), in kind order then by name."""
        kinds = [_check_kind(kind)] if kind else list(self._components)
        for k in kinds:
            for name in sorted(self._components[k]):
                yield self._components[k][name]

    def duplicates(self) -> Iterator[list[Component]]:
        """Each group of components that share a kind and a name."""
        yield from self._duplicates.values()

    def get(self, kind: str, name: str) -> Component:
        """The component ``name`` of ``kind``, or an error that says what to do."""
        table = self._components[_check_kind(kind)]
        if name in table:
            return table[name]
        if (kind, name) in self._duplicates:
            raise DuplicateComponentError(_duplicate_message(self._duplicates[(kind, name)]))
        raise UnknownComponentError(self._unknown_message(kind, name))

    def build(self, kind: str, name: str, config: Any = None, **context: Any) -> Any:
        """Shorthand for ``get(kind, name).build(config, **context)`` (contract checked)."""
        return self.get(kind, name).build(config, **context)

    def distributions(self) -> dict[str, str]:
        """Distribution -> version of every plugin that loaded (recorded with each run)."""
        return {d: v for d, v in sorted(set(self._origins.values())) if d != LOCAL}

    def _unknown_message(self, kind: str, name: str) -> str:
        names = self.names(kind)
        message = f"unknown {kind} '{name}'{did_you_mean(name, names)}."
        provider = KNOWN_BUILTINS.get((kind, name))
        loaded = {normalize_dist(d): v for d, v in self.distributions().items()}
        broken = [b for b in self.broken if provider and normalize_dist(b.distribution) == provider]
        if broken:
            b = broken[0]
            message += f" It is provided by {provider}, whose plugin '{b.plugin}' failed to load: {b.error}"
        elif provider and provider in loaded:
            message += (
                f" It belongs to {provider}, but the installed version ({loaded[provider]}) does not "
                f"provide it yet; upgrade {provider}."
            )
        elif provider and not _installed(provider):
            message += f" It is provided by {provider}: pip install {provider}."
        elif provider:
            message += f" It is provided by {provider}, which is installed but not loaded; check {ALLOW_ENV}."
        else:
            for other_kind, other in self._components.items():
                if name in other:
                    message += f" '{name}' is {_a(other_kind)}, not {_a(kind)}."
                    break
        available = ", ".join(names) if names else "none"
        return f"{message} Available {kind}s: {available}."


def _recorder(found: list[Component], kind: str, plugin: str, dist: str, version: str) -> Register:
    """The ``register`` callback handed to one plugin's hook: checks and records."""

    def register(name: str, factory: Callable[..., Any], config_cls: type, *, description: str = "") -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"component name must be a non-empty string, got {name!r}")
        if not callable(factory):
            raise TypeError(f"factory for {kind} '{name}' is not callable")
        if not attrs.has(config_cls):
            raise TypeError(f"config class for {kind} '{name}' must be an attrs class, got {config_cls!r}")
        found.append(Component(kind, name, factory, config_cls, plugin, dist, version, description))

    return register


def make_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager that knows MicroVLM's hook specifications and no plugins yet."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def load_plugins(
    *,
    entry_points: bool = True,
    allow: Iterable[str] | None = None,
    extra: Iterable[tuple[str, object]] = (),
) -> Plugins:
    """Discover plugins and collect what they register.

    :param entry_points: load the ``microvlm`` entry-point group (core's built-ins included).
    :param allow: distribution names to load besides microvlm-core; defaults to
        ``MICROVLM_LOAD_PLUGINS`` when set, else every installed distribution.
    :param extra: ``(name, plugin)`` pairs registered directly, e.g. by tests.
    """
    pm = make_plugin_manager()
    origins: dict[str, tuple[str, str]] = {}
    broken: list[BrokenPlugin] = []
    allowed = allowed_distributions() if allow is None else frozenset(normalize_dist(a) for a in allow)
    if entry_points:
        for ep in entry_points_in_load_order():
            dist = ep.dist.name if ep.dist is not None else LOCAL
            version = ep.dist.version if ep.dist is not None else ""
            normalized = normalize_dist(dist)
            if allowed is not None and normalized != CORE_DISTRIBUTION and normalized not in allowed:
                continue
            owner = OUR_ENTRY_POINTS.get(ep.name)
            if owner is not None and normalized != owner:
                error = (
                    f"PluginError: entry point name '{ep.name}' belongs to {owner}; {dist} may not use it "
                    f"(uninstall {dist}, or rename its entry point)"
                )
                logger.warning("plugin %s (%s) refused: %s", ep.name, dist, error)
                broken.append(BrokenPlugin(ep.name, dist, version, error))
                continue
            if pm.has_plugin(ep.name):
                other = origins.get(ep.name, (LOCAL, ""))[0]
                error = f"PluginError: entry point name '{ep.name}' is already used by {other}"
                broken.append(BrokenPlugin(ep.name, dist, version, error))
                continue
            try:
                module = ep.load()
                pm.register(module, name=ep.name)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # report it, even sys.exit() or argparse; the others keep working
                error = describe_error(exc)
                logger.warning("plugin %s (%s) failed to load: %s", ep.name, dist, error)
                broken.append(BrokenPlugin(ep.name, dist, version, error))
                continue
            origins[ep.name] = (dist, version)
    for name, plugin in extra:
        pm.register(plugin, name=name)
    return Plugins(pm, origins, broken)


def entry_points_in_load_order() -> list[md.EntryPoint]:
    """The ``microvlm`` entry points: core's, then our other distributions', then the rest by name.

    So ours register under their names before anybody else's, whatever the alphabet says.
    """
    seen: set[tuple[str, str, str]] = set()
    result = []
    for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=_load_rank):
        # The same distribution can be visible twice on odd sys.path setups: load it once.
        key = (_dist_of(ep), ep.name, ep.value)
        if key not in seen:
            seen.add(key)
            result.append(ep)
    return result


def _dist_of(ep: md.EntryPoint) -> str:
    return normalize_dist(ep.dist.name) if ep.dist is not None else ""


def _load_rank(ep: md.EntryPoint) -> tuple[int, str, str]:
    dist = _dist_of(ep)
    rank = 0 if dist == CORE_DISTRIBUTION else 1 if dist in OUR_ENTRY_POINTS.values() else 2
    return rank, dist, ep.name


def _installed(distribution: str) -> bool:
    try:
        md.distribution(distribution)
    except md.PackageNotFoundError:
        return False
    return True


def _check_kind(kind: str) -> str:
    if kind not in hookspecs.COMPONENT_HOOKS:
        raise ValueError(f"unknown component kind {kind!r}; kinds are {', '.join(hookspecs.COMPONENT_HOOKS)}")
    return kind


def describe_error(exc: BaseException) -> str:
    """``"ExceptionType: message"`` for a plugin's failure; ``sys.exit(code)`` said as such."""
    if isinstance(exc, SystemExit):
        return f"SystemExit: the plugin called sys.exit({exc.code!r})"
    return f"{type(exc).__name__}: {exc}"


def _a(kind: str) -> str:
    """``"an exporter"``, ``"a task"``."""
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def _duplicate_message(group: list[Component]) -> str:
    first = group[0]
    where = " and ".join(f"{c.distribution} (plugin '{c.plugin}')" for c in group)
    return (
        f"{first.kind} '{first.name}' is registered by {where}; uninstall one of them "
        f"or restrict loading with {ALLOW_ENV}."
    )
