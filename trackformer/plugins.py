"""The plugin manager: builtins by module path, then entry points (group `trackformer`), then `-p`.

Set TRACKFORMER_DISABLE_PLUGIN_AUTOLOAD=1 to skip entry points, TRACKFORMER_PLUGIN_ALLOWLIST=a,b to
load only those entry points, TRACKFORMER_PLUGINS=mod1,mod2 to add modules as `-p` does.
"""
import importlib
import os
import warnings
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Dict, List, Optional, Sequence

import pluggy

from . import hookspecs
from .errors import PluginError
from .registry import KINDS, Registry

GROUP = "trackformer"
BUILTINS = (
    "trackformer.builtin_plugins.commands",
    "trackformer.builtin_plugins.backbones",
    "trackformer.builtin_plugins.coco",
    "trackformer.builtin_plugins.mot",
    "trackformer.builtin_plugins.retrieval",
)


@dataclass
class PluginInfo:
    name: str
    module: str
    source: str  # builtin | entry point | command line
    distribution: Optional[str] = None
    version: Optional[str] = None
    registers: Dict[str, List[str]] = field(default_factory=dict)


class PluginWarning(UserWarning):
    pass


class Plugins:
    """The loaded plugins and the registries they filled."""

    def __init__(self, extra_modules: Sequence[str] = ()):
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.pm.hook.add_hookspecs.call_historic(kwargs={"pluginmanager": self.pm})
        self.info: Dict[str, PluginInfo] = {}
        for module in BUILTINS:
            self._register_module(module, name=module, source="builtin")
        if not os.environ.get("TRACKFORMER_DISABLE_PLUGIN_AUTOLOAD"):
            self._load_entry_points()
        env_modules = [m for m in os.environ.get("TRACKFORMER_PLUGINS", "").split(",") if m.strip()]
        for module in [*env_modules, *extra_modules]:
            self._register_module(module.strip(), name=module.strip(), source="command line")
        self._check_pending()
        self.registries = {kind: Registry(kind) for kind in KINDS}
        for kind in KINDS:
            self._collect(kind)

    def _register_module(self, module: str, name: str, source: str, dist=None):
        if name in self.info or self.pm.has_plugin(name):
            return
        try:
            plugin = importlib.import_module(module)
        except Exception as error:  # a broken plugin must not take the others down
            warnings.warn(f"plugin {name!r} failed to load: {type(error).__name__}: {error}", PluginWarning,
                          stacklevel=2)
            return
        self._add(plugin, name, source, dist)

    def _add(self, plugin, name, source, dist=None):
        self.pm.register(plugin, name=name)
        self.info[name] = PluginInfo(
            name=name, module=getattr(plugin, "__name__", str(plugin)), source=source,
            distribution=dist.metadata["Name"] if dist else None, version=dist.version if dist else None,
        )

    def _load_entry_points(self):
        allow = os.environ.get("TRACKFORMER_PLUGIN_ALLOWLIST")
        allowed = {a.strip() for a in allow.split(",")} if allow else None
        for ep in entry_points(group=GROUP):
            if allowed is not None and ep.name not in allowed:
                continue
            if ep.name in self.info or self.pm.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as error:
                warnings.warn(f"plugin {ep.name!r} failed to load: {type(error).__name__}: {error}",
                              PluginWarning, stacklevel=2)
                continue
            self._add(plugin, ep.name, "entry point", getattr(ep, "dist", None))

    def _check_pending(self):
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as error:
            name = self.pm.get_name(error.plugin) if error.plugin is not None else "?"
            raise PluginError(f"plugin {name!r}: {error}") from None

    def _collect(self, kind: str):
        caller = getattr(self.pm.hook, f"register_{kind}")
        for impl in caller.get_hookimpls():
            plugin_name = impl.plugin_name

            def register(name, factory, schema=None, help="", _plugin=plugin_name, **extra):
                self.registries[kind].add(name, factory, _plugin, schema=schema, help=help, **extra)
                info = self.info.get(_plugin)
                if info is not None:
                    info.registers.setdefault(kind, []).append(name)

            impl.function(register=register)

    @property
    def hook(self):
        return self.pm.hook


_PLUGINS: Optional[Plugins] = None
_EXTRA: List[str] = []


def load_plugins(extra_modules: Sequence[str] = ()) -> Plugins:
    """Load (once) and return the plugins; `extra_modules` adds `-p` modules and forces a reload."""
    global _PLUGINS, _EXTRA
    if _PLUGINS is None or list(extra_modules) != _EXTRA and extra_modules:
        _EXTRA = list(extra_modules)
        _PLUGINS = Plugins(_EXTRA)
    return _PLUGINS


def reset_plugins():
    """Forget the loaded plugins (tests; after installing a plugin)."""
    global _PLUGINS, _EXTRA
    _PLUGINS, _EXTRA = None, []


def registry(kind: str) -> Registry:
    return load_plugins().registries[kind]

