"""User-facing errors. The CLI prints each as one line and exits with status 2; no traceback."""
from pathlib import Path
from typing import Optional, Union


class TrackformerError(Exception):
    """A mistake in the user's input: config, files, command line."""


class ConfigError(TrackformerError):
    """A bad setting. `key` is the full dotted key, e.g. `model.decoder.num_queries`."""

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)


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
