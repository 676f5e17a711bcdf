"""User-facing errors. The CLI prints each as one line and exits with status 2; no traceback."""
from pathlib import Path
from typing import Optional, Union


class TrackformerError(Exception):
    """A mistake in the user's input: config, files, command line."""


class ConfigError(TrackformerError):
    """A bad setting. `key` is the dotted key, e.g. `model.decoder.num_queries`.

    A component's factory or settings (`__post_init__`) raise it with the key relative to their own
    node (`ConfigError("num_queries", ...)`); `trackformer.build` and the config pass prefix the node's
    full key once, so no component spells where it sits in a config."""

    def __init__(self, key: str, message: str, full: bool = False):
        self.key = key
        self.message = message
        self.full = full  # True once `key` is the full dotted key from the config's root
        super().__init__(f"{key}: {message}" if key else message)

    def under(self, node_key: str) -> "ConfigError":
        """This error with `node_key` prefixed (once): the key as seen from the config's root."""
        if self.full:
            return self
        key = ".".join(k for k in (node_key, self.key) if k)
        return ConfigError(key, self.message, full=True)


class DataError(TrackformerError):
    """A bad or missing input file, optionally with the 1-based line at fault."""

    def __init__(self, path: Union[str, Path], message: str, line: Optional[int] = None):
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")


class PluginError(TrackformerError):
    """A plugin registered something inconsistent (a name twice, an unknown hook)."""
