"""One registry per component kind: name -> factory, config schema and the plugin that registered it.

A factory is a callable or a `"module:function"` string imported on first use, so a plugin's
`hooks.py` registers its components without importing torch or its model code at start-up.
"""
import difflib
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Union

from .errors import ConfigError, PluginError

KINDS = (
    "backbones", "encoders", "decoders", "matchers", "losses",
    "architectures", "datasets", "evaluators", "commands",
)


@dataclass
class Entry:
    name: str
    target: Union[Callable, str]  # the factory, or "module:function" naming it
    schema: Optional[type]
    help: str
    plugin: str
    extra: Dict[str, Any]

    @property
    def factory(self) -> Callable:
        if isinstance(self.target, str):
            module, _, function = self.target.partition(":")
            self.target = getattr(importlib.import_module(module), function)
        return self.target


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self.entries: Dict[str, Entry] = {}

    def add(self, name: str, factory: Union[Callable, str], plugin: str, schema=None, help: str = "", **extra):
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin!r} registered a {self.singular} with an invalid name {name!r}")
        if not (callable(factory) or (isinstance(factory, str) and ":" in factory)):
            raise PluginError(f"plugin {plugin!r} registered {self.singular} {name!r} with factory {factory!r}: "
                              "expected a callable or 'module:function'")
        if name in self.entries:
            first = self.entries[name].plugin
            raise PluginError(
                f"{self.singular} {name!r} is registered twice: by plugin {first!r} and by plugin {plugin!r}"
            )
        self.entries[name] = Entry(name, factory, schema, help or "", plugin, extra)

    @property
    def singular(self) -> str:
        return {"losses": "loss"}.get(self.kind, self.kind[:-1])

    def names(self):
        return sorted(self.entries)

    def get(self, name: str, key: str = "") -> Entry:
        if name in self.entries:
            return self.entries[name]
        raise ConfigError(key, f"unknown {self.singular} {name!r}{did_you_mean(name, self.names())}; "
                               f"registered: {', '.join(self.names()) or '(none)'}")

    def __contains__(self, name):
        return name in self.entries

    def __iter__(self):
        return iter(self.entries.values())


def did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
