"""trackformer: transformer detection, tracking and metric learning on a pluggy core.

Import-light on purpose: plugins import `hookimpl` from here at start-up.
"""
from .hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "build", "build_model", "build_dataset", "load_config", "__version__"]


def __getattr__(name):
    if name in ("build", "build_model", "build_dataset"):
        from . import api

        return getattr(api, name)
    if name == "load_config":
        from .config import load_config

        return load_config
    raise AttributeError(f"module 'trackformer' has no attribute {name!r}")
