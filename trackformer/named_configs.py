"""Run configs addressable by name: each plugin ships the configs of its model family inside its
package and declares their folders with the `config_dirs` hook, so a pip-installed user can write
`trackformer run detr_synthetic` without a checkout. A path (anything with a `/` or a `.yaml`
suffix, or an existing file) is used as given.

Import-light: no omegaconf or torch here; `trackformer config list` reads only the file headers.
"""
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Union

from .errors import ConfigError, PluginError

SUFFIXES = (".yaml", ".yml")


@dataclass
class NamedConfig:
    name: str
    path: Path
    plugin: str
    description: str


def is_name(text: Union[str, Path]) -> bool:
    """A bare config name: no folder part and no YAML suffix (`detr_synthetic`)."""
    text = str(text)
    return "/" not in text and "\\" not in text and not text.endswith(SUFFIXES) and bool(text)


def description(path: Path, width: int = 100) -> str:
    """The file's first comment line (its title), cut to `width` characters."""
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if text:
            return text if len(text) <= width else text[: width - 3].rstrip() + "..."
    return ""


def named_configs() -> Dict[str, NamedConfig]:
    """Every shipped config by name, from the folders the loaded plugins declare."""
    from .plugins import load_plugins

    found: Dict[str, NamedConfig] = {}
    for impl in load_plugins().hook.config_dirs.get_hookimpls():
        for folder in impl.function() or []:
            for path in sorted(Path(folder).glob("*")):
                if path.suffix not in SUFFIXES or not path.is_file():
                    continue
                old = found.get(path.stem)
                if old is not None and old.path != path:
                    raise PluginError(f"config {path.stem!r} is shipped twice: by plugin {old.plugin!r} "
                                      f"({old.path}) and by {impl.plugin_name!r} ({path})")
                found[path.stem] = NamedConfig(path.stem, path, impl.plugin_name, description(path))
    return found


def find_config(name: str) -> Path:
    """The file of a shipped config; an unknown name is a one-line error listing close names."""
    configs = named_configs()
    if name in configs:
        return configs[name].path
    close = difflib.get_close_matches(name, list(configs), n=3, cutoff=0.5)
    hint = f" (close: {', '.join(close)})" if close else ""
    raise ConfigError("", f"unknown config {name!r}{hint}; see `trackformer config list`")


def resolve_config_path(path: Union[str, Path]) -> Path:
    """`path` itself, or the shipped config it names when it is a bare name and no such file exists."""
    if is_name(path) and not Path(path).is_file():
        return find_config(str(path))
    return Path(path)


def resolve_extends(parent_file: Path, entry: str) -> Path:
    """An `extends:` entry: relative to the extending file, else a shipped config's name."""
    relative = parent_file.parent / entry
    if is_name(entry) and not relative.is_file():
        return find_config(entry)
    return relative
