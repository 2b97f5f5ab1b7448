"""Finds plugins through entry points (group ``anymodal``) and collects what they register.

Each plugin is imported, contract-checked, registered and asked for its specs on its own. A
plugin that fails at any step is recorded with its distribution, version and error, and
contributes nothing; every other plugin and every command keeps working. Set
``ANYMODAL_STRICT_PLUGINS=1`` to re-raise instead (for plugin authors and CI) and
``ANYMODAL_DISABLE_PLUGINS=a,b`` to skip plugins by entry-point or distribution name.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Literal

import pluggy

from anymodal.contract import hookspecs
from anymodal.contract.benchmarks import BenchmarkSpec
from anymodal.contract.bridge import BridgeSpec
from anymodal.contract.errors import PluginError, UsageError
from anymodal.contract.specs import (
    CONTRACT_VERSION,
    EncoderSpec,
    ModalitySpec,
    ProjectorSpec,
    TemplateSpec,
)
from anymodal.contract.version import __version__
from anymodal.contract.wording import did_you_mean

ENTRY_POINT_GROUP = "anymodal"
#: The distribution whose entry point registers core's own pieces (anymodal.runtime.builtin).
CORE_DISTRIBUTION = "anymodal"

#: hook name -> (kind, spec class). The order is the order in which hooks are called.
HOOKS: dict[str, tuple[str, type]] = {
    "register_modalities": ("modality", ModalitySpec),
    "register_encoders": ("encoder", EncoderSpec),
    "register_projectors": ("projector", ProjectorSpec),
    "register_bridges": ("bridge", BridgeSpec),
    "register_templates": ("template", TemplateSpec),
    "register_benchmarks": ("benchmark", BenchmarkSpec),
}
KINDS = tuple(kind for kind, _ in HOOKS.values())


@dataclass
class PluginRecord:
    """What ``anymodal plugins`` shows for one plugin."""

    name: str
    distribution: str | None
    version: str | None
    status: Literal["ok", "failed", "disabled"] = "ok"
    error: str | None = None
    traceback: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "error": self.error,
            "registered": self.registered,
        }

    @property
    def label(self) -> str:
        dist = self.distribution or self.name
        return f"{dist} {self.version}" if self.version else dist


class Registry:
    """Every registered spec by kind and name, and a record of every plugin seen."""

    def __init__(self) -> None:
        self.specs: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        self.owners: dict[tuple[str, str], PluginRecord] = {}
        self.plugins: list[PluginRecord] = []

    @property
    def modalities(self) -> dict[str, ModalitySpec]:
        return self.specs["modality"]

    @property
    def encoders(self) -> dict[str, EncoderSpec]:
        return self.specs["encoder"]

    @property
    def projectors(self) -> dict[str, ProjectorSpec]:
        return self.specs["projector"]

    @property
    def bridges(self) -> dict[str, BridgeSpec]:
        return self.specs["bridge"]

    @property
    def templates(self) -> dict[str, TemplateSpec]:
        return self.specs["template"]

    @property
    def benchmarks(self) -> dict[str, BenchmarkSpec]:
        return self.specs["benchmark"]

    @property
    def failed(self) -> list[PluginRecord]:
        return [p for p in self.plugins if p.status == "failed"]

    def get(self, kind: str, name: str) -> Any:
        """The spec of ``kind`` called ``name``, or a usage error with suggestions."""
        table = self.specs[kind]
        if name in table:
            return table[name]
        known = ", ".join(sorted(table)) or "none"
        hint = f"installed {kind}s: {known}"
        if self.failed:
            hint += f"; {len(self.failed)} plugin(s) failed to load, see `anymodal plugins`"
        raise UsageError(f"unknown {kind} {name!r}{did_you_mean(name, table)}", hint=hint)

    def add(self, record: PluginRecord, staged: Sequence[tuple[str, Any]]) -> None:
        """Commit one plugin's specs; a name clash fails the whole plugin, naming both owners."""
        seen: set[tuple[str, str]] = set()
        for kind, spec in staged:
            key = (kind, spec.name)
            owner = self.owners.get(key)
            if owner is not None or key in seen:
                first = owner.label if owner else record.label
                raise PluginError(
                    f"{kind} {spec.name!r} is registered by both {first} and {record.label}",
                    hint="uninstall one of them, or skip one with ANYMODAL_DISABLE_PLUGINS=<name>",
                )
            seen.add(key)
        for kind, spec in staged:
            self.specs[kind][spec.name] = spec
            self.owners[(kind, spec.name)] = record
            record.registered.setdefault(kind, []).append(spec.name)


def _env_list(name: str) -> set[str]:
    return {item.strip() for item in os.environ.get(name, "").split(",") if item.strip()}


def _required_anymodal(dist: metadata.Distribution | None) -> str | None:
    for requirement in (dist.requires or []) if dist else []:
        head = requirement.split(";")[0].strip()
        name = head.split("[")[0]
        for sep in "<>=!~ (":
            name = name.split(sep)[0]
        if name.strip().lower() == "anymodal":
            return head
    return None


class _Loader:
    def __init__(self, registry: Registry, strict: bool) -> None:
        self.registry = registry
        self.strict = strict
        self.manager = pluggy.PluginManager("anymodal")
        self.manager.add_hookspecs(hookspecs)

    def load(self, record: PluginRecord, obtain: Callable[[], object], dist: Any = None) -> None:
        self.registry.plugins.append(record)
        try:
            plugin = obtain()
            self._check_contract(record, plugin, dist)
            staged = self._collect(record, plugin)
            self.registry.add(record, staged)
        except Exception as error:
            record.status = "failed"
            record.error = (
                str(error) if isinstance(error, PluginError) else f"{type(error).__name__}: {error}"
            )
            record.traceback = traceback.format_exc()
            if self.strict:
                raise PluginError(f"plugin {record.label} failed: {record.error}") from error

    def _check_contract(self, record: PluginRecord, plugin: object, dist: Any) -> None:
        declared = getattr(plugin, "ANYMODAL_CONTRACT", None)
        if declared == CONTRACT_VERSION:
            return
        if declared is None:
            raise PluginError(
                f"plugin {record.label} does not declare ANYMODAL_CONTRACT",
                hint=f"add `ANYMODAL_CONTRACT = {CONTRACT_VERSION}` to the plugin module",
            )
        needs = _required_anymodal(dist)
        needs_text = f"it requires {needs}" if needs else "it needs a different anymodal"
        raise PluginError(
            f"plugin {record.label} was built for plugin contract {declared!r}, but anymodal "
            f"{__version__} speaks contract {CONTRACT_VERSION}; {needs_text}",
            hint=f"install a matching anymodal (pip install {needs or 'anymodal'!r}) or a "
            f"version of {record.distribution or record.name} built for contract {CONTRACT_VERSION}",
        )

    def _collect(self, record: PluginRecord, plugin: object) -> list[tuple[str, Any]]:
        self.manager.register(plugin, name=record.name)
        try:
            self.manager.check_pending()
            staged: list[tuple[str, Any]] = []
            for hook_name, (kind, spec_class) in HOOKS.items():
                for impl in getattr(self.manager.hook, hook_name).get_hookimpls():
                    if impl.plugin is plugin:
                        register = self._register_callback(record, hook_name, kind, spec_class, staged)
                        impl.function(**{arg: register for arg in impl.argnames})
            return staged
        finally:
            # Hooks are called once, here; keeping plugins registered would only risk a second call.
            self.manager.unregister(plugin)

    @staticmethod
    def _register_callback(
        record: PluginRecord, hook: str, kind: str, spec_class: type, staged: list[tuple[str, Any]]
    ) -> Callable[[Any], None]:
        def register(spec: Any) -> None:
            if not isinstance(spec, spec_class):
                raise PluginError(
                    f"plugin {record.label}: {hook} passed {type(spec).__name__} to register(), "
                    f"expected anymodal.{spec_class.__name__}"
                )
            staged.append((kind, spec))

        return register


def _entry_points() -> list[metadata.EntryPoint]:
    """Every entry point in the group, core's own first, then by distribution and name."""
    found = metadata.entry_points(group=ENTRY_POINT_GROUP)
    unique = {(ep.dist.name if ep.dist else "", ep.name, ep.value): ep for ep in found}
    return [unique[key] for key in sorted(unique, key=lambda key: (key[0] != CORE_DISTRIBUTION, key))]


def _is_core(ep: metadata.EntryPoint) -> bool:
    return ep.dist is not None and ep.dist.name == CORE_DISTRIBUTION


def load_registry(
    *,
    entry_points: bool = True,
    plugins: Iterable[object] = (),
    strict: bool | None = None,
) -> Registry:
    """Build a registry: core's built-ins, then entry-point plugins, then ``plugins`` (tests).

    Core's own pieces (projectors, templates, the ImageBind encoder) are a plugin like any other,
    found through the ``anymodal`` distribution's own entry point; it is always loaded and cannot
    be disabled. ``entry_points=False`` skips every other installed plugin.

    A module in ``plugins`` that an entry point also names (``name = "that.module"``) takes that
    entry point's place, keeping its distribution and version, so a plugin under test is never
    registered twice whether or not it is installed.
    """
    if strict is None:
        strict = os.environ.get("ANYMODAL_STRICT_PLUGINS", "") not in ("", "0", "false")
    disabled = _env_list("ANYMODAL_DISABLE_PLUGINS")
    registry = Registry()
    loader = _Loader(registry, strict)
    found = _entry_points()
    if not any(_is_core(ep) for ep in found):
        loader.load(PluginRecord("builtin", CORE_DISTRIBUTION, __version__), _missing_core)
    given = {getattr(plugin, "__name__", type(plugin).__name__): plugin for plugin in plugins}
    for ep in found:
        core = _is_core(ep)
        if not (entry_points or core):
            continue
        dist = ep.dist
        record = PluginRecord(ep.name, dist.name if dist else None, dist.version if dist else None)
        if ep.value in given:
            loader.load(record, _constant(given.pop(ep.value)), dist)
        elif not core and {ep.name, record.distribution} & disabled:
            record.status = "disabled"
            registry.plugins.append(record)
        else:
            loader.load(record, ep.load, dist)
    for name, plugin in given.items():
        loader.load(PluginRecord(name, None, None), _constant(plugin))
    return registry


def _constant(plugin: object) -> Callable[[], object]:
    return lambda: plugin


def _missing_core() -> object:
    raise PluginError(
        f"the {CORE_DISTRIBUTION} distribution's own entry point (group {ENTRY_POINT_GROUP!r}) is "
        "missing, so its projectors, templates and encoders are not registered",
        hint="install anymodal rather than running it from a source tree (pip install -e .)",
    )


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = load_registry()
    return _REGISTRY


def set_registry(registry: Registry | None) -> None:
    """Replace the process-wide registry (tests); None makes the next call reload."""
    global _REGISTRY
    _REGISTRY = registry
